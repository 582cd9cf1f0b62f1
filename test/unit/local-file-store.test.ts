// The local adapters on real files in a temp folder: the message store (FileMessageStore).
// The set-up is test/support/local-adapters-world.ts.
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { mkdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DrainError } from '../../lib/drain/errors.js';
import { messageKey } from '../../lib/drain/keys.js';
import { FileMessageStore, storeKeyProblem } from '../../lib/adapters/local/index.js';
import { drainErrorOf as rejection } from '../support/drain-error.js';
import {
  deadPid,
  dir,
  isRoot,
  MAILBOX,
  namesIn,
  sha256,
  storeMessage,
  thrown,
  useTempDirPerTest,
  writeAll,
} from '../support/local-adapters-world.js';

useTempDirPerTest();

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
