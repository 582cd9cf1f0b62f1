// The run's budgets judged by what crosses the wire: the CLI as a subprocess against Dovecot
// through a loopback proxy that counts (and can throttle) the bytes the server sends.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type Dovecot } from '../../testkit/pop3-servers/dovecot.js';
import { testMessage } from '../../testkit/fixtures/drain-fixtures.js';
import { startWireProxy, type WireProxy } from '../support/wire-proxy.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = join(ROOT, 'dist/cli/main.js');
const CLI_TIMEOUT_MS = 60_000;
const MB = 1_000_000;

let dovecot: Dovecot;
let scratch: string;
let counter = 0;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'popdrain-wire-'));
  dovecot = await startDovecot();
});
afterAll(async () => {
  await dovecot?.stop();
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
});

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function bigMessage(i: number, size: number): Buffer {
  const head = `From: big${i}@example.com\nTo: r@example.com\nSubject: big ${i}\nMessage-ID: <wire-big-${i}@example.com>\n\n`;
  const line = `${`big ${i} `.padEnd(75, 'y')}\n`;
  return Buffer.from(head + line.repeat(Math.ceil(size / line.length)));
}

async function newUser(messages: Buffer[]): Promise<{ user: string; password: string }> {
  counter += 1;
  const user = `wire${counter}`;
  const password = `pw-${counter}-Kx3`;
  await dovecot.addUser(user, password);
  await dovecot.deliverMany(user, messages);
  return { user, password };
}

/** `drain` through `proxy` over implicit TLS into a fresh --out. */
function drainVia(proxy: WireProxy, u: { user: string; password: string }, extra: string[]): Promise<CliResult> {
  counter += 1;
  const args = ['drain', `pop3s://${u.user}@127.0.0.1:${proxy.port}`, '--ca', dovecot.pki.caCertPath, '--servername', 'localhost'];
  args.push('--id', `wire-${counter}`, '--out', join(scratch, `out-${counter}`), ...extra);
  const started = performance.now();
  const child = spawn(process.execPath, [MAIN, ...args], {
    cwd: scratch,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: scratch, POPDRAIN_PASSWORD: u.password },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d));
  const timer = setTimeout(() => child.kill('SIGKILL'), CLI_TIMEOUT_MS);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), ms: performance.now() - started });
    });
  });
}

describe('budgets decide what is requested, not only what is stored', () => {
  it('--max-messages 2 and --max-bytes 10kB on a mailbox whose last message is 8 MB move less than 1 MB', async () => {
    const u = await newUser([testMessage(1, 'wire', 3_000), testMessage(2, 'wire', 3_000), testMessage(3, 'wire', 3_000), bigMessage(4, 8 * MB)]);
    for (const budget of [['--max-messages', '2'], ['--max-bytes', '10kB']]) {
      const proxy = await startWireProxy(dovecot.host, dovecot.ports.pop3s);
      try {
        const r = await drainVia(proxy, u, [...budget, '--json']);
        expect(r.code, r.stderr).toBe(0);
        const report = JSON.parse(r.stdout) as { stopReason: string; fetched: number; moreRemaining: boolean };
        expect(report.moreRemaining).toBe(true);
        expect(report.fetched).toBeGreaterThanOrEqual(2);
        expect(report.fetched).toBeLessThanOrEqual(3);
        expect(proxy.serverBytes, `${budget.join(' ')}: bytes on the wire`).toBeLessThan(1 * MB);
      } finally {
        await proxy.close();
      }
    }
  });

  it('--max-time 3s on a 2 MB/s link ends within 6 s, stopped by the deadline', async () => {
    const u = await newUser(Array.from({ length: 6 }, (_, i) => bigMessage(10 + i, 4 * MB)));
    const proxy = await startWireProxy(dovecot.host, dovecot.ports.pop3s, { bytesPerSecond: 2 * MB });
    try {
      const r = await drainVia(proxy, u, ['--max-time', '3s', '--json']);
      expect(r.code, `${r.stderr}\n${r.stdout}\n${r.ms}`).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ stopReason: 'deadline', moreRemaining: true });
      expect(r.ms).toBeLessThan(6_000);
      expect(proxy.serverBytes).toBeLessThan(7 * MB);
    } finally {
      await proxy.close();
    }
  });
});
