// One mailbox, one identity: the CLI as a subprocess against Dovecot over implicit TLS and STLS,
// with no --id and (in part) no --out, XDG_DATA_HOME and the current directory chosen per test.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formerDefaultMailboxId } from '../../cli/mailbox-identity.js';
import { startDovecot, type Dovecot } from '../../testkit/pop3-servers/dovecot.js';
import { storedFiles, testMessage } from '../../testkit/fixtures/drain-fixtures.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = join(ROOT, 'dist/cli/main.js');

let dovecot: Dovecot;
let scratch: string;
let counter = 0;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'popdrain-identity-'));
  dovecot = await startDovecot();
});
afterAll(async () => {
  await dovecot?.stop();
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
});

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string>, cwd: string): Promise<Result> {
  const child = spawn(process.execPath, [MAIN, ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: join(scratch, 'home'), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
  });
}

async function user(n: number): Promise<{ user: string; password: string }> {
  counter += 1;
  const name = `ident${counter}`;
  const password = `pw-${counter}-Hd8`;
  await dovecot.addUser(name, password);
  await dovecot.deliverMany(name, Array.from({ length: n }, (_, i) => testMessage(i, `ident${counter}`, 500)));
  return { user: name, password };
}

async function folder(name: string): Promise<string> {
  counter += 1;
  const dir = join(scratch, `${name}-${counter}`);
  await mkdir(dir, { recursive: true });
  return dir;
}

const tls = (): string[] => ['--ca', dovecot.pki.caCertPath, '--servername', 'localhost'];
const pop3s = (u: string, host = '127.0.0.1'): string => `pop3s://${u}@${host}:${dovecot.ports.pop3s}`;
const pop3 = (u: string, host = '127.0.0.1'): string => `pop3://${u}@${host}:${dovecot.ports.pop3}`;
const report = (r: Result): { mailboxId: string; fetched: number; alreadyKnown: number; stopReason: string } => JSON.parse(r.stdout);

describe('one mailbox, one identity', () => {
  it('pop3s:// and pop3:// (another port) are one mailbox: the second run fetches nothing', async () => {
    const u = await user(6);
    const out = await folder('out');
    const env = { POPDRAIN_PASSWORD: u.password };
    const first = await cli(['drain', pop3s(u.user), ...tls(), '--out', out, '--json'], env, scratch);
    expect(first.code, first.stderr).toBe(0);
    expect(report(first).fetched).toBe(6);
    const second = await cli(['drain', pop3(u.user), ...tls(), '--out', out, '--json'], env, scratch);
    expect(second.code, second.stderr).toBe(0);
    expect(report(second)).toMatchObject({ mailboxId: report(first).mailboxId, fetched: 0, alreadyKnown: 6 });
  });

  it('a host alias: stops before fetching and names the id; --id continues it; --new-mailbox drains it again', async () => {
    const u = await user(8);
    const out = await folder('out');
    const env = { POPDRAIN_PASSWORD: u.password };
    const first = await cli(['drain', pop3s(u.user, '127.0.0.1'), ...tls(), '--out', out, '--json'], env, scratch);
    expect(first.code, first.stderr).toBe(0);
    const id = report(first).mailboxId;

    const alias = await cli(['drain', pop3s(u.user, 'localhost'), ...tls(), '--out', out], env, scratch);
    expect(alias.code, alias.stderr).toBe(2);
    expect(alias.stdout).toContain(`8 of the 8 messages on the server are recorded under mailbox id "${id}"`);
    expect(alias.stdout).toContain(`--id ${id}`);
    expect(alias.stdout).toContain('--new-mailbox');
    expect((await storedFiles(out, id)).size).toBe(8);

    const continued = await cli(['drain', pop3s(u.user, 'localhost'), ...tls(), '--out', out, '--id', id, '--json'], env, scratch);
    expect(continued.code, continued.stderr).toBe(0);
    expect(report(continued)).toMatchObject({ mailboxId: id, fetched: 0 });

    const fresh = await cli(['drain', pop3s(u.user, 'localhost'), ...tls(), '--out', out, '--new-mailbox', '--json'], env, scratch);
    expect(fresh.code, fresh.stderr).toBe(0);
    expect(report(fresh).fetched).toBe(8);
    expect(report(fresh).mailboxId).not.toBe(id);
  });

  it('without --out: $XDG_DATA_HOME/popdrain whatever the current directory, and the summary says where', async () => {
    const u = await user(5);
    const data = await folder('xdg');
    const env = { POPDRAIN_PASSWORD: u.password, XDG_DATA_HOME: data };
    const first = await cli(['drain', pop3s(u.user), ...tls()], env, await folder('cwd-a'));
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain(`stored in ${join(data, 'popdrain')}`);
    const second = await cli(['drain', pop3s(u.user), ...tls(), '--json'], env, await folder('cwd-b'));
    expect(second.code, second.stderr).toBe(0);
    expect(report(second)).toMatchObject({ fetched: 0, alreadyKnown: 5 });
    const status = await cli(['status'], env, await folder('cwd-c'));
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(report(second).mailboxId);
  });

  it('state of an earlier version (its default id held the port; ./popdrain-data) is continued, and it says so', async () => {
    const u = await user(4);
    const cwd = await folder('cwd-old');
    const env = { POPDRAIN_PASSWORD: u.password, XDG_DATA_HOME: await folder('xdg-unused') };
    const former = formerDefaultMailboxId(u.user, '127.0.0.1', dovecot.ports.pop3s);
    const old = await cli(['drain', pop3s(u.user), ...tls(), '--id', former, '--out', 'popdrain-data', '--json'], env, cwd);
    expect(old.code, old.stderr).toBe(0);
    expect(report(old).fetched).toBe(4);

    const now = await cli(['drain', pop3s(u.user), ...tls(), '--json'], env, cwd);
    expect(now.code, now.stderr).toBe(0);
    expect(report(now)).toMatchObject({ mailboxId: former, fetched: 0, alreadyKnown: 4 });
    expect(now.stderr).toContain(`using ${join(cwd, 'popdrain-data')}`);
    expect(now.stderr).toContain(`continuing mailbox id "${former}"`);
  });
});
