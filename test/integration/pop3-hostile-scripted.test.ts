/**
 * The POP3 client used directly (not through the drain) against hostile scripted servers on
 * loopback: an endless listing is refused as a listing over its bound, and a server that quotes
 * the password in a transaction command's -ERR does not get it out through the client's errors.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Pop3Client, Pop3Error } from '../../lib/pop3/index.js';
import { respondWith, startPop3Server, type Pop3ServerHooks, type Pop3TestServer } from '../support/script-server.js';

const PASSWORD = 'Tr0ub4dor&3-horse';
const servers: Pop3TestServer[] = [];
const clients: Pop3Client[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function session(hooks: Pop3ServerHooks | Pop3ServerHooks[], maxListingBytes?: number): Promise<Pop3Client> {
  const s = await startPop3Server({
    users: { jane: { password: PASSWORD } },
    mailboxes: { jane: [1, 2].map((i) => ({ bytes: Buffer.from(`Subject: m${i}\r\n\r\nbody ${i}\r\n`), uid: `u${i}` })) },
    hooks,
  });
  servers.push(s);
  const client = await Pop3Client.connect({ host: s.host, port: s.port, tls: 'insecure-plaintext', ...(maxListingBytes === undefined ? {} : { maxListingBytes }) });
  clients.push(client);
  await client.login({ user: 'jane', password: PASSWORD });
  return client;
}

async function rejection(promise: Promise<unknown>): Promise<Pop3Error> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(Pop3Error);
  return error as Pop3Error;
}

/** Answers `verb` with +OK and listing lines until the client goes away. */
function endlessListing(verb: 'UIDL' | 'LIST'): Pop3ServerHooks {
  return {
    async onCommand(conn, line) {
      if (line.trim().toUpperCase() !== verb) return false;
      await conn.writeLine('+OK here it comes');
      const chunk = Buffer.from(Array.from({ length: 256 }, (_, i) => `${i + 1} ${verb === 'UIDL' ? `uid-${i}` : '100'}\r\n`).join(''));
      while (!conn.isClosed) await conn.write(chunk).catch(() => undefined);
      return true;
    },
  };
}

describe('an endless listing', () => {
  it.each(['UIDL', 'LIST'] as const)('an endless %s is refused as a listing over its bound, naming the command', async (verb) => {
    const client = await session(endlessListing(verb), 64 * 1024);
    const error = await rejection(verb === 'UIDL' ? client.uidl() : client.list());
    expect(error.code).toBe('LIMIT_EXCEEDED');
    expect(error.command).toBe(verb);
    expect(error.phase).toBe('transaction');
    expect(error.message).toBe(`server sent a ${verb} listing larger than 65536 bytes (the bound on a whole listing): an endless or oversized listing`);
    expect(error.message).not.toMatch(/status line|line longer/);
    expect(client.isClosed).toBe(true);
  });
});

describe('server text in transaction errors is scrubbed by the client itself', () => {
  const b64 = Buffer.from(PASSWORD).toString('base64');
  const echo = (verb: string): Pop3ServerHooks =>
    respondWith(verb, `-ERR [SYS/PERM] you said ${PASSWORD} (${b64}) \x1b]0;owned\x07`);

  it.each([
    ['RETR', (c: Pop3Client) => c.retr(1)],
    ['TOP', (c: Pop3Client) => c.top(1, 0)],
    ['DELE', (c: Pop3Client) => c.dele(1)],
    ['STAT', (c: Pop3Client) => c.stat()],
    ['LIST', (c: Pop3Client) => c.list()],
    ['UIDL', (c: Pop3Client) => c.uidl()],
    ['NOOP', (c: Pop3Client) => c.noop()],
    ['RSET', (c: Pop3Client) => c.rset()],
  ])('a %s -ERR that quotes the password does not leak it through the error', async (verb, call) => {
    const client = await session(echo(verb));
    const error = await rejection(call(client));
    expect(error.code).toBe('SYS_PERM');
    const shown = JSON.stringify({ message: error.message, serverText: error.serverText, all: String(error) });
    expect(shown).not.toContain(PASSWORD);
    expect(shown).not.toContain(b64);
    expect(shown).not.toContain('\x1b');
    expect(error.serverText).toContain('[redacted]');
    expect(error.responseCode).toBe('SYS/PERM');
  });

  it('a RETR -ERR in the middle of a pipelined retrieval comes out scrubbed too', async () => {
    const client = await session(respondWith('RETR 2', `-ERR [SYS/PERM] bad file for ${PASSWORD}`));
    const got: number[] = [];
    const error = await rejection(
      (async () => {
        for await (const m of client.retrieve([1, 2].map((number) => ({ number })))) {
          got.push(m.number);
          m.stream.resume();
          await new Promise((r) => m.stream.once('end', r));
        }
      })(),
    );
    expect(got).toEqual([1]);
    expect(error.message).not.toContain(PASSWORD);
    expect(error.serverText).toBe('[SYS/PERM] bad file for [redacted]');
  });
});
