/**
 * A message the engine received whole, stored in one conditional PutObject: no spool, no stream,
 * no lib-storage `Upload` (whose per-message machinery cost more CPU than the request itself).
 * The same checks and guarantees as a writer's commit: the bytes must be those the summary
 * describes (size and sha256, hashed again here), the PUT carries `If-None-Match: *` and
 * `x-amz-checksum-sha256` (S3 rejects a body that is not the one we hashed), and a lost
 * condition is decided by HeadObject (s3-existing-object.ts).
 */
import { PutObjectCommand, type PutObjectCommandInput } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { DrainError } from '../../drain/errors.js';
import type { MessageSummary, StoredObject } from '../../drain/ports.js';
import { isConditionFailure, s3Failure, storeBug } from './s3-errors.js';
import { resolveExistingObject, s3Ref, type ExistingObjectTarget } from './s3-existing-object.js';
import { MESSAGE_CONTENT_TYPE, userMetadata } from './s3-metadata.js';

export interface WholePutTarget extends ExistingObjectTarget {
  kmsKeyId: string | undefined;
}

export async function putWholeMessage(target: WholePutTarget, chunks: readonly Buffer[], summary: MessageSummary): Promise<StoredObject> {
  const { bucket, objectKey } = target;
  const where = `s3://${bucket}/${objectKey}`;
  const hash = createHash('sha256');
  let size = 0;
  for (const chunk of chunks) {
    hash.update(chunk);
    size += chunk.length;
  }
  const sha256 = summary.sha256.toLowerCase();
  const written = hash.digest('hex');
  if (summary.size !== size || sha256 !== written) {
    throw storeBug(
      `commit of ${where}: the summary (${summary.size} bytes, sha256 ${summary.sha256}) ` +
        `does not match the bytes written (${size} bytes, sha256 ${written})`,
    );
  }
  const params: PutObjectCommandInput = {
    Bucket: bucket,
    Key: objectKey,
    Body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size),
    ContentLength: size,
    ContentType: MESSAGE_CONTENT_TYPE,
    Metadata: userMetadata(summary, where),
    IfNoneMatch: '*',
    ChecksumSHA256: Buffer.from(sha256, 'hex').toString('base64'),
  };
  if (target.kmsKeyId !== undefined) {
    params.ServerSideEncryption = 'aws:kms';
    params.SSEKMSKeyId = target.kmsKeyId;
  }
  try {
    const result = await target.client.send(new PutObjectCommand(params));
    return { ref: s3Ref(bucket, objectKey, result.VersionId), existed: false };
  } catch (error) {
    if (error instanceof DrainError) throw error;
    if (isConditionFailure(error)) return resolveExistingObject(target, sha256, error);
    throw s3Failure(`upload to ${where}`, error, bucket);
  }
}
