/**
 * S3MessageStore against a scripted loopback S3 endpoint, for what s3rver cannot show (it ignores
 * If-None-Match): 412/409 → HeadObject → existed or STORE_CONFLICT, 5xx and 403 mapping, SSE-KMS
 * and checksum headers, redaction of echoed credentials.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { S3MessageStore } from '../../lib/adapters/aws/s3-store.js';
import { messageKey } from '../../lib/drain/keys.js';
import { s3ErrorReply, startS3ScriptedEndpoint, type S3ScriptedEndpoint } from '../../testkit/aws/s3-scripted-endpoint.js';
import { drainErrorOf as caught } from '../support/drain-error.js';
import { BUCKET, ENGINE_METADATA, MAILBOX, MiB, openSpools, spoolDir, useSpoolDirPerTest, writeMessage, type Written } from '../support/s3-store-harness.js';

useSpoolDirPerTest();

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
