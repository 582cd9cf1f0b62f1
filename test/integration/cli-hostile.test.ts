/**
 * The CLI against small defects found with hostile input (issue 10): `--out ''` must not write
 * into the current directory; `--ca` and `--config` naming an endless file are refused. Spawns `node dist/cli/main.js` (built once by test/global-build.ts)
 * against the scriptable POP3 server on loopback.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startPop3Server, type Pop3TestServer } from '../../lib/testing/pop3-server/index.js';

const MAIN = resolve('dist/cli/main.js');
const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0)) await c();
});

function run(args: string[], cwd: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [MAIN, ...args], { cwd, env: { ...process.env, POPDRAIN_PASSWORD: 'secret' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => done({ code, stderr }));
  });
}

describe('popdrain drain with hostile arguments', () => {
  it("--out '' is refused as a usage error and writes nothing into the current directory", async () => {
    const s: Pop3TestServer = await startPop3Server({
      users: { alice: { password: 'secret' } },
      mailboxes: { alice: [{ bytes: Buffer.from('Subject: x\r\n\r\nbody\r\n'), uid: 'u1' }] },
    });
    cleanup.push(() => s.close());
    const cwd = await mkdtemp(join(tmpdir(), 'popdrain-cwd-'));
    cleanup.push(() => rm(cwd, { recursive: true, force: true }));
    const result = await run(['drain', `pop3://alice@${s.host}:${s.port}`, '--insecure-plaintext', '--out', ''], cwd);
    expect(result.stderr).toContain('--out');
    expect(result.code).toBe(2);
    expect(await readdir(cwd)).toEqual([]);
    expect(s.mailboxes.alice!.every((m) => m.deleted !== true)).toBe(true);
  });

  it.each([
    ['--ca /dev/zero', (url: string) => ['drain', url, '--ca', '/dev/zero']],
    ['--config /dev/zero', () => ['drain', '--config', '/dev/zero']],
  ])('%s is refused after a bounded read, not read until memory runs out', async (_name, args) => {
    const cwd = await mkdtemp(join(tmpdir(), 'popdrain-cwd-'));
    cleanup.push(() => rm(cwd, { recursive: true, force: true }));
    const started = Date.now();
    const result = await run(args('pop3s://alice@127.0.0.1:1'), cwd);
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toMatch(/larger than \d+ bytes/);
    expect(Date.now() - started).toBeLessThan(20_000);
  });
});

