/**
 * S3MessageStore against s3rver (real S3Client) for what s3rver can show: exact bytes, metadata,
 * content type, multipart from the spool file in little memory, spool hygiene, NoSuchBucket.
 * What s3rver cannot show (it ignores If-None-Match) runs against a scripted loopback endpoint:
 * 412/409 → HeadObject → existed or STORE_CONFLICT, 5xx and 403 mapping, SSE-KMS and checksum
 * headers, redaction of echoed credentials.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, readdir, readlink, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import v8 from 'node:v8';
import vm from 'node:vm';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { S3MessageStore, type S3MessageStoreOptions } from '../../lib/adapters/aws/s3-store.js';
import { DrainError } from '../../lib/drain/errors.js';
import { messageKey } from '../../lib/drain/keys.js';
import type { MessageWriter } from '../../lib/drain/ports.js';
import { startS3rver, type S3Standin } from '../../testkit/aws/standins.js';
import { s3ErrorReply, startS3ScriptedEndpoint, type S3ScriptedEndpoint } from '../../testkit/aws/s3-scripted-endpoint.js';
import { drainErrorOf as caught } from '../support/drain-error.js';

const BUCKET = 'popdrain-messages';
const MAILBOX = 'mbx-1';
const MiB = 1024 * 1024;
const GC_SAMPLE_INTERVAL_MS = 100;

v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;
const WRITE_CHUNK_BYTES = 64 * 1024;
const ENGINE_METADATA = { 'popdrain-mailbox': MAILBOX, 'popdrain-uidl-digest': 'abc123' };

interface Written {
  sha256: string;
  size: number;
}

/** Streams `size` random bytes into the writer as the engine would, hashing them on the way. */
async function writeMessage(writer: MessageWriter, size: number): Promise<Written> {
  const hash = createHash('sha256');
  async function* chunks(): AsyncGenerator<Buffer> {
    for (let done = 0; done < size; ) {
      const chunk = randomBytes(Math.min(WRITE_CHUNK_BYTES, size - done));
      hash.update(chunk);
      done += chunk.length;
      yield chunk;
    }
  }
  await pipeline(Readable.from(chunks()), writer.stream);
  return { sha256: hash.digest('hex'), size };
}

async function storedSha256(client: S3Client, key: string): Promise<{ sha256: string; size: number }> {
  const out = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of out.Body as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { sha256: hash.digest('hex'), size };
}

/** Records each command's name and the headers of each HTTP request it sends (never bodies). */
function recordCommands(client: S3Client): Array<{ command: string; headers: Record<string, string> }> {
  const seen: Array<{ command: string; headers: Record<string, string> }> = [];
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const request = args.request as { headers?: Record<string, string> };
      seen.push({ command: String(context.commandName), headers: { ...request.headers } });
      return next(args);
    },
    { step: 'finalizeRequest', name: 'testRecordCommands' },
  );
  return seen;
}

let spoolDir: string;

/**
 * Spool files this process holds open (Linux): they are unlinked at once, so a killed process
 * leaves no mail behind; /proc/self/fd still shows them as "<path> (deleted)".
 */
async function openSpools(): Promise<string[]> {
  const found: string[] = [];
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target.startsWith(spoolDir) && target.endsWith(' (deleted)')) found.push(`/proc/self/fd/${fd}`);
  }
  return found;
}

beforeEach(async () => {
  spoolDir = await mkdtemp(join(tmpdir(), 'popdrain-spool-test-'));
});

afterEach(async () => {
  await rm(spoolDir, { recursive: true, force: true });
});

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

describe('S3MessageStore against a scripted S3 endpoint', () => {
  let endpoint: S3ScriptedEndpoint;

  beforeAll(async () => {
    endpoint = await startS3ScriptedEndpoint();
  });

  afterAll(async () => {
    await endpoint?.close();
  });

  beforeEach(() => {
    endpoint.requests.length = 0;
    endpoint.setHandler(undefined);
  });

  async function commitNew(
    store: S3MessageStore,
    size: number,
    uidl = 'u1',
  ): Promise<{ written: Written; result: Promise<import('../../lib/drain/ports.js').StoredObject> }> {
    const writer = await store.open(messageKey(MAILBOX, uidl), { mailboxId: MAILBOX, uidl });
    const written = await writeMessage(writer, size);
    return { written, result: writer.commit({ ...written, metadata: ENGINE_METADATA }) };
  }

  const headWith = (sha256: string | undefined, versionId = 'v-existing') =>
    ({
      status: 200,
      headers: {
        'content-length': '100',
        'content-type': 'message/rfc822',
        etag: '"existing"',
        'x-amz-version-id': versionId,
        ...(sha256 === undefined ? {} : { 'x-amz-meta-sha256': sha256 }),
      },
    }) as const;

  it('sends a conditional PutObject with SSE-KMS, metadata and the full-object sha256 checksum', async () => {
    // The production client default (checksums WHEN_SUPPORTED): our sha256 replaces the SDK's CRC32.
    const store = new S3MessageStore({ client: endpoint.client(), bucket: BUCKET, spoolDir, kmsKeyId: 'alias/popdrain' });
    endpoint.setHandler((r) => (r.operation === 'PutObject' ? { status: 200, headers: { etag: '"e"', 'x-amz-version-id': 'v-new' } } : undefined));
    const { written, result } = await commitNew(store, 3000);
    const stored = await result;
    expect(stored).toEqual({ ref: { type: 's3', bucket: BUCKET, key: `messages/${messageKey(MAILBOX, 'u1')}`, versionId: 'v-new' }, existed: false });
    const [put] = endpoint.requestsFor('PutObject');
    expect(put?.bodyBytes).toBe(3000);
    expect(put?.headers).toMatchObject({
      'if-none-match': '*',
      'content-type': 'message/rfc822',
      'x-amz-meta-sha256': written.sha256,
      'x-amz-meta-popdrain-mailbox': MAILBOX,
      'x-amz-server-side-encryption': 'aws:kms',
      'x-amz-server-side-encryption-aws-kms-key-id': 'alias/popdrain',
      'x-amz-checksum-sha256': Buffer.from(written.sha256, 'hex').toString('base64'),
    });
    expect(Object.keys(put?.headers ?? {}).filter((h) => h.startsWith('x-amz-checksum-'))).toEqual(['x-amz-checksum-sha256']);
  });

  it('412 on PutObject and the same sha256 on HeadObject: existed, with the version id', async () => {
    const store = new S3MessageStore({ client: endpoint.client(), bucket: BUCKET, spoolDir });
    let sha = '';
    endpoint.setHandler((r) => {
      if (r.operation === 'PutObject') return s3ErrorReply(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', { Condition: 'If-None-Match' });
      if (r.operation === 'HeadObject') return headWith(sha.toUpperCase());
      return undefined;
    });
    const writer = await store.open(messageKey(MAILBOX, 'u1'), { mailboxId: MAILBOX, uidl: 'u1' });
    const written = await writeMessage(writer, 100);
    sha = written.sha256;
    const stored = await writer.commit({ ...written, metadata: {} });
    expect(stored).toEqual({
      ref: { type: 's3', bucket: BUCKET, key: `messages/${messageKey(MAILBOX, 'u1')}`, versionId: 'v-existing' },
      existed: true,
    });
    expect(endpoint.requests.map((r) => r.operation)).toEqual(['PutObject', 'HeadObject']);
    expect(await readdir(spoolDir)).toEqual([]);
    expect(await openSpools()).toEqual([]);
  });

  it('412 and a different (or no) sha256: STORE_CONFLICT', async () => {
    for (const existing of ['f'.repeat(64), undefined]) {
      endpoint.setHandler((r) => {
        if (r.operation === 'PutObject') return s3ErrorReply(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
        if (r.operation === 'HeadObject') return headWith(existing);
        return undefined;
      });
      const store = new S3MessageStore({ client: endpoint.client(), bucket: BUCKET, spoolDir });
      const { result } = await commitNew(store, 100);
      const error = await caught(result);
      expect(error).toMatchObject({ code: 'STORE_CONFLICT', phase: 'store', retryable: false });
      expect(error.message).toContain(existing ?? 'not recorded');
    }
  });

  it('put: a whole message is one conditional PutObject with the checksum; a lost condition goes through HeadObject', async () => {
    const store = new S3MessageStore({ client: endpoint.client(), bucket: BUCKET, spoolDir, kmsKeyId: 'alias/popdrain' });
    const data = randomBytes(3000);
    const sha256 = createHash('sha256').update(data).digest('hex');
    const summary = { sha256, size: data.length, metadata: ENGINE_METADATA };
    const key = messageKey(MAILBOX, 'p1');
    endpoint.setHandler((r) => (r.operation === 'PutObject' ? { status: 200, headers: { etag: '"e"', 'x-amz-version-id': 'v-new' } } : undefined));
    const stored = await store.put(key, { mailboxId: MAILBOX, uidl: 'p1' }, [data.subarray(0, 7), data.subarray(7)], summary);
    expect(stored).toEqual({ ref: { type: 's3', bucket: BUCKET, key: `messages/${key}`, versionId: 'v-new' }, existed: false });
    const [put] = endpoint.requestsFor('PutObject');
    expect(put?.bodyBytes).toBe(3000);
    expect(put?.headers).toMatchObject({
      'if-none-match': '*',
      'content-type': 'message/rfc822',
      'x-amz-meta-sha256': sha256,
      'x-amz-meta-popdrain-mailbox': MAILBOX,
      'x-amz-server-side-encryption': 'aws:kms',
      'x-amz-checksum-sha256': Buffer.from(sha256, 'hex').toString('base64'),
    });
    for (const [existing, outcome] of [[sha256.toUpperCase(), 'existed'], ['f'.repeat(64), 'conflict']] as const) {
      endpoint.requests.length = 0;
      endpoint.setHandler((r) => {
        if (r.operation === 'PutObject') return s3ErrorReply(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
        if (r.operation === 'HeadObject') return headWith(existing);
        return undefined;
      });
      const result = store.put(key, { mailboxId: MAILBOX, uidl: 'p1' }, [data], summary);
      if (outcome === 'existed') expect(await result).toEqual({ ref: { type: 's3', bucket: BUCKET, key: `messages/${key}`, versionId: 'v-existing' }, existed: true });
      else expect(await caught(result)).toMatchObject({ code: 'STORE_CONFLICT', phase: 'store', retryable: false });
      expect(endpoint.requests.map((r) => r.operation)).toEqual(['PutObject', 'HeadObject']);
    }
    // Bytes that are not the ones the summary describes are never sent.
    endpoint.requests.length = 0;
    const wrong = await caught(store.put(key, { mailboxId: MAILBOX, uidl: 'p1' }, [data], { ...summary, sha256: 'e'.repeat(64) }));
    expect(wrong).toMatchObject({ code: 'STORE_FAILED', retryable: false });
    expect(endpoint.requests).toEqual([]);
  });

  it('409 ConditionalRequestConflict resolves through HeadObject too; a vanished object is retryable', async () => {
    const store = new S3MessageStore({ client: endpoint.client(), bucket: BUCKET, spoolDir });
    let sha = '';
    endpoint.setHandler((r) => {
      if (r.operation === 'PutObject') return s3ErrorReply(409, 'ConditionalRequestConflict', 'A conflicting conditional operation is currently in progress');
      if (r.operation === 'HeadObject') return headWith(sha);
      return undefined;
    });
    const writer = await store.open('k', { mailboxId: MAILBOX, uidl: 'k' });
    const written = await writeMessage(writer, 10);
    sha = written.sha256;
    expect((await writer.commit({ ...written, metadata: {} })).existed).toBe(true);

    endpoint.setHandler((r) => (r.operation === 'PutObject' ? s3ErrorReply(412, 'PreconditionFailed', 'pre-conditions did not hold') : undefined));
    const { result } = await commitNew(store, 10);
    const error = await caught(result);
    expect(error).toMatchObject({ code: 'STORE_FAILED', retryable: true });
    expect(error.message).toContain('no object is there now');
  });

  it('a multipart upload is conditional at completion; 412 there aborts the upload and resolves through HeadObject', async () => {
    const store = new S3MessageStore({ client: endpoint.client(), bucket: BUCKET, spoolDir, kmsKeyId: 'key-1' });
    let sha = '';
    endpoint.setHandler((r) => {
      if (r.operation === 'CompleteMultipartUpload') return s3ErrorReply(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
      if (r.operation === 'HeadObject') return headWith(sha);
      return undefined;
    });
    const size = 6 * MiB;
    const writer = await store.open(messageKey(MAILBOX, 'mp'), { mailboxId: MAILBOX, uidl: 'mp', expectedSize: size });
    const written = await writeMessage(writer, size);
    sha = written.sha256;
    const stored = await writer.commit({ ...written, metadata: ENGINE_METADATA });
    expect(stored.existed).toBe(true);
    expect(endpoint.requests.map((r) => r.operation)).toEqual([
      'CreateMultipartUpload',
      'UploadPart',
      'UploadPart',
      'CompleteMultipartUpload',
      'AbortMultipartUpload',
      'HeadObject',
    ]);
    const [create] = endpoint.requestsFor('CreateMultipartUpload');
    expect(create?.headers).toMatchObject({
      'content-type': 'message/rfc822',
      'x-amz-meta-sha256': written.sha256,
      'x-amz-server-side-encryption': 'aws:kms',
      'x-amz-server-side-encryption-aws-kms-key-id': 'key-1',
    });
    const [complete] = endpoint.requestsFor('CompleteMultipartUpload');
    expect(complete?.headers['if-none-match']).toBe('*');
    expect(complete?.headers['x-amz-mp-object-size']).toBe(String(size));
    expect(complete?.headers['x-amz-checksum-sha256']).toBeUndefined();
    expect(endpoint.requestsFor('UploadPart').map((r) => [r.query.get('partNumber'), r.bodyBytes])).toEqual(
      expect.arrayContaining([
        ['1', 5 * MiB],
        ['2', 1 * MiB],
      ]),
    );
    expect(await readdir(spoolDir)).toEqual([]);
    expect(await openSpools()).toEqual([]);
  });

  it('a 500 is STORE_FAILED and retryable, after the SDK retried it', async () => {
    const store = new S3MessageStore({ client: endpoint.client({ maxAttempts: 3 }), bucket: BUCKET, spoolDir });
    endpoint.setHandler(() => s3ErrorReply(500, 'InternalError', 'We encountered an internal error. Please try again.'));
    const { result } = await commitNew(store, 100);
    const error = await caught(result);
    expect(error).toMatchObject({ code: 'STORE_FAILED', phase: 'store', retryable: true });
    expect(error.message).toContain(`s3://${BUCKET}/messages/${messageKey(MAILBOX, 'u1')}`);
    expect(error.message).toContain('InternalError');
    expect(endpoint.requestsFor('PutObject')).toHaveLength(3);
    expect(await readdir(spoolDir)).toEqual([]);
    expect(await openSpools()).toEqual([]);
  });

  it('AccessDenied is not retryable; echoed credentials stay out of the message and the cause', async () => {
    const store = new S3MessageStore({ client: endpoint.client(), bucket: BUCKET, spoolDir });
    endpoint.setHandler(() => s3ErrorReply(403, 'AccessDenied', 'Access Denied'));
    const denied = await caught((await commitNew(store, 10)).result);
    expect(denied).toMatchObject({ code: 'STORE_FAILED', retryable: false });
    expect(denied.message).toContain('AccessDenied');
    expect(endpoint.requestsFor('PutObject')).toHaveLength(1);

    endpoint.setHandler(() =>
      s3ErrorReply(403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided.', {
        AWSAccessKeyId: 'AKIDSCRIPTEDFAKE',
        StringToSign: 'AWS4-HMAC-SHA256 secret-ish',
        SignatureProvided: 'deadbeef',
        CanonicalRequest: 'PUT /x',
      }),
    );
    const signature = await caught((await commitNew(store, 10)).result);
    expect(signature).toMatchObject({ code: 'STORE_FAILED', retryable: false });
    const everything = `${signature.message} ${JSON.stringify(signature.cause)} ${String(signature.stack)}`;
    expect(everything).toContain('SignatureDoesNotMatch');
    expect(everything).not.toContain('AKIDSCRIPTEDFAKE');
    expect(everything).not.toContain('scripted-fake-secret');
    expect(everything).not.toContain('AWS4-HMAC-SHA256 secret-ish');
  });

  it('a refused connection is retryable', async () => {
    const closed = await startS3ScriptedEndpoint();
    const client = closed.client({ maxAttempts: 1 });
    await closed.close();
    const store = new S3MessageStore({ client, bucket: BUCKET, spoolDir });
    const error = await caught((await commitNew(store, 10)).result);
    expect(error).toMatchObject({ code: 'STORE_FAILED', retryable: true });
    client.destroy();
  });
});
