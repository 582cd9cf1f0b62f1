/**
 * The CLI (`node dist/cli/main.js`; built once by test/global-build.ts) storing onto a read-only
 * file system: a tmpfs mounted read-only, which needs root. CI runs as root; there, a mount that
 * fails is a failure, not a skip. The wording function itself is tested in test/unit/fs-failure-text.test.ts.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startPop3Server, type MailboxMessage, type Pop3TestServer } from '../support/script-server.js';

const MAIN = resolve('dist/cli/main.js');
const PASSWORD = 'secret-pass';
const IS_ROOT = process.getuid?.() === 0;
const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

function popdrain(args: string[], state: string): Promise<{ code: number | null; out: string }> {
  return new Promise((done) => {
    const env = { ...process.env, POPDRAIN_PASSWORD: PASSWORD, XDG_STATE_HOME: state };
    const child = spawn(process.execPath, [MAIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (code) => done({ code, out }));
  });
}

/** A fresh read-only tmpfs at `dir` (created), unmounted after the test. */
function mountReadOnly(dir: string): void {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', dir]);
  cleanup.push(() => {
    execFileSync('umount', [dir]);
  });
}

const mail = (i: number): MailboxMessage => ({ bytes: Buffer.from(`Subject: m${i}\r\n\r\nbody ${i}\r\n`), uid: `uid-${i}` });

async function setUp(): Promise<{ s: Pop3TestServer; dir: string; url: string }> {
  const s = await startPop3Server({ users: { alice: { password: PASSWORD } }, mailboxes: { alice: [mail(1), mail(2)] } });
  cleanup.push(() => s.close());
  const dir = await mkdtemp(join(tmpdir(), 'popdrain-ro-'));
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  return { s, dir, url: `pop3://alice@${s.host}:${s.port}` };
}

/** One errno, the real one, with the path and the fix; never ENOENT, never the code twice. */
function expectReadOnlyWording(out: string, path: string): void {
  expect(out).toContain('EROFS: read-only file system');
  expect(out).toContain(path);
  expect(out).toContain('mounted read-only');
  expect(out).not.toContain('ENOENT');
  expect(out).not.toMatch(/EROFS: EROFS/);
}

describe.runIf(IS_ROOT)('a read-only file system (root: tmpfs mounted read-only)', () => {
  it('--out below a read-only mount: EROFS with the folder, not ENOENT', async () => {
    const { s, dir, url } = await setUp();
    const ro = join(dir, 'ro');
    await mkdir(ro);
    mountReadOnly(ro);
    const result = await popdrain(['drain', url, '--insecure-plaintext', '--out', join(ro, 'out')], join(dir, 'state'));
    expect(result.code, result.out).toBe(7);
    expectReadOnlyWording(result.out, join(ro, 'out'));
    expect(result.out).not.toContain('internal error');
    expect(s.mailboxes.alice!.every((m) => m.deleted !== true)).toBe(true);
  });

  it('a mailbox folder that is read-only: each message fails with EROFS once, naming its file', async () => {
    const { s, dir, url } = await setUp();
    const out = join(dir, 'out');
    const first = await popdrain(['drain', url, '--insecure-plaintext', '--out', out, '--keep'], join(dir, 'state'));
    expect(first.code, first.out).toBe(0);
    const folder = (await readdir(out)).find((n) => n.startsWith('alice'))!;
    mountReadOnly(join(out, folder));
    s.mailboxes.alice!.push(mail(3));
    const result = await popdrain(['drain', url, '--insecure-plaintext', '--out', out, '--keep'], join(dir, 'state'));
    expect(result.code, result.out).toBe(7);
    expect(result.out).toContain('failed uid-3: STORE_FAILED');
    expectReadOnlyWording(result.out, join(out, folder));
  });

  it('--maildir on a read-only mount: EROFS, not ENOENT', async () => {
    const { dir, url } = await setUp();
    const ro = join(dir, 'ro');
    await mkdir(ro);
    mountReadOnly(ro);
    const result = await popdrain(['drain', url, '--insecure-plaintext', '--out', join(dir, 'out'), '--maildir', join(ro, 'Maildir')], join(dir, 'state'));
    expect(result.code, result.out).toBe(7);
    expectReadOnlyWording(result.out, join(ro, 'Maildir'));
  });
});
