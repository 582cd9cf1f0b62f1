/**
 * The bench's S3 endpoint at latency (testkit/aws/s3-latency-endpoint.ts), driven by the real
 * S3Client and lib-storage's Upload: byte-exact round trips (plain and aws-chunked bodies),
 * `If-None-Match: *` answered with 412, multipart uploads, listings, and the delay.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_S3_LATENCY_MS, startS3LatencyEndpoint, type S3LatencyEndpoint } from '../../testkit/aws/s3-latency-endpoint.js';

const BUCKET = 'latency-test';
let endpoint: S3LatencyEndpoint;
const clients: S3Client[] = [];

function client(overrides: Partial<S3ClientConfig> = {}): S3Client {
  const c = new S3Client({
    region: 'us-east-1',
    endpoint: endpoint.url,
    forcePathStyle: true,
    credentials: { accessKeyId: 'AKIDLATENCYFAKE', secretAccessKey: 'latency-fake-secret' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    ...overrides,
  });
  clients.push(c);
  return c;
}

async function getBytes(s3: S3Client, key: string): Promise<Buffer> {
  const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return Buffer.from(await got.Body!.transformToByteArray());
}

async function failure(p: Promise<unknown>): Promise<{ name: string; status: number | undefined }> {
  try {
    await p;
  } catch (error) {
    const e = error as { name: string; $metadata?: { httpStatusCode?: number } };
    return { name: e.name, status: e.$metadata?.httpStatusCode };
  }
  throw new Error('expected the call to fail');
}

beforeAll(async () => {
  endpoint = await startS3LatencyEndpoint({ buckets: [BUCKET] });
});
beforeEach(() => {
  endpoint.delayMs = 0;
});
afterAll(async () => {
  for (const c of clients) c.destroy();
  await endpoint?.close();
});

describe('S3 endpoint at latency', () => {
  it('defaults to 20 ms and applies the delay to every answer, concurrently', async () => {
    const fresh = await startS3LatencyEndpoint();
    try {
      expect(fresh.delayMs).toBe(DEFAULT_S3_LATENCY_MS);
      expect(DEFAULT_S3_LATENCY_MS).toBe(20);
    } finally {
      await fresh.close();
    }
    const s3 = client();
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'delay/one', Body: 'x' }));
    endpoint.delayMs = 150;
    const t0 = performance.now();
    await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'delay/one' }));
    expect(performance.now() - t0).toBeGreaterThanOrEqual(145);
    // Eight requests at once take about one delay, not eight: the delay is latency, not a queue.
    const t1 = performance.now();
    await Promise.all(Array.from({ length: 8 }, () => s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'delay/one' }))));
    const elapsed = performance.now() - t1;
    expect(elapsed).toBeGreaterThanOrEqual(145);
    expect(elapsed).toBeLessThan(8 * 150);
  });

  it('keeps bytes, metadata and content type exactly (PutObject, GetObject, HeadObject, DeleteObject)', async () => {
    const s3 = client();
    const body = randomBytes(100_000);
    await s3.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: 'plain/m1.eml', Body: body, ContentType: 'message/rfc822', Metadata: { sha256: 'abc', uidl: 'U1' } }),
    );
    expect((await getBytes(s3, 'plain/m1.eml')).equals(body)).toBe(true);
    const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'plain/m1.eml' }));
    expect(head.ContentLength).toBe(body.length);
    expect(head.ContentType).toBe('message/rfc822');
    expect(head.Metadata).toEqual({ sha256: 'abc', uidl: 'U1' });
    await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'plain/m1.eml' }));
    expect(await failure(s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'plain/m1.eml' })))).toMatchObject({ status: 404 });
    expect(await failure(s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'plain/m1.eml' })))).toEqual({ name: 'NoSuchKey', status: 404 });
  });

  it('decodes aws-chunked bodies (the SDK default checksums on a streamed body)', async () => {
    const s3 = client({ requestChecksumCalculation: 'WHEN_SUPPORTED', responseChecksumValidation: 'WHEN_SUPPORTED' });
    const body = randomBytes(300_000);
    const before = endpoint.counts['aws-chunked'] ?? 0;
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'chunked/m.eml', Body: Readable.from([body.subarray(0, 70_000), body.subarray(70_000)]), ContentLength: body.length }));
    expect(endpoint.counts['aws-chunked']).toBe(before + 1);
    expect(endpoint.object(BUCKET, 'chunked/m.eml')!.body.equals(body)).toBe(true);
    expect((await getBytes(s3, 'chunked/m.eml')).equals(body)).toBe(true);
  });

  it('checks x-amz-checksum-sha256 against the body, as S3 does (400 BadDigest)', async () => {
    const s3 = client();
    const body = randomBytes(4096);
    const digest = (b: Buffer): string => createHash('sha256').update(b).digest('base64');
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'sum/right', Body: body, ChecksumSHA256: digest(body) }));
    expect(await getBytes(s3, 'sum/right')).toEqual(body);
    const other = Buffer.from(body);
    other[0] = other[0]! ^ 1;
    expect(await failure(s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'sum/wrong', Body: body, ChecksumSHA256: digest(other) })))).toEqual({
      name: 'BadDigest',
      status: 400,
    });
    expect(endpoint.object(BUCKET, 'sum/wrong')).toBeUndefined();
  });

  it('answers If-None-Match: * with 412 PreconditionFailed when the key exists, keeping the first object', async () => {
    const s3 = client();
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'once/m.eml', Body: 'first', IfNoneMatch: '*' }));
    expect(await failure(s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'once/m.eml', Body: 'second', IfNoneMatch: '*' })))).toEqual({
      name: 'PreconditionFailed',
      status: 412,
    });
    expect((await getBytes(s3, 'once/m.eml')).toString()).toBe('first');
    // Without the condition the key is overwritten, as S3 does.
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'once/m.eml', Body: 'third' }));
    expect((await getBytes(s3, 'once/m.eml')).toString()).toBe('third');
  });

  it('takes multipart uploads from lib-storage Upload byte for byte, and refuses a second one with 412', async () => {
    const s3 = client();
    const body = randomBytes(10 * 1024 * 1024 + 17);
    const before = { ...endpoint.counts };
    const params = { Bucket: BUCKET, Key: 'multi/big.eml', Body: body, IfNoneMatch: '*', MpuObjectSize: body.length, Metadata: { sha256: 'big' } };
    await new Upload({ client: s3, params, partSize: 5 * 1024 * 1024, queueSize: 2 }).done();
    const delta = (op: string): number => (endpoint.counts[op] ?? 0) - (before[op] ?? 0);
    expect([delta('CreateMultipartUpload'), delta('UploadPart'), delta('CompleteMultipartUpload')]).toEqual([1, 3, 1]);
    expect((await getBytes(s3, 'multi/big.eml')).equals(body)).toBe(true);
    expect(endpoint.object(BUCKET, 'multi/big.eml')!.etag).toMatch(/^"[0-9a-f]{32}-3"$/);
    expect(endpoint.object(BUCKET, 'multi/big.eml')!.metadata).toEqual({ sha256: 'big' });

    const again = new Upload({ client: s3, params: { ...params, Body: randomBytes(body.length) }, partSize: 5 * 1024 * 1024, queueSize: 2 });
    const refused = await failure(again.done());
    expect(refused.status).toBe(412);
    expect(delta('AbortMultipartUpload')).toBe(1);
    expect((await getBytes(s3, 'multi/big.eml')).equals(body)).toBe(true);
  });

  it('refuses a completion whose x-amz-mp-object-size is wrong', async () => {
    const s3 = client();
    const body = randomBytes(5 * 1024 * 1024 + 1);
    const upload = new Upload({ client: s3, params: { Bucket: BUCKET, Key: 'multi/size.eml', Body: body, MpuObjectSize: body.length + 1 }, partSize: 5 * 1024 * 1024 });
    expect((await failure(upload.done())).status).toBe(400);
    expect(endpoint.object(BUCKET, 'multi/size.eml')).toBeUndefined();
  });

  it('lists keys in pages with ListObjectsV2 and ListObjects', async () => {
    const s3 = client();
    const keys = ['list/a', 'list/b', 'list/c', 'list/d', 'list/e'];
    await Promise.all(keys.map((Key) => s3.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: Key }))));
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'other/x', Body: 'x' }));
    const v2: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'list/', MaxKeys: 2, ContinuationToken: token }));
      v2.push(...(page.Contents ?? []).map((c) => c.Key!));
      expect(page.KeyCount).toBe(page.Contents?.length ?? 0);
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
      pages++;
    } while (token !== undefined);
    expect(v2).toEqual(keys);
    expect(pages).toBe(3);
    const v1: string[] = [];
    let marker: string | undefined;
    for (;;) {
      const page = await s3.send(new ListObjectsCommand({ Bucket: BUCKET, Prefix: 'list/', MaxKeys: 2, Marker: marker }));
      v1.push(...(page.Contents ?? []).map((c) => c.Key!));
      if (page.IsTruncated !== true) break;
      marker = page.Contents!.at(-1)!.Key;
    }
    expect(v1).toEqual(keys);
    expect(endpoint.deletePrefix(BUCKET, 'list/')).toBe(5);
    expect(endpoint.keys(BUCKET, 'list/')).toEqual([]);
  });

  it('answers NoSuchBucket for a bucket that was never made', async () => {
    const s3 = client();
    expect(await failure(s3.send(new PutObjectCommand({ Bucket: 'nope', Key: 'k', Body: 'x' })))).toEqual({ name: 'NoSuchBucket', status: 404 });
  });
});
