/**
 * The POP3 client used directly (not through the drain) against hostile scripted servers on
 * loopback: an endless listing is refused as a listing over its bound.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Pop3Client, Pop3Error } from '../../lib/pop3/index.js';
import { startPop3Server, type Pop3ServerHooks, type Pop3TestServer } from '../support/script-server.js';

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
