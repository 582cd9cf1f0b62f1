// Running the built CLI (`node dist/cli/main.js`, made by scripts/build.mjs) against a real server
// in the tests of test/integration/pop3-courier.test.ts, pop3-cyrus.test.ts and the cli-*.test.ts.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { startDovecot, type Dovecot } from '../../testkit/pop3-servers/dovecot.js';

const ROOT = join(import.meta.dirname, '../..');
const MAIN = join(ROOT, 'dist/cli/main.js');
/** A CLI run that has not ended by then is killed (and the test fails). */
const CLI_TIMEOUT_MS = 60_000;

export interface CliResult {
  code: number | null;
  /** The signal that ended the CLI (e.g. SIGKILL), or null when it exited. */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface StartCliOptions {
  env?: Record<string, string>;
  cwd?: string;
  /** Node options before the script (e.g. `--import` of a clock shift). */
  nodeArgs?: readonly string[];
}

/** What a CLI test file runs against: the built CLI, its own Dovecot and a scratch folder. */
export interface DovecotCliWorld {
  readonly dovecot: Dovecot;
  readonly scratch: string;
}

/**
 * Start a Dovecot and make a scratch folder (named from `prefix`) before the file's
 * tests; stop and remove them after. The fields are there once `beforeAll` has run.
 */
export function useDovecotCli(prefix: string): DovecotCliWorld {
  let dovecot: Dovecot | undefined;
  let scratch: string | undefined;
  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), prefix));
    dovecot = await startDovecot();
  }, 120_000);
  afterAll(async () => {
    await dovecot?.stop();
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  });
  const ready = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`${what} is not set up yet (use it inside a test)`);
    return value;
  };
  return {
    get dovecot() {
      return ready(dovecot, 'Dovecot');
    },
    get scratch() {
      return ready(scratch, 'the scratch folder');
    },
  };
}

/**
 * Starts the CLI with a clean environment plus `env` (no POPDRAIN_PASSWORD unless given), stdin
 * not a terminal: the child (for signals and its output as it comes) and its result.
 */
export function startCli(args: readonly string[], options: StartCliOptions = {}): { child: ChildProcess; result: Promise<CliResult> } {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), MAIN, ...args], {
    cwd: options.cwd,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d));
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

/** The CLI with a clean environment plus `env`, stdin not a terminal. */
export function cli(args: readonly string[], env: Record<string, string>, cwd: string): Promise<CliResult> {
  return startCli(args, { env, cwd }).result;
}

/** The .eml files the local store wrote under `<out>/<mailboxId>`, sorted by name. */
export async function storedMessages(out: string, mailboxId: string): Promise<Buffer[]> {
  const dir = join(out, mailboxId);
  const names = (await readdir(dir)).filter((n) => n.endsWith('.eml')).sort();
  return Promise.all(names.map((n) => readFile(join(dir, n))));
}
