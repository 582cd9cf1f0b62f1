// What the Courier and Cyrus harnesses (testkit/pop3-servers/courier.ts, cyrus.ts) share: where
// scripts/install-test-servers.sh unpacked them, free loopback ports, the mail user, waiting for
// a greeting, and stopping a process group.
import { execFile, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, stat } from 'node:fs/promises';
import { createServer, connect as netConnect, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export const LOOPBACK = '127.0.0.1';
/** System user that owns the mail when we run as root (the servers refuse uid 0 for mail). */
export const MAIL_USER_NAME = 'popdrain-mail';
/** A start that has not greeted by then has failed. */
export const START_TIMEOUT_MS = 25_000;
const GREETING_TIMEOUT_MS = 3_000;
const POLL_INTERVAL_MS = 50;
const EXEC_TIMEOUT_MS = 10_000;
export const STOP_TIMEOUT_MS = 10_000;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The unpacked packages' root (`<cache>/root`); throws how to create it when it is missing. */
export function unpackedRoot(probe: string): string {
  const cache = process.env.POPDRAIN_TEST_SERVERS_DIR ?? '/var/cache/popdrain-test-servers';
  const root = join(cache, 'root');
  if (!existsSync(join(root, probe))) {
    throw new Error(
      `${join(root, probe)} is missing: run \`scripts/install-test-servers.sh\` as root ` +
        '(it unpacks Courier and Cyrus next to Dovecot; scripts/test.sh runs it)',
    );
  }
  return root;
}

export async function run(file: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<string> {
  try {
    const child = execFileAsync(file, args, { timeout: EXEC_TIMEOUT_MS, env: opts.env ?? process.env });
    if (opts.input !== undefined) {
      child.child.stdin?.end(opts.input);
    }
    return (await child).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${file} ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`, { cause: err });
  }
}

export interface MailUser {
  name: string;
  uid: number;
  gid: number;
}

async function idOf(user: string): Promise<MailUser | undefined> {
  try {
    const [u, g] = await Promise.all([
      execFileAsync('id', ['-u', user], { timeout: EXEC_TIMEOUT_MS }),
      execFileAsync('id', ['-g', user], { timeout: EXEC_TIMEOUT_MS }),
    ]);
    return { name: user, uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()) };
  } catch {
    return undefined;
  }
}

/** The system user that owns the test mail (created on demand, as the Dovecot harness does). */
export async function mailUser(): Promise<MailUser> {
  const existing = await idOf(MAIL_USER_NAME);
  if (existing) return existing;
  try {
    await execFileAsync('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', MAIL_USER_NAME], {
      timeout: EXEC_TIMEOUT_MS,
    });
  } catch (err) {
    // Another test worker may have created it at the same moment.
    const raced = await idOf(MAIL_USER_NAME);
    if (raced) return raced;
    throw new Error(`cannot create the mail user ${MAIL_USER_NAME}`, { cause: err });
  }
  const created = await idOf(MAIL_USER_NAME);
  if (!created) throw new Error(`useradd ${MAIL_USER_NAME} succeeded but \`id\` fails`);
  return created;
}

/** Adds o+x to every ancestor of `dir`, so the mail user can reach it. */
export async function makeTraversable(dir: string): Promise<void> {
  await chmod(dir, 0o755);
  for (let d = dirname(dir); ; d = dirname(d)) {
    const st = await stat(d);
    if ((st.mode & 0o001) === 0) await chmod(d, (st.mode & 0o7777) | 0o001);
    if (dirname(d) === d) break;
  }
}

/** `count` ports that were free a moment ago on loopback (held open together, so distinct). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer());
  try {
    return await Promise.all(
      servers.map(
        (srv) =>
          new Promise<number>((resolve, reject) => {
            srv.once('error', reject);
            srv.listen(0, LOOPBACK, () => {
              const addr = srv.address();
              if (addr === null || typeof addr === 'string') reject(new Error('no port'));
              else resolve(addr.port);
            });
          }),
      ),
    );
  } finally {
    await Promise.all(servers.map((srv) => new Promise<void>((r) => (srv.listening ? srv.close(() => r()) : r()))));
  }
}

function firstLine(sock: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => finish(new Error('no greeting')), GREETING_TIMEOUT_MS);
    const finish = (err: Error | undefined, line?: string): void => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(line ?? '');
    };
    sock.setEncoding('latin1');
    sock.on('data', (chunk: string) => {
      buf += chunk;
      const eol = buf.indexOf('\r\n');
      if (eol >= 0) finish(undefined, buf.slice(0, eol));
    });
    sock.once('error', (err) => finish(err));
    sock.once('close', () => finish(new Error('closed before greeting')));
  });
}

/**
 * Waits until every listener greets with +OK (implicit TLS ones verified against `caPem`), or
 * throws with `describe()`'s diagnostics once `START_TIMEOUT_MS` has passed or `exited()` says
 * the server is gone.
 */
export async function waitForGreetings(
  listeners: ReadonlyArray<{ port: number; tls: boolean }>,
  caPem: string,
  exited: () => string | undefined,
  describe: () => Promise<string>,
): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let lastError = '';
  for (const l of listeners) {
    for (;;) {
      const gone = exited();
      if (gone !== undefined) throw new Error(`server exited during start-up (${gone})\n${await describe()}`);
      try {
        const sock = l.tls
          ? tlsConnect({ host: LOOPBACK, port: l.port, ca: caPem, servername: 'localhost' })
          : netConnect({ host: LOOPBACK, port: l.port });
        const line = await firstLine(sock);
        if (line.startsWith('+OK')) break;
        lastError = `greeting ${JSON.stringify(line)}`;
      } catch (err) {
        lastError = (err as Error).message;
      }
      if (Date.now() > deadline) {
        throw new Error(`port ${l.port} did not greet within ${START_TIMEOUT_MS} ms (${lastError})\n${await describe()}`);
      }
      await sleep(POLL_INTERVAL_MS);
    }
  }
}

/** A short description of why `child` ended, or undefined while it runs. */
export function exitOf(child: ChildProcess): string | undefined {
  if (child.exitCode !== null) return `exit code ${child.exitCode}`;
  if (child.signalCode !== null) return `signal ${child.signalCode}`;
  return undefined;
}

/** SIGTERM to the process group of `child` (spawned detached), SIGKILL if it outlives the timeout. */
export async function stopGroup(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || exitOf(child) !== undefined) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const signal = (sig: NodeJS.Signals): void => {
    try {
      process.kill(-child.pid!, sig);
    } catch {
      // already gone
    }
  };
  signal('SIGTERM');
  const timer = sleep(STOP_TIMEOUT_MS).then(() => 'timeout' as const);
  if ((await Promise.race([exited.then(() => 'exited' as const), timer])) === 'timeout') {
    signal('SIGKILL');
    await exited;
  }
}

/**
 * Every message the server serves to `user`, in order, dot-unstuffed: a minimal lock-step POP3
 * session (USER/PASS over plain TCP, then LIST and RETR) written apart from lib/pop3, so tests can
 * compare the client with the server independently. Deletes nothing.
 */
export async function servedMessages(port: number, user: string, password: string): Promise<Buffer[]> {
  const sock = netConnect({ host: LOOPBACK, port });
  let buf = Buffer.alloc(0);
  let waiter: (() => void) | undefined;
  let failure: Error | undefined;
  sock.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    waiter?.();
  });
  sock.on('error', (err) => {
    failure = err;
    waiter?.();
  });
  sock.on('close', () => {
    failure ??= new Error('connection closed');
    waiter?.();
  });
  const deadline = Date.now() + START_TIMEOUT_MS;
  const take = async (multi: boolean): Promise<Buffer> => {
    for (;;) {
      const eol = buf.indexOf('\r\n');
      if (eol >= 0) {
        if (buf[0] !== 0x2b) throw new Error(`server said ${buf.subarray(0, eol).toString('latin1')}`);
        if (!multi) {
          buf = buf.subarray(eol + 2);
          return Buffer.alloc(0);
        }
        const end = buf.indexOf('\r\n.\r\n', eol);
        const empty = buf.subarray(eol + 2, eol + 5).toString('latin1') === '.\r\n';
        if (empty || end >= 0) {
          const body = empty ? Buffer.alloc(0) : buf.subarray(eol + 2, end + 2);
          buf = buf.subarray(empty ? eol + 5 : end + 5);
          return Buffer.from(body.toString('latin1').replace(/(^|\r\n)\.\./g, '$1.'), 'latin1');
        }
      }
      if (failure) throw failure;
      if (Date.now() > deadline) throw new Error('servedMessages: timed out');
      await new Promise<void>((r) => {
        waiter = r;
        setTimeout(r, 200);
      });
      waiter = undefined;
    }
  };
  const send = (line: string): void => {
    sock.write(`${line}\r\n`);
  };
  try {
    await take(false);
    send(`USER ${user}`);
    await take(false);
    send(`PASS ${password}`);
    await take(false);
    send('LIST');
    const count = (await take(true)).toString('latin1').split('\r\n').filter((l) => l !== '').length;
    const messages: Buffer[] = [];
    for (let n = 1; n <= count; n++) {
      send(`RETR ${n}`);
      messages.push(await take(true));
    }
    send('QUIT');
    await take(false);
    return messages;
  } finally {
    sock.destroy();
  }
}
