/**
 * The CLI as a subprocess (`node dist/cli/main.js`; built once by test/global-build.ts) against
 * the scriptable POP3 server on loopback: absurd numbers are usage errors, each per-message
 * failure is shown once, and a byte budget holds against a lying LIST (issue 10 items 3 and 8,
 * issue 11 item 6).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { respondWith, startPop3Server, type MailboxMessage, type Pop3ServerHooks, type Pop3TestServer } from '../support/script-server.js';

const MAIN = resolve('dist/cli/main.js');
const PASSWORD = 'secret-pass';
const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0)) await c();
});

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function popdrain(args: string[], cwd: string): Promise<Result> {
  return new Promise((done) => {
    const env = { ...process.env, POPDRAIN_PASSWORD: PASSWORD, XDG_STATE_HOME: join(cwd, 'state') };
    const child = spawn(process.execPath, [MAIN, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'popdrain-cli-hostile-'));
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function server(messages: MailboxMessage[], hooks: Pop3ServerHooks | Pop3ServerHooks[] = []): Promise<Pop3TestServer> {
  const s = await startPop3Server({ users: { alice: { password: PASSWORD } }, mailboxes: { alice: messages }, hooks });
  cleanup.push(() => s.close());
  return s;
}

const mail = (i: number): MailboxMessage => ({ bytes: Buffer.from(`Subject: m${i}\r\nMessage-ID: <m${i}@x>\r\n\r\nbody ${i}\r\n`), uid: `uid-${i}` });
const count = (text: string, needle: string): number => text.split(needle).length - 1;

describe('absurd numbers are usage errors', () => {
  it.each([
    ['--max-messages', '99999999999999999999', /--max-messages wants a whole number/],
    ['--max-size', '99999999999999999999999TB', /--max-size wants a size/],
    ['--max-bytes', '99999999999999999999999TB', /--max-bytes wants a size/],
  ])('%s %s is refused with exit code 2 before connecting', async (flag, value, message) => {
    const s = await server([mail(1)]);
    const dir = await tempDir();
    const result = await popdrain(['drain', `pop3://alice@${s.host}:${s.port}`, '--insecure-plaintext', '--out', join(dir, 'out'), flag, value], dir);
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).toContain(value);
    expect(s.mailboxes.alice!.every((m) => m.deleted !== true)).toBe(true);
  });

  it('the largest safe whole number is still taken (the check is not a plain length limit)', async () => {
    const s = await server([mail(1)]);
    const dir = await tempDir();
    const result = await popdrain(['drain', `pop3://alice@${s.host}:${s.port}`, '--insecure-plaintext', '--out', join(dir, 'out'), '--max-messages', String(Number.MAX_SAFE_INTEGER)], dir);
    expect(result.code, result.stderr).toBe(0);
  });
});

describe('each failure once (issue 11 item 6)', () => {
  const unreadable = [respondWith('RETR 2', '-ERR [SYS/PERM] corrupt file two'), respondWith('RETR 4', '-ERR [SYS/PERM] corrupt file four')];
  const texts = ['corrupt file two', 'corrupt file four'];

  it('two unreadable messages: each failure is shown once, in the summary, not again as a log line on stderr', async () => {
    const s = await server([1, 2, 3, 4, 5].map(mail), unreadable);
    const dir = await tempDir();
    const result = await popdrain(['drain', `pop3://alice@${s.host}:${s.port}`, '--insecure-plaintext', '--out', join(dir, 'out')], dir);
    expect(result.stdout).toMatch(/fetched 3\b/);
    expect(result.stdout).toContain('failed uid-2: SYS_PERM');
    expect(result.stdout).toContain('failed uid-4: SYS_PERM');
    for (const text of texts) expect(count(result.stdout + result.stderr, text), `${text} in:\n${result.stderr}${result.stdout}`).toBe(1);
    expect(count(result.stdout + result.stderr, 'uid-2')).toBe(1);
  });

  it('--json: the report holds each failure exactly once, and stderr does not repeat it', async () => {
    const s = await server([1, 2, 3, 4, 5].map(mail), unreadable);
    const dir = await tempDir();
    const result = await popdrain(['drain', `pop3://alice@${s.host}:${s.port}`, '--insecure-plaintext', '--out', join(dir, 'out'), '--json'], dir);
    const report = JSON.parse(result.stdout) as { fetched: number; failures: Array<{ uidl?: string; message: string }> };
    expect(report.fetched).toBe(3);
    expect(report.failures.map((f) => f.uidl)).toEqual(['uid-2', 'uid-4']);
    for (const text of texts) expect(count(result.stdout + result.stderr, text), `${text} in:\n${result.stderr}`).toBe(1);
  });

  it('with --quiet alone (no summary), the failures stay on stderr, once each', async () => {
    const s = await server([1, 2, 3, 4, 5].map(mail), unreadable);
    const dir = await tempDir();
    const result = await popdrain(['drain', `pop3://alice@${s.host}:${s.port}`, '--insecure-plaintext', '--out', join(dir, 'out'), '--quiet'], dir);
    expect(result.stdout).toBe('');
    for (const text of texts) expect(count(result.stderr, text), result.stderr).toBe(1);
  });
});

describe('--max-bytes without --max-size holds against the bytes received (issue 10 item 3)', () => {
  it('a message listed at 1,000 bytes that sends 3 MB is cut off at the 1 MB budget: not stored, not deleted, reported with the bytes seen', async () => {
    const liar: MailboxMessage = { bytes: Buffer.concat([Buffer.from('Subject: liar\r\n\r\n'), Buffer.alloc(3 * 1024 * 1024, 'x'), Buffer.from('\r\n')]), uid: 'liar' };
    const s = await server([liar, mail(2)], respondWith('LIST', ['+OK', '1 1000', '2 60', '.']));
    const dir = await tempDir();
    const out = join(dir, 'out');
    const result = await popdrain(['drain', `pop3://alice@${s.host}:${s.port}`, '--insecure-plaintext', '--out', out, '--delete', '--max-bytes', '1MB', '--json'], dir);
    const report = JSON.parse(result.stdout) as { fetched: number; skipped: number; deleted: number; stopReason: string; failures: Array<{ uidl?: string; code: string; message: string }> };
    expect(report).toMatchObject({ fetched: 0, skipped: 1, deleted: 0, stopReason: 'max-bytes' });
    expect(report.failures).toHaveLength(1);
    expect(report.failures[0]).toMatchObject({ uidl: 'liar', code: 'LIMIT_EXCEEDED' });
    const seen = Number(/sent (\d+) or more/.exec(report.failures[0]!.message)?.[1]);
    expect(seen).toBeGreaterThan(1_000_000);
    expect(seen).toBeLessThan(2 * 1024 * 1024);
    expect(report.failures[0]!.message).toContain("byte budget");
    expect(result.code).toBe(7);
    expect(s.mailboxes.alice!.every((m) => m.deleted !== true)).toBe(true);
    // Not stored: no message file holds its bytes.
    const stored = (await readdir(out, { recursive: true })).filter((n) => n.endsWith('.eml'));
    expect(stored).toEqual([]);
    const skipped = (await readFile(join(out, 'events.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { 'detail-type': string; detail: { uidl: string; size: number } });
    const event = skipped.find((e) => e['detail-type'] === 'Email Skipped');
    expect(event?.detail).toMatchObject({ uidl: 'liar', reason: 'too-large' });
    expect(event!.detail.size).toBe(seen);
  });
});

