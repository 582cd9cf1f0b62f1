/**
 * The MessageStore contract (lib/drain/ports.ts), written once and run against every store:
 * `describeStoreContract(name, harness)` in a *.test.ts file per adapter. Each case uses its own
 * keys, so one stand-in serves the suite; `open()` gives another store instance on the same
 * storage (another run, or the same run after a restart).
 *
 * What the port promises, and each case checks:
 * - open, write, commit: the message is durable under its key, `existed: false`, at the ref that
 *   `refFor(key)` names; what is stored is the bytes written (as the store keeps them: a Maildir
 *   turns CRLF into LF, so the harness says how bytes are kept).
 * - never overwrites: the same bytes again succeed with `existed: true`; different bytes throw
 *   STORE_CONFLICT (not retryable) and the first message stays.
 * - a commit whose summary (size or sha256) does not match the bytes written, or that comes before
 *   the stream ended, throws STORE_FAILED (not retryable) and stores nothing.
 * - abort throws nothing (also twice, also after a commit), stores nothing, and a commit after it
 *   fails with STORE_FAILED.
 * - put (where a store has it) keeps the contract of open + write + commit for chunks in memory.
 * - many messages committed at once are each stored intact.
 */
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { messageKey } from '../../lib/drain/keys.js';
import type { MessageStore, MessageSummary, MessageWriter, StoreRef } from '../../lib/drain/ports.js';
import { drainErrorOf } from '../support/drain-error.js';

export const STORE_CASES = [
  'stores-bytes',
  'stores-large',
  'existed',
  'conflict',
  'summary-mismatch',
  'commit-before-end',
  'abort',
  'put',
  'concurrent',
] as const;
export type StoreCase = (typeof STORE_CASES)[number];

export interface StoreHarness {
  setup(): Promise<void>;
  /** A store on the suite's storage; every call gives another instance. */
  open(): MessageStore;
  /** The bytes stored at `ref`, or undefined when nothing is there. */
  read(ref: StoreRef): Promise<Buffer | undefined>;
  /** How the store keeps the bytes it is given (identity, unless the store transforms them). */
  kept?(bytes: Buffer): Buffer;
  teardown(): Promise<void>;
  /** Cases this adapter leaves out, each with the reason (reported, never silent). */
  exclude?: Partial<Record<StoreCase, string>>;
}

const MAILBOX = 'contract-box';

export function summaryOf(bytes: Buffer, metadata: Record<string, string> = {}): MessageSummary {
  return { sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length, metadata };
}

/** A message as a server sends it: CRLF lines, a dot-stuffed-looking line, 8-bit bytes. */
export function message(bodyBytes: number, seed = randomBytes(8).toString('hex')): Buffer {
  const head = Buffer.from(`Message-ID: <${seed}@example.test>\r\nSubject: contract ${seed}\r\n\r\n..not a terminator\r\n`, 'latin1');
  const body = Buffer.from(randomBytes(bodyBytes).toString('base64').replace(/(.{76})/g, '$1\r\n'), 'latin1');
  return Buffer.concat([head, body, Buffer.from('\r\n\xe9\xff\r\n', 'latin1')]);
}

/** Stream `data` into the writer in pieces, honouring backpressure, and end it. */
export async function writeAll(writer: MessageWriter, data: Buffer, pieceSize = 16 * 1024): Promise<void> {
  const stream = writer.stream;
  for (let i = 0; i < data.length; i += pieceSize) {
    if (!stream.write(data.subarray(i, i + pieceSize))) await new Promise((r) => stream.once('drain', r));
  }
  await new Promise<void>((resolve, reject) => {
    stream.once('error', reject);
    stream.end(() => resolve());
  });
}

export function describeStoreContract(name: string, harness: StoreHarness): void {
  describe(`MessageStore contract: ${name}`, () => {
    let counter = 0;
    const newKey = (): { key: string; uidl: string } => {
      const uidl = `contract-${++counter}`;
      return { key: messageKey(MAILBOX, uidl), uidl };
    };
    const kept = (bytes: Buffer): Buffer => (harness.kept === undefined ? bytes : harness.kept(bytes));
    const excluded = harness.exclude ?? {};
    const check = (id: StoreCase, title: string, fn: () => Promise<void>): void => {
      if (excluded[id] === undefined) it(`${id}: ${title}`, fn);
    };
    const store = async (s: MessageStore, key: string, uidl: string, data: Buffer) => {
      const writer = await s.open(key, { mailboxId: MAILBOX, uidl, expectedSize: data.length });
      await writeAll(writer, data);
      return writer.commit(summaryOf(data));
    };

    beforeAll(() => harness.setup());
    afterAll(() => harness.teardown());

    check('stores-bytes', 'stores what was written under its key, at the ref refFor names, existed: false', async () => {
      const s = harness.open();
      const { key, uidl } = newKey();
      const data = message(4_000);
      const stored = await store(s, key, uidl, data);
      expect(stored).toEqual({ ref: s.refFor(key), existed: false });
      expect(harness.open().refFor(key)).toEqual(s.refFor(key));
      expect(await harness.read(stored.ref)).toEqual(kept(data));
    });

    check('stores-large', 'stores a message of a few MB, streamed, intact', async () => {
      const s = harness.open();
      const { key, uidl } = newKey();
      const data = message(3 * 1024 * 1024);
      const stored = await store(s, key, uidl, data);
      expect(stored.existed).toBe(false);
      expect((await harness.read(stored.ref))?.equals(kept(data))).toBe(true);
    });

    check('existed', 'the same bytes again, from any instance, succeed with existed: true', async () => {
      const { key, uidl } = newKey();
      const data = message(2_000);
      const first = await store(harness.open(), key, uidl, data);
      const again = await store(harness.open(), key, uidl, data);
      expect(again).toEqual({ ref: first.ref, existed: true });
      expect(await harness.read(first.ref)).toEqual(kept(data));
    });

    check('conflict', 'different bytes under a stored key: STORE_CONFLICT, and the first message stays', async () => {
      const { key, uidl } = newKey();
      const data = message(2_000);
      const first = await store(harness.open(), key, uidl, data);
      const error = await drainErrorOf(store(harness.open(), key, uidl, message(2_000)));
      expect(error).toMatchObject({ code: 'STORE_CONFLICT', phase: 'store', retryable: false });
      expect(await harness.read(first.ref)).toEqual(kept(data));
    });

    check('summary-mismatch', 'a summary whose size is not that of the bytes written: STORE_FAILED, nothing stored', async () => {
      const s = harness.open();
      for (const wrong of [(x: MessageSummary) => ({ ...x, size: x.size + 1 }), (x: MessageSummary) => ({ ...x, size: x.size - 1 })]) {
        const { key, uidl } = newKey();
        const data = message(1_000);
        const writer = await s.open(key, { mailboxId: MAILBOX, uidl });
        await writeAll(writer, data);
        const error = await drainErrorOf(writer.commit(wrong(summaryOf(data))));
        expect(error).toMatchObject({ code: 'STORE_FAILED', phase: 'store', retryable: false });
        await writer.abort();
        expect(await harness.read(s.refFor(key))).toBeUndefined();
      }
    });

    check('commit-before-end', 'a commit before the stream ended: STORE_FAILED, nothing stored', async () => {
      const s = harness.open();
      const { key, uidl } = newKey();
      const writer = await s.open(key, { mailboxId: MAILBOX, uidl });
      writer.stream.write(Buffer.from('partial'));
      const error = await drainErrorOf(writer.commit(summaryOf(Buffer.from('partial'))));
      expect(error).toMatchObject({ code: 'STORE_FAILED', phase: 'store', retryable: false });
      await writer.abort();
      expect(await harness.read(s.refFor(key))).toBeUndefined();
    });

    check('abort', 'abort stores nothing and never throws (twice, or after a commit); a commit after it fails', async () => {
      const s = harness.open();
      const { key, uidl } = newKey();
      const writer = await s.open(key, { mailboxId: MAILBOX, uidl });
      writer.stream.write(message(1_000));
      await writer.abort();
      await writer.abort();
      expect(await harness.read(s.refFor(key))).toBeUndefined();
      expect((await drainErrorOf(writer.commit(summaryOf(Buffer.alloc(0))))).code).toBe('STORE_FAILED');

      const done = newKey();
      const data = message(100);
      const committed = await s.open(done.key, { mailboxId: MAILBOX, uidl: done.uidl });
      await writeAll(committed, data);
      const stored = await committed.commit(summaryOf(data));
      await committed.abort();
      expect(await harness.read(stored.ref)).toEqual(kept(data));
    });

    check('put', 'put keeps the contract of open + write + commit for chunks in memory', async () => {
      const s = harness.open();
      if (s.put === undefined) throw new Error(`${name} has no put: exclude this case, with the reason`);
      const { key, uidl } = newKey();
      const data = message(5_000);
      const chunks = [data.subarray(0, 3), data.subarray(3, 2_000), data.subarray(2_000)];
      const stored = await s.put(key, { mailboxId: MAILBOX, uidl }, chunks, summaryOf(data));
      expect(stored).toEqual({ ref: s.refFor(key), existed: false });
      expect(await harness.read(stored.ref)).toEqual(kept(data));
      if (excluded.existed === undefined) {
        expect(await harness.open().put!(key, { mailboxId: MAILBOX, uidl }, [data], summaryOf(data))).toEqual({ ref: stored.ref, existed: true });
      }
      const other = newKey();
      const wrong = await drainErrorOf(s.put(other.key, { mailboxId: MAILBOX, uidl: other.uidl }, [data], { ...summaryOf(data), size: data.length + 1 }));
      expect(wrong).toMatchObject({ code: 'STORE_FAILED', retryable: false });
      expect(await harness.read(s.refFor(other.key))).toBeUndefined();
    });

    check('concurrent', 'many messages committed at once are each stored intact', async () => {
      const s = harness.open();
      const messages = Array.from({ length: 40 }, (_, i) => ({ ...newKey(), data: message(200 + i * 500) }));
      const results = await Promise.all(messages.map((m) => store(s, m.key, m.uidl, m.data)));
      for (const [i, m] of messages.entries()) {
        expect(results[i]).toEqual({ ref: s.refFor(m.key), existed: false });
        expect(await harness.read(results[i]!.ref)).toEqual(kept(m.data));
      }
    });
  });
}
