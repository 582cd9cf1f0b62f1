/**
 * One measured run: a command in a fresh process under GNU time, wall time taken here from
 * spawn to exit; GNU time gives the process's peak resident set (`%M`, KB) and its user and
 * system CPU seconds (`%U`, `%S`, children included: none of the measured tools forks).
 */
import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const GNU_TIME = '/usr/bin/time';

export interface ProcessFigures {
  seconds: number;
  peakRssMb: number;
  userCpuSeconds: number;
  sysCpuSeconds: number;
  stdout: string;
}

/** GNU time's last line in the format `%M %U %S`. */
export function parseTimeLine(text: string): { peakRssKb: number; user: number; sys: number } {
  const line = text.trim().split('\n').pop() ?? '';
  const [rss, user, sys] = line.trim().split(/\s+/).map(Number);
  if (![rss, user, sys].every((n) => n !== undefined && Number.isFinite(n))) throw new Error(`GNU time wrote "${line}"`);
  return { peakRssKb: rss!, user: user!, sys: sys! };
}

export async function measure(command: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<ProcessFigures> {
  const timeFile = join(tmpdir(), `popdrain-bench-time-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const started = process.hrtime.bigint();
  const child = spawn(GNU_TIME, ['-f', '%M %U %S', '-o', timeFile, command, ...args], {
    env,
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d));
  const closed = new Promise((r) => child.on('close', r));
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await closed;
  const figures = parseTimeLine(await readFile(timeFile, 'utf8'));
  await rm(timeFile, { force: true });
  if (code !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited ${code}: ${Buffer.concat(err).toString().slice(-2000)}`);
  }
  return {
    seconds,
    peakRssMb: figures.peakRssKb / 1024,
    userCpuSeconds: figures.user,
    sysCpuSeconds: figures.sys,
    stdout: Buffer.concat(out).toString(),
  };
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export const round = (n: number, digits = 2): number => Number(n.toFixed(digits));
