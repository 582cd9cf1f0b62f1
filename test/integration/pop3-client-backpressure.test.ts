// Backpressure on messages received whole (RetrieveOptions.collectUpTo): a consumer that stops
// taking messages stops the client reading the socket once `receivedAheadBytes` are held for it,
// the server's answers wait in the kernel and on the wire, and the socket is read again once the
// consumer takes them. A paused socket is not the server's silence (no inactivity timeout), but
// the session's hard deadline still ends it.
import { describe, expect, it } from 'vitest';
import { Pop3Client, Pop3Error, type MessageStream, type Pop3ClientOptions } from '../../lib/pop3/index.js';
import { clientOptions, PASSWORD, server, setUpScriptedServers } from '../support/pop3-client-scripted-world.js';
import type { MailboxMessage } from '../support/script-server.js';

const MESSAGES = 300;
const MESSAGE_BYTES = 32 * 1024;
const HELD_BOUND = 128 * 1024;
/** What may arrive after the bound is passed: the rest of the socket chunk being framed, and the message being received. */
const SLACK = 64 * 1024 + MESSAGE_BYTES + 1024;

setUpScriptedServers();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function message(i: number): MailboxMessage {
  const head = `Subject: m${i}\r\n\r\n`;
  const line = `${String(i).padStart(6, '0')} ${'x'.repeat(56)}\r\n`; // 65 bytes
  const body = line.repeat(Math.floor((MESSAGE_BYTES - head.length) / line.length));
  return { bytes: Buffer.from(head + body), uid: `uid-${i}` };
}

const mailbox = Array.from({ length: MESSAGES }, (_, i) => message(i + 1));

async function session(extra: Partial<Pop3ClientOptions> = {}): Promise<Pop3Client> {
  const s = await server({ users: { jane: { password: PASSWORD } }, mailboxes: { jane: mailbox } });
  const client = await Pop3Client.connect(clientOptions(s, { receivedAheadBytes: HELD_BOUND, ...extra }));
  await client.login({ user: 'jane', password: PASSWORD });
  return client;
}

/** The largest `client.bufferedBytes` seen every few ms for `ms`. */
async function peakHeld(client: Pop3Client, ms: number): Promise<number> {
  let peak = 0;
  const until = performance.now() + ms;
  while (performance.now() < until) {
    peak = Math.max(peak, client.bufferedBytes);
    await sleep(5);
  }
  return peak;
}

function bytesOf(m: MessageStream): Buffer {
  expect(m.body).toBeDefined();
  return Buffer.concat(m.body!);
}

describe('a consumer that stops taking messages received whole', () => {
  it('holds the client to the bound while it waits, without an inactivity timeout, and loses nothing', async () => {
    // Inactivity and status-line limits far shorter than the consumer's pause.
    const client = await session({ timeouts: { bodyIdleMs: 400, commandMs: 600 } });
    const list = await client.list();
    expect(client.pipelining).toBe(true);
    const iterator = client.retrieve(list, { collectUpTo: 2 * MESSAGE_BYTES })[Symbol.asyncIterator]();
    const first = await iterator.next();
    expect(first.done).toBe(false);
    expect(bytesOf(first.value as MessageStream).equals(mailbox[0]!.bytes)).toBe(true);

    // 9.6 MB requested (the window allows it); the consumer takes nothing for 1.5 s.
    const peak = await peakHeld(client, 1_500);
    expect(peak).toBeGreaterThan(HELD_BOUND);
    expect(peak).toBeLessThanOrEqual(HELD_BOUND + SLACK);
    expect(client.isClosed).toBe(false);

    let n = 1;
    for (;;) {
      const next = await iterator.next();
      if (next.done === true) break;
      if (!bytesOf(next.value).equals(mailbox[n]!.bytes)) throw new Error(`message ${n + 1} differs from what the server holds`);
      n += 1;
      if (n % 50 === 0) expect(client.bufferedBytes).toBeLessThanOrEqual(HELD_BOUND + SLACK);
    }
    expect(n).toBe(MESSAGES);
    await client.quit();
  });

  it('still ends the session at its hard deadline while the socket is paused', async () => {
    const deadlineMs = 700;
    const started = Date.now();
    const client = await session({ deadline: started + deadlineMs, timeouts: { bodyIdleMs: 60_000, commandMs: 60_000 } });
    const list = await client.list();
    const iterator = client.retrieve(list, { collectUpTo: 2 * MESSAGE_BYTES })[Symbol.asyncIterator]();
    await iterator.next();
    // Paused: the bound is reached and nothing is taken.
    const peak = await peakHeld(client, 200);
    expect(peak).toBeGreaterThan(HELD_BOUND);
    expect(client.isClosed).toBe(false);
    while (!client.isClosed && Date.now() - started < deadlineMs + 3_000) await sleep(10);
    expect(client.isClosed).toBe(true);
    expect(Date.now() - started).toBeLessThan(deadlineMs + 1_500);
    // The consumer gets what was received, then the deadline's error, never a hang.
    let error: unknown;
    try {
      for (;;) if ((await iterator.next()).done === true) break;
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(Pop3Error);
    expect((error as Pop3Error).code).toBe('ABORTED');
    expect((error as Pop3Error).message).toMatch(/deadline/);
  });

  it('resumes reading when the consumer ends the retrieval early (what was held is released)', async () => {
    const client = await session();
    const list = await client.list();
    const iterator = client.retrieve(list, { collectUpTo: 2 * MESSAGE_BYTES })[Symbol.asyncIterator]();
    await iterator.next();
    await peakHeld(client, 200);
    await iterator.return?.(undefined);
    expect(client.bufferedBytes).toBeLessThanOrEqual(SLACK);
    // The discarded answers are read and dropped; the session goes on.
    await expect(client.noop()).resolves.toBeUndefined();
    expect((await client.stat()).count).toBe(MESSAGES);
    await client.quit();
  });
});
