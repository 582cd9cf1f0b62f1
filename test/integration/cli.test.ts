// The command-line tool as a user runs it: `node dist/cli/main.js ...` in a child process, against
// a real Dovecot (implicit TLS, and STLS on the pop3 port) and, for what Dovecot will not do on
// demand, the scripted POP3 server. Each test checks what lands on disk, what the server still
// holds, the events, the report and the exit code.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { chmod, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FileLedger, LEDGER_SUBDIR } from '../../lib/adapters/local/index.js';
import { startDovecot, type Dovecot } from '../../testkit/pop3-servers/dovecot.js';
import { eventsOf, servedForm, sha256, storedFiles, testMessage } from '../../testkit/fixtures/drain-fixtures.js';
import { rejectLogin, silentGreeting, startPop3Server, type Pop3TestServer } from '../support/script-server.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = join(ROOT, 'dist/cli/main.js');
/** A child that has not exited by then is killed (and the test fails). */
const CLI_TIMEOUT_MS = 60_000;

let dovecot: Dovecot;
let scratch: string;
const cleanups: Array<() => Promise<void>> = [];
let counter = 0;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'popdrain-cli-'));
  dovecot = await startDovecot();
});
afterAll(async () => {
  await dovecot?.stop();
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

// ---------------------------------------------------------------------------------------------
// Running the tool

interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

interface CliOptions {
  env?: Record<string, string>;
  cwd?: string;
  /** Node options before the script (e.g. `--import` of a clock shift). */
  nodeArgs?: string[];
}

/** Starts the tool with a clean environment (no POPDRAIN_PASSWORD unless given), stdin not a TTY. */
function startCli(args: string[], options: CliOptions = {}): { child: ChildProcess; result: Promise<CliResult> } {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), MAIN, ...args], {
    cwd: options.cwd ?? scratch,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout!.on('data', (d: Buffer) => out.push(d));
  child.stderr!.on('data', (d: Buffer) => err.push(d));
  const timer = setTimeout(() => child.kill('SIGKILL'), CLI_TIMEOUT_MS);
  const result = new Promise<CliResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
  return { child, result };
}

function cli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  return startCli(args, options).result;
}

const tlsArgs = (): string[] => ['--ca', dovecot.pki.caCertPath, '--servername', 'localhost'];
const pop3sUrl = (user: string): string => `pop3s://${encodeURIComponent(user)}@${dovecot.host}:${dovecot.ports.pop3s}`;
const pop3Url = (user: string): string => `pop3://${encodeURIComponent(user)}@${dovecot.host}:${dovecot.ports.pop3}`;

interface TestUser {
  user: string;
  password: string;
  id: string;
  /** Every message delivered so far (as stored in the maildir, LF line ends). */
  messages: Buffer[];
}

async function newUser(messages: Buffer[], name?: string): Promise<TestUser> {
  counter += 1;
  const user = name ?? `cli${counter}`;
  const password = `pw-${counter}-Zq7v`;
  await dovecot.addUser(user, password);
  if (messages.length > 0) await dovecot.deliverMany(user, messages);
  return { user, password, id: `mbx-${counter}`, messages: [...messages] };
}

async function deliverMore(u: TestUser, messages: Buffer[]): Promise<void> {
  await dovecot.deliverMany(u.user, messages);
  u.messages.push(...messages);
}

async function outDir(): Promise<string> {
  counter += 1;
  const out = join(scratch, `out-${counter}`);
  cleanups.push(() => rm(out, { recursive: true, force: true }));
  return out;
}

/** `drain` of a Dovecot user over implicit TLS into `out`, with the password in the environment. */
function drain(u: TestUser, out: string, extra: string[] = [], options: CliOptions = {}): Promise<CliResult> {
  return cli(['drain', pop3sUrl(u.user), ...tlsArgs(), '--id', u.id, '--out', out, ...extra], {
    ...options,
    env: { POPDRAIN_PASSWORD: u.password, ...options.env },
  });
}

function parseReport(r: CliResult): Record<string, unknown> & { fetched: number; stopReason: string } {
  return JSON.parse(r.stdout) as Record<string, unknown> & { fetched: number; stopReason: string };
}

// ---------------------------------------------------------------------------------------------
// What is on disk and on the server

const shasOf = (buffers: Iterable<Buffer>): string[] => [...buffers].map(sha256).sort();
const servedShas = (messages: Buffer[]): string[] => shasOf(messages.map(servedForm));

/** The served form of what the server still holds for `user`. */
async function onServer(user: string): Promise<Buffer[]> {
  const paths = await dovecot.listMaildir(user);
  return Promise.all(paths.map(async (p) => servedForm(await readFile(p))));
}

interface Entry {
  path: string;
  mode: number;
  isDir: boolean;
}

async function walk(dir: string): Promise<Entry[]> {
  const found: Entry[] = [];
  const visit = async (d: string): Promise<void> => {
    for (const name of await readdir(d)) {
      const path = join(d, name);
      const st = await stat(path);
      found.push({ path, mode: st.mode & 0o777, isDir: st.isDirectory() });
      if (st.isDirectory()) await visit(path);
    }
  };
  await visit(dir);
  return found;
}

/** Every .eml under `out` is in out/<id>/ and byte for byte one of `messages` as served; no duplicates. */
async function expectStoredExactly(out: string, id: string, messages: Buffer[]): Promise<void> {
  const emls = (await walk(out)).filter((e) => e.path.endsWith('.eml'));
  for (const e of emls) expect(relative(out, e.path).split('/')[0]).toBe(id);
  const files = await storedFiles(out, id);
  const expected = new Map(messages.map((m) => [sha256(servedForm(m)), servedForm(m)]));
  for (const [name, bytes] of files) {
    const want = expected.get(sha256(bytes));
    expect(want, `${name} is not byte for byte a served message`).toBeDefined();
    expect(Buffer.compare(bytes, want!)).toBe(0);
  }
  expect(shasOf(files.values())).toEqual(servedShas(messages));
}

async function storedEvents(out: string): Promise<Array<{ id: string; detail: Record<string, unknown> }>> {
  return (await eventsOf(out)).filter((e) => e['detail-type'] === 'Email Stored');
}

/** A message of about `size` bytes in lines of 76 characters (nothing like one huge line). */
function bigMessage(i: number, size: number): Buffer {
  const head = `From: big${i}@example.com\nTo: r@example.com\nSubject: big ${i}\nMessage-ID: <big-${i}@example.com>\n\n`;
  const line = `${`big ${i} `.padEnd(75, 'y')}\n`;
  return Buffer.from(head + line.repeat(Math.ceil(size / line.length)));
}

/** A port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

async function scripted(options: Parameters<typeof startPop3Server>[0]): Promise<Pop3TestServer> {
  const server = await startPop3Server(options);
  cleanups.push(() => server.close());
  return server;
}

const oneLine = (stderr: string): void => {
  const lines = stderr.split('\n').filter((l) => l !== '');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^popdrain: /);
  expect(stderr).not.toMatch(/\n\s+at /);
};

// ---------------------------------------------------------------------------------------------

describe('popdrain drain', () => {
  it('stores every message byte for byte as served (CRLF), owner-only, and announces each', async () => {
    const u = await newUser(Array.from({ length: 12 }, (_, i) => testMessage(i, 'basic', 100 + i * 50)));
    const out = await outDir();
    const r = await drain(u, out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`${u.id}: drained`);
    expect(r.stdout).toContain('fetched 12');
    await expectStoredExactly(out, u.id, u.messages);
    for (const e of await walk(out)) {
      expect(e.mode, e.path).toBe(e.isDir ? 0o700 : 0o600);
    }
    expect((await stat(out)).mode & 0o777).toBe(0o700);
    const events = await storedEvents(out);
    expect(events).toHaveLength(12);
    expect(events.map((e) => e.detail.sha256 as string).sort()).toEqual(servedShas(u.messages));
    // Keep is the default: the server still has everything.
    expect(await onServer(u.user)).toHaveLength(12);
  });

  it('drains over STLS with pop3:// and traces the exchange without the password', async () => {
    const u = await newUser(Array.from({ length: 4 }, (_, i) => testMessage(i, 'stls')));
    for (const auth of ['USER', 'PLAIN', 'auto']) {
      const out = await outDir();
      const r = await cli(['drain', pop3Url(u.user), ...tlsArgs(), '--id', u.id, '--out', out, '-v', '--auth', auth], {
        env: { POPDRAIN_PASSWORD: u.password },
      });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/C: STLS/);
      expect(r.stderr).toMatch(/C: (PASS|AUTH) /);
      expect(r.stderr).toMatch(/C: RETR 1/);
      const forms = [
        u.password,
        Buffer.from(u.password).toString('base64'),
        Buffer.from(`\0${u.user}\0${u.password}`).toString('base64'),
        Buffer.from(`${u.user}\0${u.user}\0${u.password}`).toString('base64'),
      ];
      for (const f of forms) {
        expect(r.stderr).not.toContain(f);
        expect(r.stdout).not.toContain(f);
      }
      await expectStoredExactly(out, u.id, u.messages);
    }
  });

  it('fetches only new mail on a rerun', async () => {
    const u = await newUser(Array.from({ length: 5 }, (_, i) => testMessage(i, 'inc')));
    const out = await outDir();
    expect((await drain(u, out)).code).toBe(0);
    await deliverMore(u, Array.from({ length: 3 }, (_, i) => testMessage(100 + i, 'inc')));
    const r = await drain(u, out, ['--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(parseReport(r)).toMatchObject({ fetched: 3, alreadyKnown: 5, stopReason: 'complete' });
    await expectStoredExactly(out, u.id, u.messages);
    const again = await drain(u, out, ['--json']);
    expect(parseReport(again)).toMatchObject({ fetched: 0, alreadyKnown: 8 });
    expect(await storedEvents(out)).toHaveLength(8);
  });

  it('--maildir delivers LF line ends into new/, never twice (also after a reader moved one to cur/)', async () => {
    const u = await newUser(Array.from({ length: 6 }, (_, i) => testMessage(i, 'md', 300)));
    const out = await outDir();
    const maildir = join(await outDir(), 'Maildir');
    const r = await drain(u, out, ['--maildir', maildir]);
    expect(r.code, r.stderr).toBe(0);
    const newNames = await readdir(join(maildir, 'new'));
    expect(newNames).toHaveLength(6);
    const contents = await Promise.all(newNames.map((n) => readFile(join(maildir, 'new', n))));
    for (const c of contents) expect(c.includes('\r\n')).toBe(false);
    // The LF form is what the maildir on the server holds (the test messages end in a newline).
    expect(shasOf(contents)).toEqual(shasOf(u.messages));
    for (const n of newNames) expect((await stat(join(maildir, 'new', n))).mode & 0o777).toBe(0o600);
    expect(await storedFiles(out, u.id)).toHaveProperty('size', 0);

    // A rerun with the same ledger delivers nothing.
    expect((await drain(u, out, ['--maildir', maildir])).code).toBe(0);
    expect(await readdir(join(maildir, 'new'))).toHaveLength(6);

    // A mail reader moves one to cur/; a run that lost its ledger (a crash before recording)
    // fetches everything again and must still deliver nothing twice.
    await rename(join(maildir, 'new', newNames[0]!), join(maildir, 'cur', `${newNames[0]}:2,S`));
    const fresh = await outDir();
    const again = await drain(u, fresh, ['--maildir', maildir, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(parseReport(again).fetched).toBe(6);
    expect(await readdir(join(maildir, 'new'))).toHaveLength(5);
    expect(await readdir(join(maildir, 'cur'))).toEqual([`${newNames[0]}:2,S`]);
    expect((await storedEvents(fresh)).length).toBe(6);
  });

  it('--delete removes from the server exactly what it stored and announced', async () => {
    const u = await newUser(Array.from({ length: 7 }, (_, i) => testMessage(i, 'del')));
    const out = await outDir();
    const r = await drain(u, out, ['--delete', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(parseReport(r)).toMatchObject({ fetched: 7, deleted: 7 });
    expect(await onServer(u.user)).toHaveLength(0);
    await expectStoredExactly(out, u.id, u.messages);
  });

  it('--keep-days deletes only what was first seen that many days ago', async () => {
    const u = await newUser(Array.from({ length: 4 }, (_, i) => testMessage(i, 'kd')));
    const out = await outDir();
    const first = await drain(u, out, ['--keep-days', '1', '--json']);
    expect(parseReport(first)).toMatchObject({ fetched: 4, deleted: 0 });
    expect(await onServer(u.user)).toHaveLength(4);
    // Two days later (the clock of the child process moved forward), they go.
    const shift = join(scratch, 'shift-clock.mjs');
    await writeFile(shift, 'const real = Date.now; const offset = Number(process.env.TEST_CLOCK_OFFSET_MS); Date.now = () => real() + offset;\n');
    const later = await drain(u, out, ['--keep-days', '1', '--json'], {
      nodeArgs: ['--import', `file://${shift}`],
      env: { TEST_CLOCK_OFFSET_MS: String(2 * 86_400_000) },
    });
    expect(later.code, later.stderr).toBe(0);
    expect(parseReport(later)).toMatchObject({ fetched: 0, deleted: 4 });
    expect(await onServer(u.user)).toHaveLength(0);
  });

  it('--max-size skips larger messages with an Email Skipped event, exit 0, and says so', async () => {
    const small = Array.from({ length: 3 }, (_, i) => testMessage(i, 'ms'));
    const large = bigMessage(1, 40_000);
    const u = await newUser([...small, large]);
    const out = await outDir();
    const r = await drain(u, out, ['--max-size', '20kB', '--delete']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('skipped 1 over the size cap');
    await expectStoredExactly(out, u.id, small);
    const skipped = (await eventsOf(out)).filter((e) => e['detail-type'] === 'Email Skipped');
    expect(skipped).toHaveLength(1);
    expect(skipped[0]!.detail).toMatchObject({ reason: 'too-large', limit: 20_000 });
    // The skipped message stays on the server.
    expect(shasOf(await onServer(u.user))).toEqual(servedShas([large]));
  });

  it('--max-messages, --max-bytes and --max-time stop early with exit 0 and say that more remains', async () => {
    const u = await newUser(Array.from({ length: 10 }, (_, i) => testMessage(i, 'budget', 1000)));
    const out = await outDir();
    const byCount = await drain(u, out, ['--max-messages', '3']);
    expect(byCount.code, byCount.stderr).toBe(0);
    expect(byCount.stdout).toContain('stopped: max-messages');
    expect(byCount.stdout).toContain('7 messages remain: run again to continue');
    expect(await storedFiles(out, u.id)).toHaveProperty('size', 3);

    const byBytes = await drain(u, out, ['--max-bytes', '2500', '--json']);
    expect(byBytes.code, byBytes.stderr).toBe(0);
    expect(parseReport(byBytes)).toMatchObject({ stopReason: 'max-bytes', fetched: 2, moreRemaining: true, remaining: 5 });

    const byTime = await drain(u, out, ['--max-time', '1ms']);
    expect(byTime.code, byTime.stderr).toBe(0);
    expect(byTime.stdout).toContain('stopped: deadline');
    expect(byTime.stdout).toContain('5 messages remain: run again to continue');

    expect((await drain(u, out)).code).toBe(0);
    await expectStoredExactly(out, u.id, u.messages);
  });

  it('--dry-run lists what it would do and changes nothing', async () => {
    const u = await newUser([...Array.from({ length: 5 }, (_, i) => testMessage(i, 'dry')), bigMessage(2, 30_000)]);
    const out = await outDir();
    const r = await drain(u, out, ['--dry-run', '--delete', '--max-size', '10kB']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('would fetch 5');
    expect(r.stdout).toContain('skip 1 over the size cap');
    expect(r.stdout.match(/^ {4}fetch #\d+/gm)).toHaveLength(5);
    expect(r.stdout.match(/^ {4}skip {2}#\d+/gm)).toHaveLength(1);
    const emls = (await walk(out).catch(() => [] as Entry[])).filter((e) => e.path.endsWith('.eml'));
    expect(emls).toHaveLength(0);
    expect(await eventsOf(out).catch(() => [])).toHaveLength(0);
    expect(await onServer(u.user)).toHaveLength(6);
    const real = await drain(u, out, ['--json']);
    expect(parseReport(real).fetched).toBe(6);
  });

  it('--json writes one JSON report on stdout and nothing else', async () => {
    const u = await newUser(Array.from({ length: 3 }, (_, i) => testMessage(i, 'json')));
    const out = await outDir();
    const r = await drain(u, out, ['--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = parseReport(r);
    expect(report).toMatchObject({ mailboxId: u.id, stopReason: 'complete', ok: true, fetched: 3, announced: 3, failures: [] });
    expect(r.stdout.trim().startsWith('{')).toBe(true);
  });

  it('--config drains several mailboxes, two at a time, with passwords from variables and files', async () => {
    const users = await Promise.all([0, 1, 2].map(async () => newUser([])));
    for (const [k, u] of users.entries()) await deliverMore(u, Array.from({ length: 60 }, (_, i) => testMessage(i, `cfg${k}`, 2000)));
    const pwFile = join(scratch, `pw-${counter}`);
    await writeFile(pwFile, `${users[1]!.password}\n`, { mode: 0o600 });
    const config = join(scratch, `mailboxes-${counter}.json`);
    await writeFile(
      config,
      JSON.stringify({
        version: 1,
        defaults: { tlsOptions: { caFile: dovecot.pki.caCertPath, servername: 'localhost' } },
        mailboxes: [
          { id: 'cfg-a', host: dovecot.host, port: dovecot.ports.pop3s, user: users[0]!.user, auth: { passwordEnv: 'CFG_PW_A' } },
          { id: 'cfg-b', host: dovecot.host, port: dovecot.ports.pop3s, user: users[1]!.user, auth: { passwordFile: pwFile } },
          { id: 'cfg-c', host: dovecot.host, port: dovecot.ports.pop3, tls: 'starttls', user: users[2]!.user, auth: { passwordEnv: 'CFG_PW_C' } },
        ],
      }),
    );
    const out = await outDir();
    const r = await cli(['drain', '--config', config, '--parallel', '2', '--out', out, '--json'], {
      env: { CFG_PW_A: users[0]!.password, CFG_PW_C: users[2]!.password },
    });
    expect(r.code, r.stderr).toBe(0);
    const reports = JSON.parse(r.stdout) as Array<{ mailboxId: string; fetched: number; stopReason: string; startedAt: string; finishedAt: string }>;
    expect(reports.map((x) => x.mailboxId).sort()).toEqual(['cfg-a', 'cfg-b', 'cfg-c']);
    for (const x of reports) expect(x).toMatchObject({ stopReason: 'complete', fetched: 60 });
    // Two ran at once: the first two started before either finished.
    const [p, q] = [...reports].sort((a, b) => a.startedAt.localeCompare(b.startedAt));
    expect(Date.parse(q!.startedAt)).toBeLessThan(Date.parse(p!.finishedAt));
    for (const [k, id] of ['cfg-a', 'cfg-b', 'cfg-c'].entries()) expect(shasOf((await storedFiles(out, id)).values())).toEqual(servedShas(users[k]!.messages));
  });

  it('warns about a password file others can read, and still drains', async () => {
    const u = await newUser([testMessage(1, 'pwf')]);
    const pwFile = join(scratch, `pw-open-${counter}`);
    await writeFile(pwFile, `${u.password}\n`);
    await chmod(pwFile, 0o644);
    const out = await outDir();
    const args = ['drain', pop3sUrl(u.user), ...tlsArgs(), '--id', u.id, '--out', out, '--password-file', pwFile];
    const open = await cli(args);
    expect(open.code, open.stderr).toBe(0);
    expect(open.stderr).toContain(`${pwFile} is readable by other users`);
    await chmod(pwFile, 0o600);
    const closed = await cli(args);
    expect(closed.code).toBe(0);
    expect(closed.stderr).not.toContain('readable by other users');
  });

  it('percent-decodes the user of the URL, and --user overrides it', async () => {
    const u = await newUser([testMessage(1, 'at'), testMessage(2, 'at')], `jane${counter}@example.com`);
    const out = await outDir();
    const url = `pop3s://${u.user.replace('@', '%40')}@${dovecot.host}:${dovecot.ports.pop3s}`;
    const r = await cli(['drain', url, ...tlsArgs(), '--out', out, '--json'], { env: { POPDRAIN_PASSWORD: u.password } });
    expect(r.code, r.stderr).toBe(0);
    const report = parseReport(r);
    expect(report.fetched).toBe(2);
    // The derived id is readable and safe as a folder name, and holds neither scheme nor port.
    expect(report.mailboxId).toMatch(/^jane\d+_example\.com_127\.0\.0\.1-[0-9a-f]{8}$/);
    await expectStoredExactly(out, report.mailboxId as string, u.messages);

    const out2 = await outDir();
    const other = `pop3s://nobody@${dovecot.host}:${dovecot.ports.pop3s}`;
    const o = await cli(['drain', other, ...tlsArgs(), '--user', u.user, '--id', 'override', '--out', out2, '--json'], {
      env: { POPDRAIN_PASSWORD: u.password },
    });
    expect(o.code, o.stderr).toBe(0);
    expect(parseReport(o).fetched).toBe(2);
  });

  it('first SIGINT: requests no more, QUITs (on loopback well within its 2 s), prints the report, exits 130; deleted = stored', async () => {
    const messages = Array.from({ length: 400 }, (_, i) => bigMessage(i, 30_000));
    const u = await newUser(messages);
    const out = await outDir();
    const { child, result } = startCli(['drain', pop3sUrl(u.user), ...tlsArgs(), '--id', u.id, '--out', out, '--delete', '-v'], {
      env: { POPDRAIN_PASSWORD: u.password },
    });
    let sent = false;
    child.stderr!.on('data', (d: Buffer) => {
      // Progress lines come every 10 %: interrupt after the first one.
      if (!sent && /\d+\/400 msgs/.test(d.toString())) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    const r = await result;
    expect(sent).toBe(true);
    expect(r.code, r.stderr.slice(-2000)).toBe(130);
    expect(r.stderr).toContain('SIGINT: stopping: no new messages');
    expect(r.stderr).toMatch(/C: QUIT\n.*S: \+OK/);
    expect(r.stdout).toContain(`${u.id}: interrupted`);
    const m = /fetched (\d+) .*deleted (\d+)/.exec(r.stdout);
    expect(m).not.toBeNull();
    const [fetched, deleted] = [Number(m![1]), Number(m![2])];
    expect(fetched).toBeGreaterThan(0);
    expect(fetched).toBeLessThan(400);
    expect(deleted).toBe(fetched);
    const stored = await storedFiles(out, u.id);
    expect(stored.size).toBe(fetched);
    // What left the server is exactly what was stored.
    const remaining = await onServer(u.user);
    expect(remaining).toHaveLength(400 - fetched);
    expect(shasOf([...remaining, ...stored.values()])).toEqual(servedShas(messages));
    // A rerun takes the rest.
    const rest = await drain(u, out, ['--delete', '--json']);
    expect(parseReport(rest)).toMatchObject({ fetched: 400 - fetched, stopReason: 'complete' });
    await expectStoredExactly(out, u.id, messages);
    expect(await onServer(u.user)).toHaveLength(0);
  });

  it('a second SIGINT stops at once: exit 130, no QUIT, nothing deleted (also while still connecting)', async () => {
    const messages = Array.from({ length: 300 }, (_, i) => bigMessage(i, 30_000));
    const u = await newUser(messages);
    const out = await outDir();
    const { child, result } = startCli(['drain', pop3sUrl(u.user), ...tlsArgs(), '--id', u.id, '--out', out, '--delete', '-v'], {
      env: { POPDRAIN_PASSWORD: u.password },
    });
    // Signals of one kind that arrive together merge into one: the second waits for the first's answer.
    let sent = 0;
    child.stderr!.on('data', (d: Buffer) => {
      const text = d.toString();
      if (sent === 0 && /\d+\/300 msgs/.test(text)) {
        sent = 1;
        child.kill('SIGINT');
      }
      if (sent === 1 && text.includes('SIGINT: stopping')) {
        sent = 2;
        child.kill('SIGINT');
      }
    });
    const r = await result;
    expect(sent).toBe(2);
    expect(r.code, r.stderr.slice(-2000)).toBe(130);
    expect(r.stderr).toContain('stopping at once');
    expect(r.stderr).not.toMatch(/C: QUIT/);
    expect(await onServer(u.user)).toHaveLength(300);
    const stored = await storedFiles(out, u.id);
    const all = new Set(servedShas(messages));
    for (const b of stored.values()) expect(all.has(sha256(b))).toBe(true);

    // A server that never greets: the engine would wait for its greeting timeout.
    const silent = await scripted({ hooks: silentGreeting(), users: { carol: { password: 'carol-pw' } } });
    const started = Date.now();
    const stuck = startCli(['drain', `pop3://carol@127.0.0.1:${silent.port}`, '--insecure-plaintext', '--out', await outDir()], {
      env: { POPDRAIN_PASSWORD: 'carol-pw' },
    });
    stuck.child.stderr!.on('data', (d: Buffer) => {
      const text = d.toString();
      if (text.includes('connecting')) setTimeout(() => stuck.child.kill('SIGINT'), 200);
      if (text.includes('SIGINT: stopping')) stuck.child.kill('SIGINT');
    });
    const s = await stuck.result;
    expect(s.code, s.stderr).toBe(130);
    expect(Date.now() - started).toBeLessThan(8_000);
  });

  it(
    'kill -9 at random moments, rerun each time: everything stored once, byte for byte, nothing deleted unstored',
    async () => {
      const batch = (base: number, n: number): Buffer[] =>
        Array.from({ length: n }, (_, k) => {
          const i = base + k;
          return i % 30 === 7 ? bigMessage(i, 1_000_000 + (i % 4) * 300_000) : testMessage(i, 'kill', 200 + ((i * 37) % 3000));
        });
      const u = await newUser(batch(0, 600));
      const out = await outDir();
      const args = ['drain', pop3sUrl(u.user), ...tlsArgs(), '--id', u.id, '--out', out, '--delete', '--quiet'];
      let kills = 0;
      /** Kills after which more was stored than before the run: the run was killed while draining. */
      let killedWhileDraining = 0;
      let completed = 0;
      let next = 600;
      // Kill moments are drawn up to this; a run that finishes first shortens it.
      let maxDelayMs = 1500;
      for (let iteration = 0; kills < 12 && iteration < 40; iteration++) {
        const started = Date.now();
        const storedBefore = (await storedFiles(out, u.id)).size;
        const { child, result } = startCli(args, { env: { POPDRAIN_PASSWORD: u.password } });
        const timer = setTimeout(() => child.kill('SIGKILL'), 40 + Math.floor(Math.random() * maxDelayMs));
        const r = await result;
        clearTimeout(timer);
        if (r.signal === 'SIGKILL') {
          kills += 1;
          if ((await storedFiles(out, u.id)).size > storedBefore) killedWhileDraining += 1;
        } else {
          expect(r.code, r.stderr).toBe(0);
          completed += 1;
          maxDelayMs = Math.max(200, Math.floor((Date.now() - started) * 1.2));
          // It finished before the kill: give the next runs something to do.
          await deliverMore(u, batch(next, 300));
          next += 300;
        }
        // After every run: each .eml is whole and one of the messages, and anything gone from
        // the server is stored.
        const stored = await storedFiles(out, u.id);
        const storedShas = new Set([...stored.values()].map(sha256));
        const all = new Map(u.messages.map((m) => [sha256(servedForm(m)), m]));
        for (const s of storedShas) expect(all.has(s)).toBe(true);
        expect(storedShas.size).toBe(stored.size);
        const left = new Set((await onServer(u.user)).map(sha256));
        for (const s of all.keys()) if (!left.has(s)) expect(storedShas.has(s), 'deleted from the server but not stored').toBe(true);
      }
      expect(kills).toBeGreaterThanOrEqual(10);
      expect(killedWhileDraining).toBeGreaterThanOrEqual(3);
      const final = await cli([...args.filter((a) => a !== '--quiet'), '--json'], { env: { POPDRAIN_PASSWORD: u.password } });
      expect(final.code, final.stderr).toBe(0);
      expect(parseReport(final).stopReason).toBe('complete');
      await expectStoredExactly(out, u.id, u.messages);
      expect(await onServer(u.user)).toHaveLength(0);
      // Events: one id per message (a re-announcement repeats the same id with the same content).
      const events = await storedEvents(out);
      const byId = new Map<string, string>();
      for (const e of events) {
        const sha = e.detail.sha256 as string;
        if (byId.has(e.id)) expect(byId.get(e.id)).toBe(sha);
        byId.set(e.id, sha);
      }
      expect(byId.size).toBe(u.messages.length);
      expect([...byId.values()].sort()).toEqual(servedShas(u.messages));
      // Besides the messages, the mailbox folder holds at most temp files of killed runs, and
      // their names never end in .eml.
      for (const name of await readdir(join(out, u.id))) {
        if (!name.endsWith('.eml')) expect(name, name).toMatch(/^\.tmp-\d+-[0-9a-f]+-\d+\.part$/);
      }
      expect(completed + kills).toBeGreaterThanOrEqual(10);
    },
    240_000,
  );
});

describe('popdrain check and status', () => {
  it('check shows TLS, capabilities and the count, and downloads nothing', async () => {
    const u = await newUser(Array.from({ length: 3 }, (_, i) => testMessage(i, 'check')));
    const cwd = await mkdtemp(join(scratch, 'cwd-'));
    const r = await cli(['check', pop3sUrl(u.user), ...tlsArgs(), '-v'], { cwd, env: { POPDRAIN_PASSWORD: u.password } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/TLS: TLSv1\.[23] \S+, certificate verified/);
    expect(r.stdout).toContain('certificate: CN=localhost');
    expect(r.stdout).toMatch(/fingerprint \(SHA-256\): [0-9A-F:]{95}/);
    expect(r.stdout).toMatch(/capabilities: .*UIDL.*PIPELINING/);
    expect(r.stdout).toMatch(/logged in with \S+: 3 messages/);
    expect(r.stderr).not.toMatch(/C: (RETR|TOP|DELE)/);
    expect(r.stderr).not.toContain(u.password);
    expect(await readdir(cwd)).toEqual([]);
    expect(await onServer(u.user)).toHaveLength(3);

    const json = await cli(['check', pop3Url(u.user), ...tlsArgs(), '--json'], { env: { POPDRAIN_PASSWORD: u.password } });
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ tls: 'starttls', loggedIn: true, messages: 3 });
    // Without a password (and no terminal) it still shows the server, and does not log in.
    const anon = await cli(['check', pop3sUrl(u.user), ...tlsArgs()]);
    expect(anon.code).toBe(0);
    expect(anon.stdout).toContain('not logged in');
  });

  it('status shows the last run and what is pending; a rerun announces the pending', async () => {
    const u = await newUser(Array.from({ length: 40 }, (_, i) => testMessage(i, 'status')));
    const out = await outDir();
    // Events cannot be written (a folder where the events file goes): stored, recorded, pending.
    await mkdir(join(out, 'events.jsonl'), { recursive: true });
    const broken = await drain(u, out, ['--delete']);
    expect(broken.code, broken.stdout + broken.stderr).toBe(7);
    // Stored and recorded, never announced: nothing may be deleted.
    expect(await onServer(u.user)).toHaveLength(40);
    const s1 = await cli(['status', '--out', out]);
    expect(s1.code, s1.stderr).toBe(0);
    expect(s1.stdout).toContain(u.id);
    // The run went through the mailbox; its events failed (exit 7, failures counted).
    expect(s1.stdout).toMatch(/last run: \S+ complete: fetched 40 .*failures 40/);
    expect(s1.stdout).toContain('last success: never');
    expect(s1.stdout).toContain('pending: 40 stored but not announced');
    await rm(join(out, 'events.jsonl'), { recursive: true });
    const fixed = await drain(u, out, ['--delete', '--json']);
    expect(fixed.code, fixed.stderr).toBe(0);
    expect(parseReport(fixed)).toMatchObject({ fetched: 0, reannounced: 40, deleted: 40, pendingAnnouncements: 0 });
    const s2 = await cli(['status', '--out', out, '--id', u.id, '--json']);
    const rows = JSON.parse(s2.stdout) as Array<{ pending: unknown[]; state: { lastRun: { stopReason: string } } }>;
    expect(rows[0]!.pending).toHaveLength(0);
    expect(rows[0]!.state.lastRun.stopReason).toBe('complete');
    const s3 = await cli(['status', '--out', out]);
    expect(s3.stdout).toMatch(/last run: \S+ complete: fetched 0/);
    expect(s3.stdout).toContain('40 deleted from the server');
  });

  it('a UIDL reset stops the run (exit 8) until status --accept-uidl-reset', async () => {
    const messages = Array.from({ length: 60 }, (_, i) => testMessage(i, 'reset'));
    const u = await newUser(messages);
    const out = await outDir();
    expect((await drain(u, out)).code).toBe(0);
    // The server re-creates the mailbox: same messages, all new UIDLs.
    await dovecot.clearMailbox(u.user);
    await dovecot.deliverMany(u.user, messages);
    const tripped = await drain(u, out);
    expect(tripped.code, tripped.stdout).toBe(8);
    expect(tripped.stdout).toContain('UIDL reset');
    expect(tripped.stdout).toContain(`popdrain status --accept-uidl-reset --id ${u.id}`);
    expect((await drain(u, out)).code).toBe(8);
    const status = await cli(['status', '--out', out]);
    expect(status.stdout).toContain('UIDL-reset guard TRIPPED');
    const accept = await cli(['status', '--out', out, '--id', u.id, '--accept-uidl-reset']);
    expect(accept.code, accept.stderr).toBe(0);
    expect(accept.stdout).toContain('UIDL reset accepted');
    const after = await drain(u, out, ['--json']);
    expect(after.code, after.stderr).toBe(0);
    expect(parseReport(after)).toMatchObject({ fetched: 60, stopReason: 'complete' });
    const again = await drain(u, out);
    expect(again.code).toBe(0);
  });
});

describe('exit codes', () => {
  it('2: bad input gets one line on stderr and no stack trace', async () => {
    const badConfig = join(scratch, 'bad-config.json');
    await writeFile(badConfig, '{"mailboxes": [{"id": "x", "host": "h"}], "extra": 1}');
    const notJson = join(scratch, 'not-json.json');
    await writeFile(notJson, '{ mailboxes: ');
    const ok = pop3sUrl('someone');
    const cases: string[][] = [
      [],
      ['frobnicate'],
      ['drain'],
      ['drain', 'http://user@example.com'],
      ['drain', 'pop3s://user:secret@example.com'],
      ['drain', 'pop3s://user@example.com:99999'],
      ['drain', 'pop3s://%ZZ@example.com'],
      ['drain', ok, '--bogus'],
      ['drain', ok, '--max-size', '12XB'],
      ['drain', ok, '--max-messages', '0'],
      ['drain', ok, '--max-time', 'soon'],
      ['drain', ok, '--keep', '--delete'],
      ['drain', ok, '--auth', 'MAGIC'],
      ['drain', ok, '--parallel', 'two'],
      ['drain', ok, '--insecure-plaintext'],
      ['drain', ok, '--ca', join(scratch, 'no-such-ca.pem')],
      ['drain', '--config', join(scratch, 'no-such-config.json')],
      ['drain', '--config', notJson],
      ['drain', '--config', badConfig],
      ['drain', ok, '--config', badConfig],
      ['check', ok, ok],
      ['status', 'extra'],
    ];
    for (const args of cases) {
      const r = await cli(args, { env: { POPDRAIN_PASSWORD: 'x' } });
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      if (args.length === 0) continue; // no command: the usage text
      oneLine(r.stderr);
      expect(r.stdout, args.join(' ')).toBe('');
    }
  });

  it('3: wrong password', async () => {
    const u = await newUser([testMessage(1, 'auth')]);
    const r = await drain(u, await outDir(), [], { env: { POPDRAIN_PASSWORD: 'wrong-password' } });
    expect(r.code, r.stdout + r.stderr).toBe(3);
    expect(r.stdout).toContain('stopped: auth-failed');
  });

  it('4: untrusted CA, wrong server name, or pop3:// to a server without STLS', async () => {
    const u = await newUser([testMessage(1, 'tls')]);
    const base = ['drain', pop3sUrl(u.user), '--id', u.id, '--out', await outDir()];
    const env = { POPDRAIN_PASSWORD: u.password };
    const untrusted = await cli([...base, '--ca', dovecot.pki.untrustedCaCertPath, '--servername', 'localhost'], { env });
    expect(untrusted.code, untrusted.stdout).toBe(4);
    const wrongName = await cli([...base, '--ca', dovecot.pki.caCertPath, '--servername', 'mail.example.net'], { env });
    expect(wrongName.code, wrongName.stdout).toBe(4);
    expect(await onServer(u.user)).toHaveLength(1);

    const server = await scripted({
      tls: { key: dovecot.pki.serverKeyPem, cert: dovecot.pki.serverCertPem },
      features: { stls: false },
      users: { alice: { password: 'alice-pw' } },
      mailboxes: { alice: [{ bytes: Buffer.from('Subject: x\r\n\r\nhi\r\n') }] },
    });
    const noStls = await cli(['drain', `pop3://alice@127.0.0.1:${server.port}`, ...tlsArgs(), '--out', await outDir()], {
      env: { POPDRAIN_PASSWORD: 'alice-pw' },
    });
    expect(noStls.code, noStls.stdout + noStls.stderr).toBe(4);
    expect(noStls.stdout).toContain('tls-failed');
    // The password never went over the plaintext connection.
    expect(server.sessions.length).toBeGreaterThan(0);
    for (const s of server.sessions) expect(s.received.filter((l) => /^(USER|PASS|AUTH|APOP) /i.test(l))).toEqual([]);
  });

  it('5: connection refused', async () => {
    const port = await closedPort();
    const r = await cli(['drain', `pop3s://u@127.0.0.1:${port}`, ...tlsArgs(), '--out', await outDir()], { env: { POPDRAIN_PASSWORD: 'x' } });
    expect(r.code, r.stdout + r.stderr).toBe(5);
    expect(r.stdout).toContain('connection-failed');
  });

  it('6: another run holds the lease, or the server answers [IN-USE]', async () => {
    const u = await newUser([testMessage(1, 'busy')]);
    const out = await outDir();
    expect((await drain(u, out)).code).toBe(0);
    const ledger = new FileLedger({ dir: join(out, LEDGER_SUBDIR) });
    const lease = await ledger.acquireLease(u.id, 'another-run', 60_000, Date.now());
    expect(lease).toBeDefined();
    try {
      const r = await drain(u, out);
      expect(r.code, r.stdout + r.stderr).toBe(6);
      expect(r.stdout).toContain('stopped: busy (retry later)');
    } finally {
      await ledger.releaseLease(lease!);
      await ledger.close();
    }
    expect((await drain(u, out)).code).toBe(0);

    const server = await scripted({
      tls: { key: dovecot.pki.serverKeyPem, cert: dovecot.pki.serverCertPem },
      implicitTls: true,
      users: { bob: { password: 'bob-pw' } },
      mailboxes: { bob: [{ bytes: Buffer.from('Subject: x\r\n\r\nhi\r\n') }] },
      hooks: rejectLogin('IN-USE'),
    });
    const inUse = await cli(['drain', `pop3s://bob@127.0.0.1:${server.port}`, ...tlsArgs(), '--out', await outDir()], {
      env: { POPDRAIN_PASSWORD: 'bob-pw' },
    });
    expect(inUse.code, inUse.stdout + inUse.stderr).toBe(6);
    expect(inUse.stdout).toContain('stopped: in-use (retry later)');
  });

  it('7: the store fails (a file where the mailbox folder goes); nothing is deleted', async () => {
    const u = await newUser(Array.from({ length: 5 }, (_, i) => testMessage(i, 'store')));
    const out = await outDir();
    await mkdir(out, { recursive: true });
    await writeFile(join(out, u.id), 'not a folder');
    const r = await drain(u, out, ['--delete']);
    expect(r.code, r.stdout + r.stderr).toBe(7);
    expect(r.stdout).toMatch(/stopped: store-failed|failed/);
    expect(await onServer(u.user)).toHaveLength(5);
  });

  it('9: no password (POPDRAIN_PASSWORD unset, stdin not a terminal) or a password variable unset in a config', async () => {
    const r = await cli(['drain', pop3sUrl('someone'), ...tlsArgs(), '--out', await outDir()]);
    expect(r.code).toBe(9);
    oneLine(r.stderr);
    expect(r.stderr).toContain('POPDRAIN_PASSWORD');

    const u = await newUser([testMessage(1, 'cred')]);
    const config = join(scratch, `cred-${counter}.json`);
    await writeFile(
      config,
      JSON.stringify({
        mailboxes: [
          {
            id: 'cred',
            host: dovecot.host,
            port: dovecot.ports.pop3s,
            user: u.user,
            auth: { passwordEnv: 'UNSET_PASSWORD_VARIABLE' },
            tlsOptions: { caFile: dovecot.pki.caCertPath, servername: 'localhost' },
          },
        ],
      }),
    );
    const c = await cli(['drain', '--config', config, '--out', await outDir()]);
    expect(c.code, c.stdout + c.stderr).toBe(9);
    expect(c.stdout).toContain('UNSET_PASSWORD_VARIABLE');
  });
});

describe('AWS adapter options', () => {
  // Fake credentials and a loopback endpoint that is never reached: the options fail first.
  // NODE_NO_WARNINGS: the SDK's own Node version notice is not popdrain's output.
  const awsEnv = {
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_ACCESS_KEY_ID: 'AKIDCLIFAKE',
    AWS_SECRET_ACCESS_KEY: 'cli-fake-secret',
    AWS_REGION: 'us-east-1',
    NODE_NO_WARNINGS: '1',
  };
  const url = 'pop3s://nobody@127.0.0.1:9';
  const aws = (overrides: Record<string, string>): string[] =>
    Object.entries({ '--aws-endpoint': 'http://127.0.0.1:9', '--s3-bucket': 'b', '--ledger-table': 't', '--event-bus': 'e', ...overrides }).flat();

  it('2: an S3 prefix the store refuses is a usage error, one line naming the option', async () => {
    const r = await cli(['drain', url, ...aws({ '--s3-prefix': '/x' })], { env: awsEnv });
    expect(r.code, r.stderr).toBe(2);
    oneLine(r.stderr);
    expect(r.stderr).toContain('--s3-prefix');
    expect(r.stderr).toContain('"/x"');
    expect(r.stderr).not.toContain('internal error');
  });

  it('2: an empty ledger table name is a usage error, one line naming the option', async () => {
    const r = await cli(['drain', url, ...aws({ '--ledger-table': '' })], { env: awsEnv });
    expect(r.code, r.stderr).toBe(2);
    oneLine(r.stderr);
    expect(r.stderr).toContain('--ledger-table');
    expect(r.stderr).not.toContain('internal error');
  });
});
