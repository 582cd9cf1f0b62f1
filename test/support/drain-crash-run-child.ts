// One child of a drain crash campaign: spawned from the bundled drain-crash-child.ts, SIGKILLed
// at a boundary it reports or at a random instant, or left to end by itself.
import { spawn } from 'node:child_process';
import { BOUNDARIES, CRASH_CONFIG_ENV, FREEZE_LIMIT_MS, parseChildLine, type Boundary, type CrashChildConfig } from './drain-crash-shared.js';
import { childScript } from './drain-crash-world.js';

/** A child that neither stops, finishes nor gets killed in this long is a hung test. */
const CHILD_TIMEOUT_MS = FREEZE_LIMIT_MS + 5_000;

// ---------------------------------------------------------------------------------------------
// One child

export type KillKind = Boundary | 'retr-chunk-large' | 'random';
export const KILL_KINDS: readonly KillKind[] = [...BOUNDARIES, 'retr-chunk-large', 'random'];

export interface ChildOutcome {
  /** Where it was SIGKILLed, or undefined when it ended by itself. */
  killedAt: KillKind | undefined;
  report: Record<string, unknown> | undefined;
  crossed: Boundary[];
  stderr: string;
  durationMs: number;
}

export interface RandomKill {
  from: 'spawn' | 'first-boundary';
  delayMs: number;
}

export function runChild(config: CrashChildConfig, randomKill: RandomKill | undefined): Promise<ChildOutcome> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(process.execPath, [childScript], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, [CRASH_CONFIG_ENV]: JSON.stringify(config), AWS_EC2_METADATA_DISABLED: 'true' },
    });
    let killedAt: KillKind | undefined;
    let report: Record<string, unknown> | undefined;
    const crossed: Boundary[] = [];
    let stderr = '';
    let pending = '';
    const kill = (at: KillKind): void => {
      if (killedAt !== undefined || child.exitCode !== null || child.signalCode !== null) return;
      killedAt = at;
      child.kill('SIGKILL');
    };
    let randomTimer: NodeJS.Timeout | undefined;
    const armRandomKill = (): void => {
      if (randomTimer === undefined && randomKill !== undefined) randomTimer = setTimeout(() => kill('random'), randomKill.delayMs);
    };
    if (randomKill?.from === 'spawn') armRandomKill();
    const hungTimer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child hung for ${CHILD_TIMEOUT_MS} ms; stderr: ${stderr.slice(-2000)}`));
    }, CHILD_TIMEOUT_MS);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      pending += chunk;
      for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
        const parsed = parseChildLine(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
        if (parsed.kind === 'boundary') {
          crossed.push(parsed.boundary);
          armRandomKill();
        } else if (parsed.kind === 'report') {
          report = parsed.report;
        } else if (parsed.kind === 'stop') {
          kill(config.stopAt?.minSize === undefined ? parsed.boundary : 'retr-chunk-large');
        }
      }
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(randomTimer);
      clearTimeout(hungTimer);
      // A random kill that raced with the child's own exit did not happen.
      if (killedAt !== undefined && signal !== 'SIGKILL') killedAt = undefined;
      if (killedAt === undefined && code !== 0) {
        reject(new Error(`child exited with ${code ?? signal}; stderr: ${stderr.slice(-2000)}`));
        return;
      }
      resolve({ killedAt, report, crossed, stderr, durationMs: Date.now() - started });
    });
  });
}
