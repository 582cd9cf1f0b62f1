// Output a person can trust: the CLI as a subprocess against Dovecot: dry-run wording, ISO dates
// in status --json, one summary line over a --config run, the cause of a stop printed once.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type Dovecot } from '../../testkit/pop3-servers/dovecot.js';
import { testMessage } from '../../testkit/fixtures/drain-fixtures.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = join(ROOT, 'dist/cli/main.js');
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

let dovecot: Dovecot;
let scratch: string;
let counter = 0;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'popdrain-output-'));
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

function cli(args: string[], env: Record<string, string> = {}): Promise<Result> {
  const child = spawn(process.execPath, [MAIN, ...args], {
    cwd: scratch,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: scratch, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
  });
}

async function user(n: number): Promise<{ user: string; password: string }> {
  counter += 1;
  const name = `outp${counter}`;
  const password = `pw-${counter}-Wm5`;
  await dovecot.addUser(name, password);
  await dovecot.deliverMany(name, Array.from({ length: n }, (_, i) => testMessage(i, name, 800)));
  return { user: name, password };
}

const tls = (): string[] => ['--ca', dovecot.pki.caCertPath, '--servername', 'localhost'];
const url = (u: string): string => `pop3s://${u}@${dovecot.host}:${dovecot.ports.pop3s}`;

describe('output a person can trust', () => {
  it('a dry run says nothing was done, not "run again to continue"', async () => {
    const u = await user(4);
    const r = await cli(['drain', url(u.user), ...tls(), '--out', join(scratch, 'dry'), '--dry-run'], { POPDRAIN_PASSWORD: u.password });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('would fetch 4');
    expect(r.stdout).toContain('dry run: nothing was fetched, stored, announced or deleted');
    expect(r.stdout).not.toContain('run again');
  });

  it('status --json has ISO dates, as drain --json has', async () => {
    const u = await user(2);
    const out = join(scratch, 'status');
    const d = await cli(['drain', url(u.user), ...tls(), '--out', out, '--id', 'st', '--json'], { POPDRAIN_PASSWORD: u.password });
    expect(d.code, d.stderr).toBe(0);
    expect(JSON.parse(d.stdout).finishedAt).toMatch(ISO);
    const s = await cli(['status', '--out', out, '--json']);
    expect(s.code, s.stderr).toBe(0);
    const [row] = JSON.parse(s.stdout) as Array<{ state: { lastRun: { startedAt: string; finishedAt: string }; lastSuccessAt: string } }>;
    expect(row!.state.lastRun.startedAt).toMatch(ISO);
    expect(row!.state.lastRun.finishedAt).toMatch(ISO);
    expect(row!.state.lastSuccessAt).toMatch(ISO);
  });

  it('a --config run with mixed outcomes ends with one line over all mailboxes; each failure is printed once', async () => {
    const good = await user(3);
    const bad = await user(1);
    const config = join(scratch, `mailboxes-${counter}.json`);
    await writeFile(
      config,
      JSON.stringify({
        version: 1,
        defaults: { tlsOptions: { caFile: dovecot.pki.caCertPath, servername: 'localhost' } },
        mailboxes: [
          { id: 'mix-good', host: dovecot.host, port: dovecot.ports.pop3s, user: good.user, auth: { passwordEnv: 'PW_GOOD' } },
          { id: 'mix-bad', host: dovecot.host, port: dovecot.ports.pop3s, user: bad.user, auth: { passwordEnv: 'PW_BAD' } },
        ],
      }),
    );
    const r = await cli(['drain', '--config', config, '--out', join(scratch, 'mix')], { PW_GOOD: good.password, PW_BAD: 'wrong' });
    expect(r.code, r.stderr).toBe(3);
    const last = r.stdout.trim().split('\n').at(-1);
    expect(last).toMatch(/^all 2 mailboxes: 1 drained, 1 auth-failed; fetched 3 \(\d.* kB\)$/);
    const both = `${r.stdout}\n${r.stderr}`;
    expect(both.split('Authentication failed').length - 1, both).toBe(1);
  });
});
