// The local adapters on real files in a temp folder: store, ledger, event sink, layout.
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { appendFile, chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DrainError } from '../../lib/drain/errors.js';
import { toEnvelope, type DrainEvent } from '../../lib/drain/events.js';
import { messageKey } from '../../lib/drain/keys.js';
import type { LedgerEntry, MessageWriter, RunSummary } from '../../lib/drain/ports.js';
import { CommitWorker } from '../../lib/adapters/local/commit-worker.js';
import { crc32, crc32Js } from '../../lib/adapters/local/crc32.js';
import { isRetryableFsError } from '../../lib/adapters/local/durable-fs.js';
import { GroupCommit } from '../../lib/adapters/local/group-commit.js';
import { decodeLog, encodeEntryLine, encodeRecord, entryJson } from '../../lib/adapters/local/ledger-log.js';
import {
  createLocalAdapters,
  FileLedger,
  FileMessageStore,
  JsonlEventSink,
  readJsonlEvents,
  storeKeyProblem,
} from '../../lib/adapters/local/index.js';
import { validateEventEnvelope } from '../support/event-schema.js';
import { storedEntry, storedEvent } from '../../testkit/fixtures/ledger-fixtures.js';
import { drainErrorOf as rejection } from '../support/drain-error.js';

const MAILBOX = 'box-1';
const isRoot = process.getuid?.() === 0;

let dir: string;
const opened: Array<{ close(): Promise<void> }> = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'popdrain-local-'));
});
afterEach(async () => {
  for (const o of opened.splice(0)) await o.close();
  await chmod(dir, 0o700).catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
});

/** A ledger closed after the test (it keeps its logs open). */
function ledgerAt(options: ConstructorParameters<typeof FileLedger>[0]): FileLedger {
  const ledger = new FileLedger(options);
  opened.push(ledger);
  return ledger;
}

function sinkAt(options: ConstructorParameters<typeof JsonlEventSink>[0]): JsonlEventSink {
  const sink = new JsonlEventSink(options);
  opened.push(sink);
  return sink;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Write `data` in pieces of `pieceSize`, honouring backpressure, and end the stream. */
async function writeAll(writer: MessageWriter, data: Buffer, pieceSize = 1000): Promise<void> {
  const stream = writer.stream;
  for (let i = 0; i < data.length; i += pieceSize) {
    if (!stream.write(data.subarray(i, i + pieceSize))) await new Promise((r) => stream.once('drain', r));
  }
  await new Promise<void>((resolve, reject) => {
    stream.once('error', reject);
    stream.end(() => resolve());
  });
}

async function storeMessage(store: FileMessageStore, key: string, data: Buffer) {
  const writer = await store.open(key, { mailboxId: MAILBOX, uidl: 'u' });
  await writeAll(writer, data);
  return writer.commit({ sha256: sha256(data), size: data.length, metadata: {} });
}

function thrown(fn: () => unknown): DrainError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(DrainError);
    return error as DrainError;
  }
  throw new Error('expected a throw');
}

async function namesIn(folder: string): Promise<string[]> {
  return (await readdir(folder)).sort();
}

/** A pid that no process has now: a child that already exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}

// -------------------------------------------------------------------------------------------

describe('FileMessageStore', () => {
  // The port's semantics (existed, conflict, summary checks, abort, put) are in
  // test/contract/store-contract.ts; here what is particular to files.
  const key = messageKey(MAILBOX, 'uidl-1');

  it('stores exactly the bytes written, under root/key, and reports where', async () => {
    const store = new FileMessageStore({ root: dir });
    const data = Buffer.concat([randomBytes(200_000), Buffer.from('\r\n.\r\n\0\xff', 'latin1')]);
    const stored = await storeMessage(store, key, data);
    expect(stored).toEqual({ ref: { type: 'file', path: join(dir, key) }, existed: false });
    expect(store.refFor(key)).toEqual({ type: 'file', path: join(dir, key) });
    expect((await readFile(join(dir, key))).equals(data)).toBe(true);
    expect(await namesIn(join(dir, MAILBOX))).toEqual([key.split('/')[1]]);
  });

  it('shows no .eml before commit, and its temp name never ends in .eml', async () => {
    const store = new FileMessageStore({ root: dir, memorySpoolBytes: 0 });
    const data = randomBytes(10_000);
    const writer = await store.open(key, { mailboxId: MAILBOX, uidl: 'u' });
    await writeAll(writer, data);
    const before = await namesIn(join(dir, MAILBOX));
    expect(before).toHaveLength(1);
    expect(before[0]).toMatch(/^\.tmp-.*\.part$/);
    expect((await stat(join(dir, MAILBOX, before[0]!))).size).toBe(data.length);
    expect(before.filter((n) => n.endsWith('.eml'))).toEqual([]);
    await writer.commit({ sha256: sha256(data), size: data.length, metadata: {} });
    expect(await namesIn(join(dir, MAILBOX))).toEqual([key.split('/')[1]]);
  });

  it('holds a small message in memory until commit, then writes it whole', async () => {
    const store = new FileMessageStore({ root: dir, memorySpoolBytes: 16_000 });
    const data = randomBytes(15_000);
    const writer = await store.open(key, { mailboxId: MAILBOX, uidl: 'u', expectedSize: data.length });
    await writeAll(writer, data);
    expect(await namesIn(join(dir, MAILBOX))).toEqual([]); // nothing on disk while it streams
    await writer.commit({ sha256: sha256(data), size: data.length, metadata: {} });
    expect(await namesIn(join(dir, MAILBOX))).toEqual([key.split('/')[1]]);
    expect((await readFile(join(dir, key))).equals(data)).toBe(true);
    // An empty message is a (durable) empty file too.
    const emptyKey = messageKey(MAILBOX, 'empty');
    expect((await storeMessage(store, emptyKey, Buffer.alloc(0))).existed).toBe(false);
    expect((await readFile(join(dir, emptyKey))).length).toBe(0);
  });

  it('moves a message that outgrows the memory spool into its temp file as it streams', async () => {
    const store = new FileMessageStore({ root: dir, memorySpoolBytes: 4_000 });
    const data = randomBytes(50_000);
    // Announced small (or not at all), but larger: it spills on the way.
    const writer = await store.open(key, { mailboxId: MAILBOX, uidl: 'u', expectedSize: 3_000 });
    await writeAll(writer, data, 1500);
    const before = await namesIn(join(dir, MAILBOX));
    expect(before).toHaveLength(1);
    expect(before[0]).toMatch(/^\.tmp-.*\.part$/);
    await writer.commit({ sha256: sha256(data), size: data.length, metadata: {} });
    expect((await readFile(join(dir, key))).equals(data)).toBe(true);
    // Announced larger than the spool: the temp file exists from open on.
    const big = await store.open(messageKey(MAILBOX, 'big'), { mailboxId: MAILBOX, uidl: 'big', expectedSize: 5_000 });
    expect((await namesIn(join(dir, MAILBOX))).filter((n) => n.endsWith('.part'))).toHaveLength(1);
    await big.abort();
    expect((await namesIn(join(dir, MAILBOX))).filter((n) => n.endsWith('.part'))).toEqual([]);
  });

  it.skipIf(process.platform !== 'linux')('keeps one descriptor per folder for its fsyncs, released by close() and opened again on use', async () => {
    const openFds = (): number => readdirSync('/proc/self/fd').length;
    const before = openFds();
    // Streamed messages (memorySpoolBytes 0) fsync folders from the main thread.
    const store = new FileMessageStore({ root: dir, memorySpoolBytes: 0 });
    await Promise.all(Array.from({ length: 20 }, (_, i) => storeMessage(store, messageKey(MAILBOX, `fd${i}`), randomBytes(100))));
    await storeMessage(store, messageKey('box-2', 'fd'), randomBytes(100));
    expect(openFds()).toBe(before + 2);
    await store.close();
    expect(openFds()).toBe(before);
    await storeMessage(store, messageKey(MAILBOX, 'after-close'), Buffer.from('still works'));
    expect(await readFile(join(dir, messageKey(MAILBOX, 'after-close')), 'utf8')).toBe('still works');
    await store.close();
    expect(openFds()).toBe(before);
  });

  it('commits messages held in memory through the commit worker, which leaves no descriptor open after close()', async () => {
    const openFds = (): number => readdirSync('/proc/self/fd').length;
    const before = openFds();
    const store = new FileMessageStore({ root: dir });
    const messages = Array.from({ length: 300 }, (_, i) => randomBytes(50 + i));
    await Promise.all(messages.map((m, i) => storeMessage(store, messageKey(MAILBOX, `w${i}`), m)));
    for (const [i, m] of messages.entries()) expect((await readFile(join(dir, messageKey(MAILBOX, `w${i}`)))).equals(m)).toBe(true);
    expect((await namesIn(join(dir, MAILBOX))).filter((n) => !n.endsWith('.eml'))).toEqual([]);
    await store.close();
    expect(openFds()).toBe(before);
  });

  it('put stores messages given whole, in any chunks, exactly as open + write + commit would, many at once', async () => {
    const openFds = (): number => readdirSync('/proc/self/fd').length;
    const before = openFds();
    const store = new FileMessageStore({ root: dir });
    const messages = Array.from({ length: 200 }, (_, i) => randomBytes(1 + i * 37));
    const results = await Promise.all(
      messages.map((m, i) => {
        // A first chunk of 0 to 6 bytes (sometimes empty), then two halves.
        const chunks = [m.subarray(0, i % 7), m.subarray(i % 7, Math.max(i % 7, m.length >> 1)), m.subarray(Math.max(i % 7, m.length >> 1))];
        const k = messageKey(MAILBOX, `p${i}`);
        return store.put(k, { mailboxId: MAILBOX, uidl: `p${i}` }, chunks, { sha256: sha256(m), size: m.length, metadata: {} });
      }),
    );
    for (const [i, m] of messages.entries()) {
      const path = join(dir, messageKey(MAILBOX, `p${i}`));
      expect(results[i]).toEqual({ ref: { type: 'file', path }, existed: false });
      expect((await readFile(path)).equals(m)).toBe(true);
      expect((await stat(path)).mode & 0o777).toBe(0o600);
    }
    expect((await namesIn(join(dir, MAILBOX))).filter((n) => !n.endsWith('.eml'))).toEqual([]);
    await store.close();
    expect(openFds()).toBe(before);
  });

  it('put: the same bytes again exist, other bytes conflict, a wrong size fails; nothing is left behind', async () => {
    const store = new FileMessageStore({ root: dir });
    const info = { mailboxId: MAILBOX, uidl: 'u' };
    const data = randomBytes(3000);
    const summary = { sha256: sha256(data), size: data.length, metadata: {} };
    expect(await store.put(key, info, [data], summary)).toEqual({ ref: { type: 'file', path: join(dir, key) }, existed: false });
    expect((await new FileMessageStore({ root: dir }).put(key, info, [data.subarray(0, 10), data.subarray(10)], summary)).existed).toBe(true);
    const other = randomBytes(3000);
    const conflict = await rejection(store.put(key, info, [other], { sha256: sha256(other), size: other.length, metadata: {} }));
    expect(conflict.code).toBe('STORE_CONFLICT');
    expect(conflict.retryable).toBe(false);
    const wrongSize = await rejection(store.put(messageKey(MAILBOX, 'w'), info, [data], { ...summary, size: data.length + 1 }));
    expect(wrongSize.code).toBe('STORE_FAILED');
    expect((await readFile(join(dir, key))).equals(data)).toBe(true);
    expect(await namesIn(join(dir, MAILBOX))).toEqual([key.split('/')[1]]);
    await store.close();
  });

  it('put of a message larger than the memory spool writes it through a temp file, byte for byte', async () => {
    const store = new FileMessageStore({ root: dir, memorySpoolBytes: 1024 });
    const data = randomBytes(200_000);
    const stored = await store.put(key, { mailboxId: MAILBOX, uidl: 'u' }, [data.subarray(0, 70_000), data.subarray(70_000)], {
      sha256: sha256(data),
      size: data.length,
      metadata: {},
    });
    expect(stored).toEqual({ ref: { type: 'file', path: join(dir, key) }, existed: false });
    expect((await readFile(join(dir, key))).equals(data)).toBe(true);
    expect(await namesIn(join(dir, MAILBOX))).toEqual([key.split('/')[1]]);
    await store.close();
  });

  it('abort of a message held in memory leaves nothing behind', async () => {
    const store = new FileMessageStore({ root: dir });
    const writer = await store.open(key, { mailboxId: MAILBOX, uidl: 'u', expectedSize: 1000 });
    writer.stream.write(randomBytes(1000));
    await writer.abort();
    expect(await namesIn(join(dir, MAILBOX))).toEqual([]);
    expect(await store.cleanupTemp(MAILBOX)).toBe(0);
  });

  it('creates folders 0700 and files 0600', async () => {
    const root = join(dir, 'out');
    const store = new FileMessageStore({ root });
    await storeMessage(store, key, Buffer.from('x'));
    expect((await stat(root)).mode & 0o777).toBe(0o700);
    expect((await stat(join(root, MAILBOX))).mode & 0o777).toBe(0o700);
    expect((await stat(join(root, key))).mode & 0o777).toBe(0o600);
  });

  it('abort removes the temp file, never throws, and is a no-op after commit', async () => {
    const store = new FileMessageStore({ root: dir });
    const writer = await store.open(key, { mailboxId: MAILBOX, uidl: 'u' });
    writer.stream.write(randomBytes(1000));
    await writer.abort();
    await writer.abort();
    expect(await namesIn(join(dir, MAILBOX))).toEqual([]);
    expect((await rejection(writer.commit({ sha256: '0', size: 1000, metadata: {} }))).code).toBe('STORE_FAILED');

    const committed = await store.open(key, { mailboxId: MAILBOX, uidl: 'u' });
    await writeAll(committed, Buffer.from('hello'));
    await committed.commit({ sha256: sha256(Buffer.from('hello')), size: 5, metadata: {} });
    await committed.abort();
    expect(await readFile(join(dir, key), 'utf8')).toBe('hello');
  });

  it('validates keys: relative, no "..", ending in .eml', async () => {
    const store = new FileMessageStore({ root: dir });
    for (const bad of ['../x.eml', `${MAILBOX}/../../x.eml`, '/etc/x.eml', `${MAILBOX}/x.txt`, 'x.eml', `${MAILBOX}/.eml`, `${MAILBOX}\\x.eml`, '']) {
      expect(storeKeyProblem(bad), bad).toBeDefined();
      const error = thrown(() => store.refFor(bad));
      expect(error.code).toBe('STORE_FAILED');
      expect(error.retryable).toBe(false);
      await expect(store.open(bad, { mailboxId: MAILBOX, uidl: 'u' })).rejects.toBeInstanceOf(DrainError);
      await expect(store.put(bad, { mailboxId: MAILBOX, uidl: 'u' }, [Buffer.from('x')], { sha256: sha256(Buffer.from('x')), size: 1, metadata: {} })).rejects.toBeInstanceOf(DrainError);
    }
    expect(storeKeyProblem(key)).toBeUndefined();
    expect(await namesIn(dir)).toEqual([]);
  });

  it('commits many messages at once (shared folder fsyncs), each intact', async () => {
    const store = new FileMessageStore({ root: dir });
    const messages = Array.from({ length: 64 }, (_, i) => ({ key: messageKey(MAILBOX, `u${i}`), data: randomBytes(3000 + i) }));
    const results = await Promise.all(messages.map((m) => storeMessage(store, m.key, m.data)));
    expect(results.every((r) => !r.existed)).toBe(true);
    for (const m of messages) expect((await readFile(join(dir, m.key))).equals(m.data)).toBe(true);
    expect((await namesIn(join(dir, MAILBOX))).filter((n) => !n.endsWith('.eml'))).toEqual([]);
  });

  it('maps file-system errors to STORE_FAILED: a file where the folder should be is final', async () => {
    await writeFile(join(dir, MAILBOX), 'not a folder');
    const error = await rejection(new FileMessageStore({ root: dir }).open(key, { mailboxId: MAILBOX, uidl: 'u' }));
    expect(error.code).toBe('STORE_FAILED');
    expect(error.phase).toBe('store');
    expect(error.retryable).toBe(false);
    expect(error.message).toContain(join(dir, MAILBOX));
  });

  it.skipIf(isRoot)('maps EACCES to a final STORE_FAILED', async () => {
    await mkdir(join(dir, MAILBOX), { mode: 0o500 });
    const error = await rejection(new FileMessageStore({ root: dir, memorySpoolBytes: 0 }).open(key, { mailboxId: MAILBOX, uidl: 'u' }));
    expect(error.code).toBe('STORE_FAILED');
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/EACCES/);
    // Held in memory, the message meets the error at commit, and nothing is left behind.
    const inMemory = await rejection(storeMessage(new FileMessageStore({ root: dir }), key, Buffer.from('hello')));
    expect(inMemory.code).toBe('STORE_FAILED');
    expect(inMemory.retryable).toBe(false);
    expect(inMemory.message).toMatch(/EACCES/);
  });

  it('cleanupTemp removes leftovers of dead processes and stale ones, keeps live and open ones', async () => {
    const store = new FileMessageStore({ root: dir, memorySpoolBytes: 0 });
    const open = await store.open(key, { mailboxId: MAILBOX, uidl: 'u' });
    const folder = join(dir, MAILBOX);
    const dead = `.tmp-${deadPid()}-abcd-1.part`;
    const liveFresh = `.tmp-${process.ppid}-abcd-2.part`;
    const liveOld = `.tmp-${process.ppid}-abcd-3.part`;
    const ownNonce = /^\.tmp-\d+-([0-9a-f]+)-/.exec((await namesIn(folder))[0]!)![1];
    const ownLeftover = `.tmp-${process.pid}-${ownNonce}-999.part`;
    const otherStoreHere = `.tmp-${process.pid}-0000-1.part`;
    for (const name of [dead, liveFresh, liveOld, ownLeftover, otherStoreHere]) await writeFile(join(folder, name), 'partial');
    const old = new Date(Date.now() - 120_000);
    await utimes(join(folder, liveOld), old, old);
    expect(await store.cleanupTemp(MAILBOX)).toBe(3);
    const left = await namesIn(folder);
    expect(left).toContain(liveFresh);
    expect(left).toContain(otherStoreHere);
    expect(left).toHaveLength(3); // and the open writer's temp
    await writeAll(open, Buffer.from('still fine'));
    await open.commit({ sha256: sha256(Buffer.from('still fine')), size: 10, metadata: {} });
    expect(await store.cleanupTemp('no-such-mailbox')).toBe(0);
  });

  it('removes what a crashed run left in a folder before its first write there', async () => {
    const folder = join(dir, MAILBOX);
    await mkdir(folder, { recursive: true });
    const leftover = `.tmp-${deadPid()}-abcd-1.part`;
    await writeFile(join(folder, leftover), 'partial');
    await storeMessage(new FileMessageStore({ root: dir }), key, Buffer.from('x'));
    expect(await namesIn(folder)).toEqual([key.split('/')[1]]);
  });
});

// -------------------------------------------------------------------------------------------

describe('CommitWorker', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'popdrain-commit-worker-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('never replaces a file already at the final name (linked: false), and removes its temp file', async () => {
    const worker = new CommitWorker();
    await writeFile(join(dir, 'a.eml'), 'first');
    const results = await Promise.all([
      worker.commit({ temp: join(dir, '.t1.part'), final: join(dir, 'a.eml'), data: [Buffer.from('second')], mode: 0o600 }),
      worker.commit({ temp: join(dir, '.t2.part'), final: join(dir, 'b.eml'), data: [Buffer.from('new'), Buffer.from(' one')], mode: 0o600 }),
    ]);
    expect(results).toEqual([{ linked: false }, { linked: true }]);
    expect(await readFile(join(dir, 'a.eml'), 'utf8')).toBe('first');
    expect(await readFile(join(dir, 'b.eml'), 'utf8')).toBe('new one');
    expect((await readdir(dir)).sort()).toEqual(['a.eml', 'b.eml']);
    await worker.close();
  });

  it('gets its segments back from the thread with the answer, and uses them for the next batch', async () => {
    const worker = new CommitWorker();
    const pool = (worker as unknown as { pool: { bytes: number } }).pool;
    expect(await worker.commit({ temp: join(dir, '.t1.part'), final: join(dir, 'a.eml'), data: [Buffer.from('first')], mode: 0o600 })).toEqual({ linked: true });
    const kept = pool.bytes;
    expect(kept).toBeGreaterThan(0);
    const next = worker.commit({ temp: join(dir, '.t2.part'), final: join(dir, 'b.eml'), data: [Buffer.from('second')], mode: 0o600 });
    expect(pool.bytes).toBe(0); // taken for the batch being gathered
    expect(await next).toEqual({ linked: true });
    expect(pool.bytes).toBe(kept);
    expect(await readFile(join(dir, 'a.eml'), 'utf8')).toBe('first');
    expect(await readFile(join(dir, 'b.eml'), 'utf8')).toBe('second');
    await worker.close();
  });

  it('a worker thread that dies fails the commits it held with a retryable STORE_FAILED; the next commit works', async () => {
    const worker = new CommitWorker();
    const pending = worker.commit({ temp: join(dir, '.t1.part'), final: join(dir, 'a.eml'), data: [Buffer.from('x')], mode: 0o600 });
    // The batch goes out at the end of this turn; the thread is stopped before it can answer.
    await new Promise((resolve) => setImmediate(resolve));
    await (worker as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    const error = await pending.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DrainError);
    expect(error).toMatchObject({ code: 'STORE_FAILED', retryable: true, phase: 'store' });
    expect((error as Error).message).toMatch(/commit worker/);
    expect(await worker.commit({ temp: join(dir, '.t2.part'), final: join(dir, 'b.eml'), data: [Buffer.from('y')], mode: 0o600 })).toEqual({ linked: true });
    await worker.close();
  });

  it('a thread that cannot be started fails the batch with a retryable STORE_FAILED instead of leaving it waiting', async () => {
    const worker = new CommitWorker();
    (worker as unknown as { start(): never }).start = () => {
      throw new Error('no threads left');
    };
    const error = await worker.commit({ temp: join(dir, '.t1.part'), final: join(dir, 'a.eml'), data: [Buffer.from('x')], mode: 0o600 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: 'STORE_FAILED', retryable: true });
    expect((error as Error).message).toContain('no threads left');
    await worker.close();
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('GroupCommit', () => {
  it('flushes callers of one burst together, and gathers callers during a flush into the next', async () => {
    const batches: number[][] = [];
    let release: (() => void) | undefined;
    const group = new GroupCommit<number>(async (items) => {
      batches.push(items);
      if (items.includes(0)) await new Promise<void>((r) => (release = r));
    });
    const first = [0, 1, 2].map((n) => group.submit(n));
    await new Promise((r) => setImmediate(r));
    expect(batches).toEqual([[0, 1, 2]]);
    const second = [3, 4].map((n) => group.submit(n));
    await new Promise((r) => setTimeout(r, 10));
    expect(batches).toHaveLength(1); // waits for the flush in flight
    release!();
    await Promise.all([...first, ...second]);
    expect(batches).toEqual([[0, 1, 2], [3, 4]]);
  });

  it('rejects the callers of a failed flush only', async () => {
    const group = new GroupCommit<string>(async (items) => {
      if (items.includes('bad')) throw new Error('disk on fire');
    });
    const failed = Promise.all([group.submit('a'), group.submit('bad')]);
    await expect(failed).rejects.toThrow('disk on fire');
    await expect(group.submit('c')).resolves.toBeUndefined();
    await group.drained();
  });
});

describe('file-system errors', () => {
  it('count as retryable only when they can clear by themselves', () => {
    const withCode = (code: string) => Object.assign(new Error(code), { code });
    for (const code of ['ENOSPC', 'EDQUOT', 'EMFILE', 'ENFILE', 'EAGAIN', 'EBUSY']) expect(isRetryableFsError(withCode(code)), code).toBe(true);
    for (const code of ['EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EISDIR', 'EIO', 'ENOENT']) expect(isRetryableFsError(withCode(code)), code).toBe(false);
    expect(isRetryableFsError(new Error('no code'))).toBe(false);
  });
});

describe('ledger log format', () => {
  it('uses the standard CRC-32', () => {
    const data = Buffer.from('123456789');
    expect(crc32(data)).toBe(0xcbf43926);
    expect(crc32Js(data)).toBe(0xcbf43926);
    const random = randomBytes(4096);
    expect(crc32Js(random)).toBe(crc32(random));
  });

  it('writes an entry line exactly as the generic encoder would, one line even for odd UIDLs', () => {
    const entry = storedEntry(MAILBOX, 'odd\nuidl "with" \u2028 ünïcode');
    const line = encodeEntryLine(JSON.stringify(entry));
    expect(line.equals(encodeRecord({ t: 'rec', e: entry }))).toBe(true);
    expect(line.indexOf(0x0a)).toBe(line.length - 1);
    expect(decodeLog(line).records).toEqual([{ t: 'rec', e: entry }]);
    // The ledger's own encoding of an entry (its event's detail text made once) is the same text.
    expect(entryJson(entry)).toBe(JSON.stringify(entry));
    expect(entryJson(entry)).toBe(JSON.stringify(entry)); // from the cache this time
    const announced: LedgerEntry = { ...storedEntry(MAILBOX, 'b'), status: 'announced', announcedAt: 5, deletedAt: 6, expiresAt: 7 };
    expect(JSON.parse(entryJson(announced))).toEqual(announced);
  });

  it('finds the torn tail at every cut of the last line', () => {
    const a = encodeRecord({ t: 'ann', u: ['x'], at: 1 });
    const b = encodeRecord({ t: 'del', u: ['ÿ ü'], at: 2, exp: 3 });
    for (let cut = 0; cut < b.length; cut++) {
      const decoded = decodeLog(Buffer.concat([a, b.subarray(0, cut)]));
      expect(decoded.records).toHaveLength(1);
      expect(decoded.validBytes).toBe(a.length);
      expect(decoded.corruptLines).toBe(0);
    }
    expect(decodeLog(Buffer.concat([a, b])).validBytes).toBe(a.length + b.length);
  });

  it('skips a corrupt line followed by valid ones, and counts it', () => {
    const a = encodeRecord({ t: 'ann', u: ['x'], at: 1 });
    const bad = Buffer.from(encodeRecord({ t: 'ann', u: ['y'], at: 1 }).toString().replace('"y"', '"z"'));
    const decoded = decodeLog(Buffer.concat([a, bad, a]));
    expect(decoded.records).toHaveLength(2);
    expect(decoded.corruptLines).toBe(1);
  });
});

describe('FileLedger', () => {
  const entry = (uidl: string): LedgerEntry => storedEntry(MAILBOX, uidl);
  const logPath = (): string => join(dir, `${MAILBOX}.ledger`);
  const run: RunSummary = {
    runId: 'run-1',
    startedAt: 1,
    finishedAt: 2,
    stopReason: 'complete',
    moreRemaining: false,
    fetched: 3,
    fetchedBytes: 4,
    skipped: 0,
    deleted: 1,
    failures: 0,
    knownOnServer: 2,
    serverMessages: 2,
    pendingAnnouncements: 0,
  };

  it('round-trips record, lookup, markAnnounced, markDeleted, pending and state across a reopen', async () => {
    const ledger = ledgerAt({ dir });
    const skipped: LedgerEntry = { ...entry('big'), status: 'skipped', key: undefined, sha256: undefined };
    const outcomes = await ledger.record([entry('a'), entry('b'), entry('c'), skipped]);
    expect(outcomes).toEqual([
      { uidl: 'a', ok: true },
      { uidl: 'b', ok: true },
      { uidl: 'c', ok: true },
      { uidl: 'big', ok: true },
    ]);
    await ledger.markAnnounced(MAILBOX, ['a', 'b', 'big', 'unknown'], 1000);
    await ledger.markAnnounced(MAILBOX, ['a'], 2000); // the first announcement's time stays
    await ledger.markDeleted(MAILBOX, ['a'], 3000, 4_000_000_000);
    await ledger.updateMailboxState(MAILBOX, { lastRun: run, backlogSince: 5, uidlResetTrippedAt: 6, acceptUidlReset: true });
    await ledger.updateMailboxState(MAILBOX, { backlogSince: null, acceptUidlReset: null });
    await ledger.close();

    for (const reader of [ledger, ledgerAt({ dir })]) {
      const found = await reader.lookup(MAILBOX, ['a', 'b', 'c', 'big', 'nope']);
      expect([...found.keys()].sort()).toEqual(['a', 'b', 'big', 'c']);
      expect(found.get('a')).toEqual({ ...entry('a'), status: 'announced', announcedAt: 1000, deletedAt: 3000, expiresAt: 4_000_000_000 });
      expect(found.get('b')).toEqual({ ...entry('b'), status: 'announced', announcedAt: 1000 });
      expect(found.get('c')).toEqual(entry('c'));
      expect(found.get('big')).toEqual({ ...JSON.parse(JSON.stringify(skipped)), announcedAt: 1000 });
      expect((await reader.pending(MAILBOX)).map((e) => e.uidl)).toEqual(['c']);
      expect(await reader.getMailboxState(MAILBOX)).toEqual({ mailboxId: MAILBOX, lastRun: run, uidlResetTrippedAt: 6 });
      expect(await reader.getMailboxState('other-box')).toEqual({ mailboxId: 'other-box' });
    }
    expect((await stat(logPath())).mode & 0o777).toBe(0o600);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
  });

  it('keeps every one of many concurrent writes (group commit), across a reopen', async () => {
    const ledger = ledgerAt({ dir });
    const uidls = Array.from({ length: 500 }, (_, i) => `u${i}`);
    await Promise.all(uidls.map((u) => ledger.record([entry(u)])));
    await Promise.all(uidls.filter((_, i) => i % 2 === 0).map((u) => ledger.markAnnounced(MAILBOX, [u], 7)));
    const reopened = ledgerAt({ dir });
    const found = await reopened.lookup(MAILBOX, uidls);
    expect(found.size).toBe(500);
    expect((await reopened.pending(MAILBOX)).length).toBe(250);
    const decoded = decodeLog(await readFile(logPath()));
    expect(decoded.records.filter((r) => r.t === 'rec')).toHaveLength(500);
    expect(decoded.corruptLines).toBe(0);
  });

  it('ignores a torn last line and truncates it before the next append', async () => {
    const ledger = ledgerAt({ dir });
    await ledger.record([entry('a'), entry('b')]);
    await ledger.close();
    const intact = (await stat(logPath())).size;
    const torn = encodeRecord({ t: 'rec', e: entry('c') }).subarray(0, 300);
    await appendFile(logPath(), torn);

    const reader = ledgerAt({ dir });
    expect([...(await reader.lookup(MAILBOX, ['a', 'b', 'c'])).keys()]).toEqual(['a', 'b']);
    expect((await stat(logPath())).size).toBe(intact + torn.length); // reading never writes

    await reader.record([entry('d')]);
    const decoded = decodeLog(await readFile(logPath()));
    expect(decoded.validBytes).toBe((await stat(logPath())).size);
    expect(decoded.records.filter((r) => r.t === 'rec').map((r) => (r.t === 'rec' ? r.e.uidl : ''))).toEqual(['a', 'b', 'd']);

    // A last line that is complete but fails its checksum is torn too.
    await appendFile(logPath(), '00000000 {"t":"ann","u":["a"],"at":1}\n');
    const again = ledgerAt({ dir });
    expect((await again.lookup(MAILBOX, ['a'])).get('a')?.status).toBe('stored');
    await again.markAnnounced(MAILBOX, ['d'], 9);
    expect(decodeLog(await readFile(logPath())).corruptLines).toBe(0);
  });

  it('reloads when another process appended to the log since it was read', async () => {
    const mine = ledgerAt({ dir });
    await mine.record([entry('a')]);
    const theirs = ledgerAt({ dir });
    await theirs.record([entry('b')]);
    await theirs.updateMailboxState(MAILBOX, { acceptUidlReset: true });
    expect((await mine.record([entry('b')]))[0]!.ok).toBe(false);
    expect((await mine.getMailboxState(MAILBOX)).acceptUidlReset).toBe(true);
  });

  it('compaction keeps everything live, drops expired entries, and survives a reopen', async () => {
    const now = 1_700_000_000_000;
    const ledger = ledgerAt({ dir, now: () => now });
    const uidls = Array.from({ length: 300 }, (_, i) => `u${i}`);
    await ledger.record(uidls.map(entry));
    await ledger.markAnnounced(MAILBOX, uidls.slice(0, 200), 10);
    await ledger.markDeleted(MAILBOX, uidls.slice(0, 50), 20, now / 1000 + 3600);
    await ledger.markDeleted(MAILBOX, ['u299'], 20, now / 1000 - 1); // expired
    for (let i = 0; i < 50; i++) await ledger.updateMailboxState(MAILBOX, { backlogSince: i, lastRun: run });
    const before = new Map(await ledgerAt({ dir }).lookup(MAILBOX, uidls));
    const sizeBefore = (await stat(logPath())).size;

    await ledger.compact(MAILBOX);
    expect((await stat(logPath())).size).toBeLessThan(sizeBefore);
    await ledger.record([entry('after')]);
    // No temp file left; the compaction wrote the new log's index beside it.
    expect((await readdir(dir)).sort()).toEqual([`${MAILBOX}.ledger`, `${MAILBOX}.ledger-index`]);

    for (const reader of [ledger, ledgerAt({ dir })]) {
      const after = await reader.lookup(MAILBOX, [...uidls, 'after']);
      expect(after.has('u299')).toBe(false);
      before.delete('u299');
      for (const [uidl, e] of before) expect(after.get(uidl)).toEqual(e);
      expect(after.get('after')).toEqual(entry('after'));
      expect((await reader.pending(MAILBOX)).length).toBe(99 + 1);
      expect(await reader.getMailboxState(MAILBOX)).toEqual({ mailboxId: MAILBOX, backlogSince: 49, lastRun: run });
    }
  });

  it('compacts by itself once the log is far larger than its live state', async () => {
    const ledger = ledgerAt({ dir, compactMinBytes: 64 * 1024 });
    await ledger.record([entry('a')]);
    for (let i = 0; i < 400; i++) await ledger.updateMailboxState(MAILBOX, { lastRun: { ...run, fetched: i } });
    await ledger.record([entry('b')]); // lets a compaction queued by the last update run first
    expect((await stat(logPath())).size).toBeLessThan(64 * 1024);
    const reopened = ledgerAt({ dir });
    expect((await reopened.getMailboxState(MAILBOX)).lastRun?.fetched).toBe(399);
    expect((await reopened.lookup(MAILBOX, ['a', 'b'])).size).toBe(2);
  });

  it('refuses a log written by a newer format, and invalid mailbox ids', async () => {
    await mkdir(dir, { recursive: true });
    await writeFile(logPath(), encodeRecord({ t: 'hdr', v: 99, mailboxId: MAILBOX }));
    const error = await rejection(ledgerAt({ dir }).lookup(MAILBOX, ['a']));
    expect(error.code).toBe('LEDGER_FAILED');
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/version 99/);
    const invalid = await rejection(ledgerAt({ dir }).lookup('../x', ['a']));
    expect(invalid.code).toBe('CONFIG_INVALID');
  });

  it('maps write failures to LEDGER_FAILED and recovers once the cause is gone', async () => {
    const blocked = join(dir, 'ledger');
    await writeFile(blocked, 'a file where the folder should be');
    const ledger = ledgerAt({ dir: blocked });
    const error = await rejection(ledger.record([entry('a')]));
    expect(error.code).toBe('LEDGER_FAILED');
    expect(error.phase).toBe('ledger');
    await rm(blocked);
    expect(await ledger.record([entry('a')])).toEqual([{ uidl: 'a', ok: true }]);
  });

  it.skipIf(!existsSync('/dev/full'))('reports a full disk as a retryable LEDGER_FAILED', async () => {
    await symlink('/dev/full', logPath());
    const error = await rejection(ledgerAt({ dir }).record([entry('a')]));
    expect(error.code).toBe('LEDGER_FAILED');
    expect(error.retryable).toBe(true);
    expect(error.message).toMatch(/ENOSPC/);
  });

  describe('lease', () => {
    // The lease's semantics are in test/contract/ledger-contract.ts; here its files.
    it('is a lease file per generation, 0600; released generations stay until the next holder removes them', async () => {
      const a = ledgerAt({ dir });
      const b = ledgerAt({ dir });
      const leaseA = await a.acquireLease(MAILBOX, 'run-a', 10_000, 1000);
      expect((await stat(join(dir, `${MAILBOX}.lease.1`))).mode & 0o777).toBe(0o600);
      const leaseB = await b.acquireLease(MAILBOX, 'run-b', 10_000, 11_000);
      const lost = await rejection(a.renewLease(leaseA!, 10_000, 11_001));
      expect(lost.message).toContain('run-b');
      await b.releaseLease(leaseB!);
      // Released generations stay (numbers only grow); the next holder removes the older ones.
      expect(await readdir(dir)).toEqual([`${MAILBOX}.lease.2`]);
      expect(await a.acquireLease(MAILBOX, 'run-c', 1000, 17_000)).toBeDefined();
      expect(await readdir(dir)).toEqual([`${MAILBOX}.lease.3`]);
    });

    it('is taken over from a process that no longer exists, however long it had left', async () => {
      await writeFile(
        join(dir, `${MAILBOX}.lease.1`),
        JSON.stringify({ v: 1, mailboxId: MAILBOX, owner: 'crashed', pid: deadPid(), host: (await import('node:os')).hostname(), expiresAt: 9e15, nonce: 'n' }),
      );
      const ledger = ledgerAt({ dir });
      expect(await ledger.leaseHolder(MAILBOX, 1000)).toBeUndefined();
      expect((await ledger.acquireLease(MAILBOX, 'next', 1000, 1000))?.owner).toBe('next');
    });

    it('an unreadable lock (a crash before its data reached the disk) is stale', async () => {
      await writeFile(join(dir, `${MAILBOX}.lease.1`), '');
      expect((await ledgerAt({ dir }).acquireLease(MAILBOX, 'next', 1000, 1000))?.owner).toBe('next');
    });

    it('goes to exactly one of many runs taking over the same expired lease at once', async () => {
      const first = ledgerAt({ dir });
      await first.acquireLease(MAILBOX, 'old', 1000, 0);
      for (let round = 0; round < 5; round++) {
        const now = 10_000 * (round + 1);
        const contenders = Array.from({ length: 8 }, () => ledgerAt({ dir }));
        const results = await Promise.all(contenders.map((l, i) => l.acquireLease(MAILBOX, `r${round}-${i}`, 1000, now)));
        const winners = results.filter((r) => r !== undefined);
        expect(winners).toHaveLength(1);
        expect((await first.leaseHolder(MAILBOX, now))?.owner).toBe(winners[0]!.owner);
      }
      expect(await readdir(dir)).toEqual([`${MAILBOX}.lease.6`]);
    });
  });
});

// -------------------------------------------------------------------------------------------

describe('JsonlEventSink', () => {
  const events = (n: number, prefix = 'u'): DrainEvent[] => Array.from({ length: n }, (_, i) => storedEvent(MAILBOX, `${prefix}${i}`));

  it('appends each event as one line: the envelope with its id, fsynced, 0600', async () => {
    const path = join(dir, 'sub', 'events.jsonl');
    const sink = sinkAt({ path });
    const batch = events(3);
    expect(await sink.publish(batch)).toEqual({ published: batch.map((e) => e.id), failed: [] });
    const text = await readFile(path, 'utf8');
    const lines = text.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toEqual(batch.map((e) => JSON.stringify({ id: e.id, ...toEnvelope(e) })));
    const first = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(Object.keys(first)).toEqual(['id', 'source', 'detail-type', 'time', 'detail']);
    expect(validateEventEnvelope(first)).toEqual([]);
    expect(first.source).toBe('popdrain');
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'sub'))).mode & 0o777).toBe(0o700);
    await sink.close();
  });

  it('keeps lines whole under concurrent publishers, in this and another instance', async () => {
    const path = join(dir, 'events.jsonl');
    const a = sinkAt({ path });
    const b = sinkAt({ path });
    const all = events(400);
    const outcomes = await Promise.all(all.map((e, i) => (i % 2 === 0 ? a : b).publish([e])));
    expect(outcomes.every((o) => o.failed.length === 0)).toBe(true);
    const read = await readJsonlEvents(path);
    expect(read.tornLines).toBe(0);
    expect(read.events.map((e) => e.id).sort()).toEqual(all.map((e) => e.id).sort());
  });

  it('ends a torn last line before appending, so readers skip only the fragment', async () => {
    const path = join(dir, 'events.jsonl');
    const [e1, e2] = events(2);
    const whole = `${JSON.stringify({ id: e1!.id, ...toEnvelope(e1!) })}\n`;
    await writeFile(path, whole + whole.slice(0, 100));
    const sink = sinkAt({ path });
    expect((await sink.publish([e2!])).published).toEqual([e2!.id]);
    const read = await readJsonlEvents(path);
    expect(read.tornLines).toBe(1);
    expect(read.events.map((e) => e.id)).toEqual([e1!.id, e2!.id]);
  });

  it('ends a line another writer tore after our own last append', async () => {
    const path = join(dir, 'events.jsonl');
    const [e1, e2, e3] = events(3);
    const sink = sinkAt({ path });
    expect((await sink.publish([e1!])).published).toEqual([e1!.id]);
    // Another process, killed in the middle of its write, leaves part of a line.
    await appendFile(path, `${JSON.stringify({ id: e3!.id, ...toEnvelope(e3!) })}`.slice(0, 50));
    expect((await sink.publish([e2!])).published).toEqual([e2!.id]);
    const read = await readJsonlEvents(path);
    expect(read.tornLines).toBe(1);
    expect(read.events.map((e) => e.id)).toEqual([e1!.id, e2!.id]);
  });

  // The port's semantics (outcomes, failures per event, the entry limit) are in
  // test/contract/events-contract.ts; here the file system's reasons.
  it('reports file-system failures per event, with their reason', async () => {
    const path = join(dir, 'events.jsonl');
    await mkdir(path);
    const sink = sinkAt({ path });
    const batch = events(2);
    const outcome = await sink.publish(batch);
    expect(outcome.published).toEqual([]);
    expect(outcome.failed.map((f) => f.id)).toEqual(batch.map((e) => e.id));
    expect(outcome.failed[0]!.reason).toMatch(/EISDIR/);

    if (existsSync('/dev/full')) {
      const full = await sinkAt({ path: '/dev/full' }).publish(batch);
      expect(full.failed.map((f) => f.reason)).toEqual([expect.stringMatching(/ENOSPC/), expect.stringMatching(/ENOSPC/)]);
    }

  });
});

describe('createLocalAdapters', () => {
  it('lays out messages, ledger and events under the output folder', async () => {
    const out = join(dir, 'out');
    const { store, ledger, events, close } = createLocalAdapters({ out });
    const key = messageKey(MAILBOX, 'a');
    await storeMessage(store, key, Buffer.from('message'));
    await ledger.record([storedEntry(MAILBOX, 'a')]);
    await ledger.acquireLease(MAILBOX, 'run', 1000, Date.now());
    await events.publish([storedEvent(MAILBOX, 'a')]);
    await close();
    expect(await namesIn(out)).toEqual(['.popdrain', MAILBOX, 'events.jsonl']);
    expect(await namesIn(join(out, '.popdrain', 'ledger'))).toEqual([`${MAILBOX}.lease.1`, `${MAILBOX}.ledger`]);
    expect(store.refFor(key)).toEqual({ type: 'file', path: join(out, key) });
    for (const folder of [out, join(out, '.popdrain'), join(out, '.popdrain', 'ledger'), join(out, MAILBOX)]) {
      expect((await stat(folder)).mode & 0o777, folder).toBe(0o700);
    }
    for (const file of [join(out, key), join(out, 'events.jsonl'), join(out, '.popdrain', 'ledger', `${MAILBOX}.ledger`)]) {
      expect((await stat(file)).mode & 0o777, file).toBe(0o600);
    }
  });
});
