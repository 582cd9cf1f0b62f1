/**
 * A conditional write to S3 (`If-None-Match: *`) that lost its condition: HeadObject decides.
 * The same `x-amz-meta-sha256` means the message is already stored (`existed: true`); no object
 * at all is a retryable STORE_FAILED (it was there a moment ago); anything else is a
 * STORE_CONFLICT.
 */
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { DrainError } from '../../drain/errors.js';
import type { DrainLogger, StoredObject, StoreRef } from '../../drain/ports.js';
import { redactSdkError, s3Failure } from './s3-errors.js';
import { SHA256_METADATA_KEY } from './s3-metadata.js';
import { describeSdkError, sdkErrorName, sdkErrorStatus } from './sdk-error.js';

export interface ExistingObjectTarget {
  client: S3Client;
  bucket: string;
  objectKey: string;
  mailboxId: string;
  logger: DrainLogger;
}

/** The store reference of an object, with its version when the bucket is versioned. */
export function s3Ref(bucket: string, key: string, versionId: string | undefined): StoreRef {
  return versionId === undefined ? { type: 's3', bucket, key } : { type: 's3', bucket, key, versionId };
}

export async function resolveExistingObject(target: ExistingObjectTarget, sha256: string, conditionError: unknown): Promise<StoredObject> {
  const { client, bucket, objectKey } = target;
  const where = `s3://${bucket}/${objectKey}`;
  let head;
  try {
    head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: objectKey }));
  } catch (error) {
    if (sdkErrorStatus(error) === 404) {
      throw new DrainError(
        'STORE_FAILED',
        `conditional upload to ${where} failed (${describeSdkError(conditionError)}) but no object is there now; try again`,
        { phase: 'store', retryable: true, cause: redactSdkError(conditionError) },
      );
    }
    throw s3Failure(`HeadObject of ${where} (after ${sdkErrorName(conditionError)})`, error, bucket);
  }
  const existing = head.Metadata?.[SHA256_METADATA_KEY];
  if (existing !== undefined && existing.toLowerCase() === sha256.toLowerCase()) {
    target.logger.debug('message already stored', { mailboxId: target.mailboxId, key: objectKey, sha256 });
    return { ref: s3Ref(bucket, objectKey, head.VersionId), existed: true };
  }
  throw new DrainError(
    'STORE_CONFLICT',
    `${where} already holds different content (sha256 ${existing ?? 'not recorded'}; this message has sha256 ${sha256})`,
    { phase: 'store', retryable: false },
  );
}
