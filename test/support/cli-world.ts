/**
 * The shared set-up of the command-line tests of cli-drain.test.ts, cli-drain-config-and-sigint.test.ts
 * and cli-check-status-exit.test.ts: the built CLI (`node dist/cli/main.js`) run in a child process
 * against the file's own Dovecot (implicit TLS, and STLS on the pop3 port) and, for what Dovecot
 * will not do on demand, the scripted POP3 server; users, output folders and readers of what lands
 * on disk and what the server still holds.
 */
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { afterEach, beforeAll, expect } from 'vitest';
import type { Dovecot } from '../../testkit/pop3-servers/dovecot.js';
import { eventsOf, servedForm, sha256, storedFiles } from '../../testkit/fixtures/drain-fixtures.js';
import { startCli as startBuiltCli, useDovecotCli, type CliResult, type StartCliOptions } from './real-server-cli.js';
import { startPop3Server, type Pop3TestServer } from './script-server.js';

export type { CliResult } from './real-server-cli.js';

// Live bindings: the file's Dovecot and scratch folder once beforeAll ran; the counter names users,
// output folders and the files a test writes.
export let dovecot: Dovecot;
export let scratch: string;
export let counter = 0;
const cleanups: Array<() => Promise<void>> = [];

/** Registers the hooks: a Dovecot and a scratch folder for the file, each test's cleanups after it. */
export function setUpCliWorld(): void {
  const world = useDovecotCli('popdrain-cli-');
  beforeAll(() => {
    dovecot = world.dovecot;
    scratch = world.scratch;
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
}

// ---------------------------------------------------------------------------------------------
// Running the tool

/** Starts the tool with a clean environment (no POPDRAIN_PASSWORD unless given), stdin not a TTY, in the scratch folder unless told. */
export function startCli(args: string[], options: StartCliOptions = {}): { child: ChildProcess; result: Promise<CliResult> } {
  return startBuiltCli(args, { ...options, cwd: options.cwd ?? scratch });
}

export function cli(args: string[], options: StartCliOptions = {}): Promise<CliResult> {
  return startCli(args, options).result;
}

export const tlsArgs = (): string[] => ['--ca', dovecot.pki.caCertPath, '--servername', 'localhost'];
export const pop3sUrl = (user: string): string => `pop3s://${encodeURIComponent(user)}@${dovecot.host}:${dovecot.ports.pop3s}`;
export const pop3Url = (user: string): string => `pop3://${encodeURIComponent(user)}@${dovecot.host}:${dovecot.ports.pop3}`;

export interface TestUser {
  user: string;
  password: string;
  id: string;
  /** Every message delivered so far (as stored in the maildir, LF line ends). */
  messages: Buffer[];
}

export async function newUser(messages: Buffer[], name?: string): Promise<TestUser> {
  counter += 1;
  const user = name ?? `cli${counter}`;
  const password = `pw-${counter}-Zq7v`;
  await dovecot.addUser(user, password);
  if (messages.length > 0) await dovecot.deliverMany(user, messages);
  return { user, password, id: `mbx-${counter}`, messages: [...messages] };
}

export async function deliverMore(u: TestUser, messages: Buffer[]): Promise<void> {
  await dovecot.deliverMany(u.user, messages);
  u.messages.push(...messages);
}

export async function outDir(): Promise<string> {
  counter += 1;
  const out = join(scratch, `out-${counter}`);
  cleanups.push(() => rm(out, { recursive: true, force: true }));
  return out;
}

/** `drain` of a Dovecot user over implicit TLS into `out`, with the password in the environment. */
export function drain(u: TestUser, out: string, extra: string[] = [], options: StartCliOptions = {}): Promise<CliResult> {
  return cli(['drain', pop3sUrl(u.user), ...tlsArgs(), '--id', u.id, '--out', out, ...extra], {
    ...options,
    env: { POPDRAIN_PASSWORD: u.password, ...options.env },
  });
}

export function parseReport(r: CliResult): Record<string, unknown> & { fetched: number; stopReason: string } {
  return JSON.parse(r.stdout) as Record<string, unknown> & { fetched: number; stopReason: string };
}

// ---------------------------------------------------------------------------------------------
// What is on disk and on the server

export const shasOf = (buffers: Iterable<Buffer>): string[] => [...buffers].map(sha256).sort();
export const servedShas = (messages: Buffer[]): string[] => shasOf(messages.map(servedForm));

/** The served form of what the server still holds for `user`. */
export async function onServer(user: string): Promise<Buffer[]> {
  const paths = await dovecot.listMaildir(user);
  return Promise.all(paths.map(async (p) => servedForm(await readFile(p))));
}

export interface Entry {
  path: string;
  mode: number;
  isDir: boolean;
}

export async function walk(dir: string): Promise<Entry[]> {
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
export async function expectStoredExactly(out: string, id: string, messages: Buffer[]): Promise<void> {
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

export async function storedEvents(out: string): Promise<Array<{ id: string; detail: Record<string, unknown> }>> {
  return (await eventsOf(out)).filter((e) => e['detail-type'] === 'Email Stored');
}

/** A message of about `size` bytes in lines of 76 characters (nothing like one huge line). */
export function bigMessage(i: number, size: number): Buffer {
  const head = `From: big${i}@example.com\nTo: r@example.com\nSubject: big ${i}\nMessage-ID: <big-${i}@example.com>\n\n`;
  const line = `${`big ${i} `.padEnd(75, 'y')}\n`;
  return Buffer.from(head + line.repeat(Math.ceil(size / line.length)));
}

/** A port nothing listens on (bound, then closed). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** A scripted POP3 server, closed after the test. */
export async function scripted(options: Parameters<typeof startPop3Server>[0]): Promise<Pop3TestServer> {
  const server = await startPop3Server(options);
  cleanups.push(() => server.close());
  return server;
}

/** Exactly one line on stderr, `popdrain: ...`, and no stack trace. */
export const oneLine = (stderr: string): void => {
  const lines = stderr.split('\n').filter((l) => l !== '');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^popdrain: /);
  expect(stderr).not.toMatch(/\n\s+at /);
};
