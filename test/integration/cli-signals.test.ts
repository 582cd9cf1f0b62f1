// SIGINT/SIGTERM judged by the clock: the CLI as a subprocess against Dovecot through a loopback
// proxy that throttles what the server sends (a slow link), a large message in flight.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type Dovecot } from '../../testkit/pop3-servers/dovecot.js';
import { servedForm, sha256, storedFiles, testMessage } from '../../testkit/fixtures/drain-fixtures.js';
import { startWireProxy, type WireProxy } from '../support/wire-proxy.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = join(ROOT, 'dist/cli/main.js');
const CLI_TIMEOUT_MS = 60_000;
const MB = 1_000_000;

let dovecot: Dovecot;
let scratch: string;
let counter = 0;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'popdrain-signals-'));
  dovecot = await startDovecot();
});
afterAll(async () => {
  await dovecot?.stop();
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
});

function bigMessage(i: number, size: number): Buffer {
  const head = `From: big${i}@example.com\nTo: r@example.com\nSubject: big ${i}\nMessage-ID: <signal-big-${i}@example.com>\n\n`;
  const line = `${`big ${i} `.padEnd(75, 'z')}\n`;
  return Buffer.from(head + line.repeat(Math.ceil(size / line.length)));
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** From the signal (or the start, when none was sent) to the exit. */
  msAfterSignal: number;
  signalled: number;
}

/**
 * `drain --delete` through `proxy`; sends `signal` once `when(proxy)` holds (polled), then
 * `then` (another signal: two of one kind sent together merge into one) `thenAfterMs` later.
 */
function drainVia(
  proxy: WireProxy,
  u: { user: string; password: string; id: string; out: string },
  extra: string[],
  interrupt?: { signal: NodeJS.Signals; when: (p: WireProxy) => boolean; then?: NodeJS.Signals; thenAfterMs?: number },
): Promise<Run> {
  const args = ['drain', `pop3s://${u.user}@127.0.0.1:${proxy.port}`, '--ca', dovecot.pki.caCertPath, '--servername', 'localhost'];
  args.push('--id', u.id, '--out', u.out, '--delete', ...extra);
  const child = spawn(process.execPath, [MAIN, ...args], {
    cwd: scratch,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: scratch, POPDRAIN_PASSWORD: u.password },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d));
  let signalledAt = performance.now();
  let signalled = 0;
  const poll =
    interrupt === undefined
      ? undefined
      : setInterval(() => {
          if (signalled > 0 || !interrupt.when(proxy)) return;
          signalled = 1;
          signalledAt = performance.now();
          child.kill(interrupt.signal);
          const then = interrupt.then;
          if (then !== undefined) {
            setTimeout(() => {
              if (child.kill(then)) signalled = 2;
            }, interrupt.thenAfterMs ?? 0);
          }
        }, 20);
  const timer = setTimeout(() => child.kill('SIGKILL'), CLI_TIMEOUT_MS);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      clearInterval(poll);
      const ms = performance.now() - signalledAt;
      resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), msAfterSignal: ms, signalled });
    });
  });
}

async function onServer(user: string): Promise<Buffer[]> {
  const paths = await dovecot.listMaildir(user);
  return Promise.all(paths.map(async (p) => servedForm(await readFile(p))));
}

const shas = (buffers: Iterable<Buffer>): string[] => [...buffers].map(sha256).sort();

async function mailbox(messages: Buffer[]): Promise<{ user: string; password: string; id: string; out: string }> {
  counter += 1;
  const user = `sig${counter}`;
  const password = `pw-${counter}-Qe4`;
  await dovecot.addUser(user, password);
  await dovecot.deliverMany(user, messages);
  return { user, password, id: `sig-${counter}`, out: join(scratch, `out-${counter}`) };
}

/** Nothing left the server that is not stored, and a second run (fast link) takes the rest. */
async function expectNothingLostThenRerun(u: Awaited<ReturnType<typeof mailbox>>, messages: Buffer[]): Promise<void> {
  const stored = await storedFiles(u.out, u.id);
  const remaining = await onServer(u.user);
  const all = new Set(shas(messages.map(servedForm)));
  for (const b of stored.values()) expect(all.has(sha256(b)), 'stored a message byte for byte').toBe(true);
  // Every message is on the server or stored (or both: stored but its deletion not committed).
  const kept = new Set([...shas(remaining), ...shas(stored.values())]);
  expect([...all].filter((s) => !kept.has(s))).toEqual([]);

  const fast = await startWireProxy(dovecot.host, dovecot.ports.pop3s);
  try {
    const rerun = await drainVia(fast, u, ['--json']);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(JSON.parse(rerun.stdout)).toMatchObject({ stopReason: 'complete' });
  } finally {
    await fast.close();
  }
  expect(shas((await storedFiles(u.out, u.id)).values())).toEqual(shas(messages.map(servedForm)));
  expect(await onServer(u.user)).toHaveLength(0);
}

describe('signals end the run within seconds, whatever is in flight', () => {
  it('a first SIGINT with a 12 MB message in flight on a 2 MB/s link: exit 130 within 4 s, "interrupted", nothing lost, the next run completes', async () => {
    const messages = [testMessage(1, 'sig', 3_000), testMessage(2, 'sig', 3_000), bigMessage(3, 12 * MB), testMessage(4, 'sig', 3_000)];
    const u = await mailbox(messages);
    const proxy = await startWireProxy(dovecot.host, dovecot.ports.pop3s, { bytesPerSecond: 2 * MB });
    let r: Run;
    try {
      // Signalled once a megabyte of the big message has come: more than 5 s of it are still to come.
      r = await drainVia(proxy, u, ['-v'], { signal: 'SIGINT', when: (p) => p.serverBytes > 1 * MB });
    } finally {
      await proxy.close();
    }
    expect(r.signalled).toBe(1);
    expect(r.code, r.stderr.slice(-2000)).toBe(130);
    expect(r.msAfterSignal, r.stderr.slice(-2000)).toBeLessThan(4_000);
    expect(r.stdout).toContain(`${u.id}: interrupted`);
    expect(r.stdout).not.toMatch(/stopped: error/);
    await expectNothingLostThenRerun(u, messages);
  });

  it('SIGTERM, then SIGINT at once: exit 130 almost at once, no QUIT, nothing lost', async () => {
    const messages = [testMessage(1, 'sig2', 3_000), bigMessage(2, 8 * MB), testMessage(3, 'sig2', 3_000)];
    const u = await mailbox(messages);
    const proxy = await startWireProxy(dovecot.host, dovecot.ports.pop3s, { bytesPerSecond: 2 * MB });
    let r: Run;
    try {
      r = await drainVia(proxy, u, ['-v', '--json'], { signal: 'SIGTERM', when: (p) => p.serverBytes > 1 * MB, then: 'SIGINT', thenAfterMs: 5 });
    } finally {
      await proxy.close();
    }
    expect(r.signalled).toBe(2);
    expect(r.code, r.stderr.slice(-2000)).toBe(130);
    expect(r.msAfterSignal, r.stderr.slice(-2000)).toBeLessThan(2_500);
    expect(JSON.parse(r.stdout)).toMatchObject({ stopReason: 'cancelled' });
    expect(r.stderr).toContain('SIGINT again: stopping at once');
    expect(r.stderr).not.toMatch(/C: QUIT/);
    await expectNothingLostThenRerun(u, messages);
  });
});
