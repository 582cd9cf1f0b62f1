/**
 * S3MessageStore against s3rver (real S3Client) for what s3rver can show: exact bytes, metadata,
 * content type, multipart from the spool file in little memory, spool hygiene, NoSuchBucket.
 * What s3rver cannot show (it ignores If-None-Match) runs against a scripted loopback endpoint
 * in aws-s3-store-scripted.test.ts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { open, readdir, stat } from 'node:fs/promises';
import v8 from 'node:v8';
import vm from 'node:vm';
import { HeadObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3MessageStore, type S3MessageStoreOptions } from '../../lib/adapters/aws/s3-store.js';
import { messageKey } from '../../lib/drain/keys.js';
import { startS3rver, type S3Standin } from '../../testkit/aws/standins.js';
import { drainErrorOf as caught } from '../support/drain-error.js';
import { BUCKET, ENGINE_METADATA, MAILBOX, MiB, openSpools, recordCommands, spoolDir, storedSha256, useSpoolDirPerTest, WRITE_CHUNK_BYTES, writeMessage } from '../support/s3-store-harness.js';

const GC_SAMPLE_INTERVAL_MS = 100;

v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;

useSpoolDirPerTest();

describe('S3MessageStore on s3rver', () => {
  let s3: S3Standin;
  let client: S3Client;

  beforeAll(async () => {
    s3 = await startS3rver();
    await s3.createBucket(BUCKET);
    client = s3.client();
  });

  afterAll(async () => {
    await s3?.stop();
  });

  const makeStore = (options: Partial<S3MessageStoreOptions> = {}): S3MessageStore =>
    new S3MessageStore({ client, bucket: BUCKET, spoolDir, ...options });

  it.each([
    ['0 B', 0],
    ['4 KB', 4 * 1024],
    ['3 MB', 3 * MiB],
  ])('stores a %s message byte for byte, with its metadata and content type', async (_label, size) => {
    const store = makeStore();
    const key = messageKey(MAILBOX, `uidl-${size}`);
    const writer = await store.open(key, { mailboxId: MAILBOX, uidl: `uidl-${size}`, expectedSize: size });
    const written = await writeMessage(writer, size);
    const stored = await writer.commit({ ...written, metadata: ENGINE_METADATA });

    expect(stored).toEqual({ ref: { type: 's3', bucket: BUCKET, key: `messages/${key}` }, existed: false });
    expect(store.refFor(key)).toEqual({ type: 's3', bucket: BUCKET, key: `messages/${key}` });
    expect(await storedSha256(client, `messages/${key}`)).toEqual(written);
    const head = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `messages/${key}` }));
    expect(head.ContentType).toBe('message/rfc822');
    expect(head.ContentLength).toBe(size);
    expect(head.Metadata).toEqual({ sha256: written.sha256, ...ENGINE_METADATA });
    expect(await readdir(spoolDir)).toEqual([]);
    expect(await openSpools()).toEqual([]);
  });

  it('uploads a 30 MB message in parts streamed from a 0600 spool file, with little memory', async () => {
    const recordingClient = s3.client();
    const commands = recordCommands(recordingClient);
    // One part in flight (the store's memory is about (queueSize + 2) parts of 5 MiB).
    const store = new S3MessageStore({ client: recordingClient, bucket: BUCKET, spoolDir, queueSize: 1 });
    const size = 30 * 1000 * 1000;
    const key = messageKey(MAILBOX, 'big');
    const writer = await store.open(key, { mailboxId: MAILBOX, uidl: 'big', expectedSize: size });
    const written = await writeMessage(writer, size);

    // The spool is unlinked as soon as it is opened: nothing is visible, one open file is.
    expect(await readdir(spoolDir)).toEqual([]);
    const spoolFiles = await openSpools();
    expect(spoolFiles).toHaveLength(1);
    const spoolStat = await stat(spoolFiles[0]!);
    expect(spoolStat.size).toBe(size);
    expect(spoolStat.mode & 0o777).toBe(0o600);

    // Live Buffer memory, sampled after forced collections while the commit runs: garbage
    // Buffers linger until V8's external-memory heuristics collect them, so RSS alone would
    // mostly measure those heuristics. lib-storage briefly holds a few parts at once (a spike
    // now and then), so the typical (median) sample is the one compared with the message size.
    collectGarbage();
    const before = process.memoryUsage();
    const liveGrowth: number[] = [];
    let peakRss = before.rss;
    const sample = (): void => {
      peakRss = Math.max(peakRss, process.memoryUsage.rss());
      collectGarbage();
      liveGrowth.push((process.memoryUsage().arrayBuffers - before.arrayBuffers) / MiB);
    };
    const sampler = setInterval(sample, GC_SAMPLE_INTERVAL_MS);
    let stored;
    try {
      stored = await writer.commit({ ...written, metadata: ENGINE_METADATA });
    } finally {
      clearInterval(sampler);
    }
    expect(liveGrowth.length).toBeGreaterThanOrEqual(3);
    const sorted = [...liveGrowth].sort((x, y) => x - y);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    // Holding the 28.6 MiB message would keep every sample above 28.6 MiB; streaming from the
    // spool holds one part in flight plus the part being cut (about 3 x 5 MiB).
    expect(median).toBeLessThan(20);
    expect(Math.max(...liveGrowth)).toBeLessThan(40);
    expect((peakRss - before.rss) / MiB).toBeLessThan(48);

    expect(stored.existed).toBe(false);
    const names = commands.map((c) => c.command);
    expect(names.filter((n) => n === 'UploadPartCommand')).toHaveLength(6);
    expect(names[0]).toBe('CreateMultipartUploadCommand');
    expect(names.at(-1)).toBe('CompleteMultipartUploadCommand');
    const complete = commands.at(-1)!;
    expect(complete.headers['if-none-match']).toBe('*');
    expect(complete.headers['x-amz-mp-object-size']).toBe(String(size));
    expect(await storedSha256(client, `messages/${key}`)).toEqual(written);
    const head = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `messages/${key}` }));
    expect(head.ContentType).toBe('message/rfc822');
    expect(head.Metadata?.['sha256']).toBe(written.sha256);
    expect(await readdir(spoolDir)).toEqual([]);
    expect(await openSpools()).toEqual([]);
  });

  it('sends every commit as a conditional put; s3rver ignores the condition, so a second commit overwrites the one key', async () => {
    const recordingClient = s3.client();
    const commands = recordCommands(recordingClient);
    const store = new S3MessageStore({ client: recordingClient, bucket: BUCKET, spoolDir, prefix: 'twice/' });
    const key = messageKey(MAILBOX, 'twice');
    const bytes = randomBytes(1000);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    for (let i = 0; i < 2; i++) {
      const writer = await store.open(key, { mailboxId: MAILBOX, uidl: 'twice' });
      writer.stream.end(bytes);
      await new Promise((resolve) => writer.stream.once('finish', resolve));
      // Real S3 answers the second one 412, which becomes existed: true (see the scripted tests).
      const stored = await writer.commit({ sha256, size: bytes.length, metadata: {} });
      expect(stored.ref).toEqual({ type: 's3', bucket: BUCKET, key: `twice/${key}` });
    }
    const puts = commands.filter((c) => c.command === 'PutObjectCommand');
    expect(puts).toHaveLength(2);
    for (const put of puts) expect(put.headers['if-none-match']).toBe('*');
    const listed = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'twice/' }));
    expect(listed.Contents?.map((c) => c.Key)).toEqual([`twice/${key}`]);
    expect(await storedSha256(client, `twice/${key}`)).toEqual({ sha256, size: bytes.length });
  });

  it('spools small messages in memory and large ones (by size or expected size) on disk', async () => {
    const store = makeStore({ memorySpoolBytes: 1000 });
    const small = await store.open('a', { mailboxId: MAILBOX, uidl: 'a' });
    await writeMessage(small, 1000);
    expect(await readdir(spoolDir)).toEqual([]);
    expect(await openSpools()).toEqual([]);
    const grown = await store.open('b', { mailboxId: MAILBOX, uidl: 'b' });
    await writeMessage(grown, 1001);
    expect(await readdir(spoolDir)).toEqual([]);
    expect(await openSpools()).toHaveLength(1);
    const announced = await store.open('c', { mailboxId: MAILBOX, uidl: 'c', expectedSize: 5000 });
    await writeMessage(announced, 10);
    expect(await readdir(spoolDir)).toEqual([]);
    expect(await openSpools()).toHaveLength(2);
    await Promise.all([small.abort(), grown.abort(), announced.abort()]);
    expect(await readdir(spoolDir)).toEqual([]);
    expect(await openSpools()).toEqual([]);
  });

  it('abort removes the spool file, mid-stream or after the end, and never throws', async () => {
    const store = makeStore();
    const finished = await store.open('x', { mailboxId: MAILBOX, uidl: 'x' });
    await writeMessage(finished, 2 * MiB);
    expect(await readdir(spoolDir)).toEqual([]);
    expect(await openSpools()).toHaveLength(1);
    await finished.abort();
    await finished.abort();
    expect(await readdir(spoolDir)).toEqual([]);
    expect(await openSpools()).toEqual([]);
    await expect(finished.commit({ sha256: '0'.repeat(64), size: 0, metadata: {} })).rejects.toMatchObject({ code: 'STORE_FAILED' });

    const midway = await store.open('y', { mailboxId: MAILBOX, uidl: 'y', expectedSize: 10 * MiB });
    for (let i = 0; i < 8; i++) midway.stream.write(randomBytes(WRITE_CHUNK_BYTES));
    await new Promise((resolve) => setImmediate(resolve));
    await midway.abort();
    expect(midway.stream.destroyed).toBe(true);
    expect(await readdir(spoolDir)).toEqual([]);
    expect(await openSpools()).toEqual([]);

    const committed = await store.open(messageKey(MAILBOX, 'z'), { mailboxId: MAILBOX, uidl: 'z' });
    const written = await writeMessage(committed, 100);
    await committed.commit({ ...written, metadata: {} });
    await committed.abort();
    expect(await readdir(spoolDir)).toEqual([]);
    expect(await openSpools()).toEqual([]);
  });

  it('refuses a commit whose summary does not match the bytes written, or before the stream finished', async () => {
    const store = makeStore();
    const writer = await store.open('m', { mailboxId: MAILBOX, uidl: 'm' });
    const written = await writeMessage(writer, 2 * MiB);
    const error = await caught(writer.commit({ sha256: written.sha256, size: written.size - 1, metadata: {} }));
    expect(error).toMatchObject({ code: 'STORE_FAILED', phase: 'store', retryable: false });
    expect(error.message).toContain('does not match the bytes written');
    expect(await readdir(spoolDir)).toEqual([]);
    expect(await openSpools()).toEqual([]);

    const early = await store.open('n', { mailboxId: MAILBOX, uidl: 'n' });
    early.stream.write(Buffer.from('partial'));
    const earlyError = await caught(early.commit({ sha256: written.sha256, size: 7, metadata: {} }));
    expect(earlyError.message).toContain('before its stream finished');
    await early.abort();
  });

  it('fails the upload, before anything is stored, when the spool file changed after it was written', async () => {
    const store = makeStore({ prefix: 'tampered/' });
    for (const size of [2 * MiB, 6 * MiB]) {
      const key = messageKey(MAILBOX, `tampered-${size}`);
      const writer = await store.open(key, { mailboxId: MAILBOX, uidl: 'tampered', expectedSize: size });
      const written = await writeMessage(writer, size);
      const [spoolFile] = await openSpools();
      const handle = await open(spoolFile!, 'r+');
      await handle.write(Buffer.from([0x00, 0xff, 0x00]), 0, 3, 1_000_000);
      await handle.close();
      const error = await caught(writer.commit({ ...written, metadata: {} }));
      expect(error).toMatchObject({ code: 'STORE_FAILED', phase: 'store' });
      expect(error.message).toContain('spool file');
      await expect(client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `tampered/${key}` }))).rejects.toMatchObject({
        name: 'NotFound',
      });
      expect(await readdir(spoolDir)).toEqual([]);
      expect(await openSpools()).toEqual([]);
    }
  });

  it('rejects metadata S3 would refuse or that would override the sha256', async () => {
    const store = makeStore();
    const invalid: Array<Record<string, string>> = [{ sha256: 'x' }, { subject: 'caf\u00e9' }, { 'bad key': 'v' }, { big: 'x'.repeat(3000) }];
    for (const metadata of invalid) {
      const writer = await store.open('meta', { mailboxId: MAILBOX, uidl: 'meta' });
      const written = await writeMessage(writer, 10);
      const error = await caught(writer.commit({ ...written, metadata }));
      expect(error).toMatchObject({ code: 'STORE_FAILED', retryable: false });
    }
  });

  it('maps NoSuchBucket to STORE_FAILED, not retryable, naming bucket and key', async () => {
    const store = new S3MessageStore({ client, bucket: 'no-such-bucket', spoolDir });
    const key = messageKey(MAILBOX, 'lost');
    const writer = await store.open(key, { mailboxId: MAILBOX, uidl: 'lost' });
    const written = await writeMessage(writer, 100);
    const error = await caught(writer.commit({ ...written, metadata: {} }));
    expect(error).toMatchObject({ code: 'STORE_FAILED', phase: 'store', retryable: false });
    expect(error.message).toContain('bucket no-such-bucket does not exist');
    expect(error.message).toContain(`s3://no-such-bucket/messages/${key}`);
    expect(error.message).not.toContain('S3RVER');
    expect(await readdir(spoolDir)).toEqual([]);
    expect(await openSpools()).toEqual([]);
  });

  it('rejects invalid options', () => {
    expect(() => new S3MessageStore({ client, bucket: BUCKET, partSize: 1024 })).toThrow(/partSize/);
    expect(() => new S3MessageStore({ client, bucket: '' })).toThrow(/bucket/);
    expect(() => new S3MessageStore({ client, bucket: BUCKET, queueSize: 0 })).toThrow(/queueSize/);
  });
});
