// popdrain poll through the CLI as a subprocess against Dovecot, with time compressed
// (POPDRAIN_POLL_TIME_SCALE=0.01: a 1-minute schedule comes round every ~0.6 s, the first
// 15-minute failure backoff lasts 9 s): new mail delivered between runs is stored; a mailbox
// with a wrong password backs off (far fewer logins than the healthy mailbox's runs); SIGHUP
// adds a mailbox written to the config, keeps the old config when the new one is broken, and
// reopens the log file; SIGTERM ends the loop within seconds with exit 0.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type Dovecot } from '../../testkit/pop3-servers/dovecot.js';
import { testMessage } from '../../testkit/fixtures/drain-fixtures.js';
import { cli } from '../support/real-server-cli.js';

const MAIN = join(import.meta.dirname, '../../dist/cli/main.js');
const SCALE = '0.01';

let dovecot: Dovecot;
let scratch: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'popdrain-poll-'));
  dovecot = await startDovecot();
}, 120_000);
afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await dovecot?.stop();
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
});

function start(args: string[], env: Record<string, string>): { child: ChildProcess; stderr: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [MAIN, ...args], {
    cwd: scratch,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: scratch, POPDRAIN_POLL_TIME_SCALE: SCALE, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString('utf8')));
  child.stdout!.resume();
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  return { child, stderr: () => err, exited };
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const emls = async (out: string, id: string): Promise<number> => (await readdir(join(out, id)).catch(() => [] as string[])).filter((n) => n.endsWith('.eml')).length;
const runLines = (log: string, id: string): string[] => log.split('\n').filter((l) => l.split(' ')[1] === id);
const failedLogins = async (user: string): Promise<number> => ((await readFile(dovecot.logPath, 'utf8')).match(new RegExp(`auth failed[^\\n]*user=<${user}>`, 'g')) ?? []).length;

describe('popdrain poll --config', () => {
  it('drains on schedule, backs off a failing mailbox, reloads on SIGHUP, stops on SIGTERM', async () => {
    await dovecot.addUser('pollgood', 'good-pw-1');
    await dovecot.addUser('pollbad', 'bad-pw-1');
    await dovecot.addUser('polladded', 'added-pw-1');
    await dovecot.deliverMany('pollgood', [testMessage(1, 'poll'), testMessage(2, 'poll')]);
    await dovecot.deliverMany('polladded', [testMessage(1, 'added')]);
    const out = join(scratch, 'state');
    const logFile = join(scratch, 'poll.log');
    const config = join(scratch, 'mailboxes.json');
    const box = (id: string, user: string, env: string) => ({
      id,
      host: dovecot.host,
      port: dovecot.ports.pop3s,
      user,
      auth: { passwordEnv: env },
      tlsOptions: { caFile: dovecot.pki.caCertPath, servername: 'localhost' },
    });
    const file = (mailboxes: unknown[]) => JSON.stringify({ version: 1, defaults: { schedule: { everyMinutes: 1 }, out }, mailboxes });
    await writeFile(config, file([box('good', 'pollgood', 'GOOD_PW'), box('bad', 'pollbad', 'BAD_PW')]), { mode: 0o600 });

    const env = { GOOD_PW: 'good-pw-1', BAD_PW: 'not-the-password', ADDED_PW: 'added-pw-1' };
    const p = start(['poll', '--config', config, '--log-file', logFile], env);
    const log = async (): Promise<string> => readFile(logFile, 'utf8').catch(() => '');

    // The first runs: the good mailbox is drained, the bad one is refused and backs off.
    await until('the first messages', async () => ((await emls(out, 'good')) === 2 ? true : undefined));
    const firstBad = await until('the bad mailbox failing', async () => runLines(await log(), 'bad')[0]);
    expect(firstBad).toMatch(/ back-off stop=auth-failed .*streak=1 backoff=9\.0s next=/);

    // New mail between runs is stored by a later run.
    await dovecot.deliver('pollgood', testMessage(3, 'poll'));
    await until('the new message', async () => ((await emls(out, 'good')) === 3 ? true : undefined));

    // A few seconds of schedule: the good mailbox ran many times, the bad one logged in far
    // fewer times (its second attempt waits 9 s, its third 18 s more), each attempt one login.
    await until('several good runs', async () => (runLines(await log(), 'good').length >= 6 ? true : undefined));
    const text = await log();
    const goodRuns = runLines(text, 'good');
    const badRuns = runLines(text, 'bad');
    expect(goodRuns.every((l) => / ok stop=complete /.test(l))).toBe(true);
    expect(goodRuns.some((l) => /fetched=1 /.test(l))).toBe(true);
    expect(badRuns.length).toBeLessThanOrEqual(goodRuns.length / 3);
    if (badRuns.length > 1) expect(badRuns[1]).toMatch(/streak=2 backoff=18\.0s/);
    // (One more may be under way while the log is read.)
    const logins = await failedLogins('pollbad');
    expect(logins).toBeGreaterThanOrEqual(badRuns.length);
    expect(logins).toBeLessThanOrEqual(badRuns.length + 1);

    // SIGHUP with a broken config: reported, the old one kept (the good mailbox still runs).
    await writeFile(config, '{ "mailboxes": [ { "id": "x" ', { mode: 0o600 });
    p.child.kill('SIGHUP');
    await until('the reload refusal', async () => ((await log()).includes('not used, the previous configuration stays') ? true : undefined));
    const before = runLines(await log(), 'good').length;
    await until('a good run after the refused reload', async () => (runLines(await log(), 'good').length > before ? true : undefined));

    // Logrotate: the file is moved away, SIGHUP reopens it by name; a new mailbox in the config is added.
    await rename(logFile, `${logFile}.1`);
    await writeFile(config, file([box('good', 'pollgood', 'GOOD_PW'), box('bad', 'pollbad', 'BAD_PW'), box('added', 'polladded', 'ADDED_PW')]), { mode: 0o600 });
    p.child.kill('SIGHUP');
    await until('the added mailbox drained', async () => ((await emls(out, 'added')) === 1 ? true : undefined));
    await until('the added mailbox logged in the new file', async () => (runLines(await log(), 'added').length > 0 ? true : undefined));
    expect(await log()).toMatch(/SIGHUP: read .* again: 3 mailboxes, added added/);

    // SIGTERM: the loop ends within a few seconds, exit 0.
    const stopAt = Date.now();
    p.child.kill('SIGTERM');
    const code = await p.exited;
    expect(Date.now() - stopAt).toBeLessThan(5_000);
    expect(code, p.stderr()).toBe(0);
    expect(await log()).toMatch(/popdrain stopped\n$/);
    expect(p.stderr()).not.toContain('good-pw-1');
  }, 90_000);
});

describe('popdrain drain URL --every', () => {
  it('runs one mailbox again and again; SIGINT stops it with exit 0; the log goes to stderr', async () => {
    await dovecot.addUser('pollurl', 'url-pw-1');
    await dovecot.deliverMany('pollurl', [testMessage(1, 'url')]);
    const out = join(scratch, 'url-state');
    const url = `pop3s://pollurl@${dovecot.host}:${dovecot.ports.pop3s}`;
    const p = start(['drain', url, '--ca', dovecot.pki.caCertPath, '--servername', 'localhost', '--id', 'url', '--out', out, '--every', '1m'], { POPDRAIN_PASSWORD: 'url-pw-1' });
    await until('two runs', () => (runLines(p.stderr(), 'url').length >= 2 ? true : undefined));
    expect(await emls(out, 'url')).toBe(1);
    expect(runLines(p.stderr(), 'url')[1]).toMatch(/ ok stop=complete fetched=0 /);
    p.child.kill('SIGINT');
    expect(await p.exited).toBe(0);
  }, 60_000);

  it('refuses an interval under a minute, and options that need no loop', async () => {
    const url = `pop3s://x@${dovecot.host}:${dovecot.ports.pop3s}`;
    const short = await cli(['drain', url, '--every', '10s'], {}, scratch);
    expect(short.code).toBe(2);
    expect(short.stderr).toContain('--every wants a duration of at least 1m');
    const json = await cli(['drain', url, '--every', '5m', '--json'], {}, scratch);
    expect(json.code).toBe(2);
    expect(json.stderr).toContain('--json does not go with poll');
    const none = await cli(['poll'], {}, scratch);
    expect(none.code).toBe(2);
  });
});
