/**
 * The shared set-up of the POP3 client tests against a real Dovecot (pop3-dovecot-*.test.ts), on
 * loopback only: one Dovecot per file, the clients a test opened closed after it, and a check that
 * no promise rejection went unhandled; options for implicit TLS and STLS, users of their own,
 * sessions, and what the maildir holds and the log says of ended sessions.
 * If Dovecot cannot start, beforeAll throws and every test of the file fails (never skips).
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { Pop3Client, type Pop3ClientOptions } from '../../lib/pop3/index.js';
import { startDovecot, type Dovecot } from '../../testkit/pop3-servers/dovecot.js';

export const MiB = 1024 * 1024;
/** How long Dovecot may take to log the end of a session (the wait ends as soon as it does; 5 s was too short with two test files on two busy cores). */
const LOG_WAIT_MS = 20_000;
const LOG_POLL_MS = 20;

// A live binding: it holds the file's Dovecot once beforeAll ran.
export let dovecot: Dovecot;
const clients: Pop3Client[] = [];
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};

/** Registers the hooks: one Dovecot for the file; after each test, its clients closed and no unhandled rejection. */
export function setUpDovecotSessions(): void {
  beforeAll(async () => {
    process.on('unhandledRejection', onUnhandled);
    dovecot = await startDovecot();
  });

  afterAll(async () => {
    process.off('unhandledRejection', onUnhandled);
    await dovecot?.stop();
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    // Let pending socket events run, then check that no promise rejection went unhandled.
    await new Promise((r) => setTimeout(r, 20));
    expect(unhandled.splice(0)).toEqual([]);
  });
}

/** Implicit TLS to the pop3s listener, verified against the test CA. */
export function implicitTls(extra: Partial<Pop3ClientOptions> = {}): Pop3ClientOptions {
  return {
    host: dovecot.host,
    port: dovecot.ports.pop3s,
    tls: 'implicit',
    tlsOptions: { ca: dovecot.pki.caCertPem, servername: 'localhost' },
    ...extra,
  };
}

/** STLS on the plain listener of 127.0.0.1. */
export function startTls(extra: Partial<Pop3ClientOptions> = {}): Pop3ClientOptions {
  return implicitTls({ port: dovecot.ports.pop3, tls: 'starttls', ...extra });
}

let userSeq = 0;
/** A user of its own for one test: a unique name, a password, and optionally messages. */
export async function newUser(prefix: string, password: string, messages: readonly string[] = []): Promise<string> {
  userSeq += 1;
  const user = `${prefix}-${userSeq}`;
  await dovecot.addUser(user, password);
  if (messages.length > 0) await dovecot.deliverMany(user, messages.map((m) => Buffer.from(m, 'utf8')));
  return user;
}

/** A client that is closed after the test. */
export async function connect(options: Pop3ClientOptions): Promise<Pop3Client> {
  const client = await Pop3Client.connect(options);
  clients.push(client);
  return client;
}

/** A client over implicit TLS, logged in with the password (the mechanism `login` picks). */
export async function session(user: string, password: string, extra: Partial<Pop3ClientOptions> = {}): Promise<Pop3Client> {
  const client = await connect(implicitTls(extra));
  await client.login({ user, password });
  return client;
}

/** The maildir file name without the `:2,<flags>` info that Dovecot adds when it moves mail to cur/. */
const uniqueName = (path: string): string => basename(path).split(':')[0]!;

export async function maildirNames(user: string): Promise<string[]> {
  return (await dovecot.listMaildir(user)).map(uniqueName);
}

/**
 * Waits until Dovecot has logged the end of `count` mail sessions of `user`, so what we then see
 * in the maildir is what the server left after the session, not a race with it.
 */
export async function sessionsEnded(user: string, count: number): Promise<void> {
  const re = new RegExp(`pop3\\(${user}\\)<[^>]*><[^>]*>: Info: Disconnected`, 'g');
  const deadline = Date.now() + LOG_WAIT_MS;
  for (;;) {
    const log = await readFile(dovecot.logPath, 'utf8');
    const seen = log.match(re)?.length ?? 0;
    if (seen >= count) return;
    if (Date.now() > deadline) {
      throw new Error(`Dovecot logged ${seen} of ${count} ended sessions of ${user}\n${await dovecot.logTail(15)}`);
    }
    await new Promise((r) => setTimeout(r, LOG_POLL_MS));
  }
}
