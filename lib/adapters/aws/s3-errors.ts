/**
 * The S3 store's errors: a store bug (a misuse that no retry fixes), a lost upload condition
 * recognised, and an SDK or lib-storage failure as a DrainError STORE_FAILED with the signing
 * details some S3 error responses echo back removed.
 */
import { DrainError } from '../../drain/errors.js';
import { describeSdkError, isRetryableSdkError, sdkErrorName, sdkErrorStatus } from './sdk-error.js';

/** Fields some S3 error responses echo back (SignatureDoesNotMatch, InvalidAccessKeyId). */
const SENSITIVE_ERROR_FIELDS = [
  'AWSAccessKeyId',
  'StringToSign',
  'StringToSignBytes',
  'CanonicalRequest',
  'CanonicalRequestBytes',
  'SignatureProvided',
] as const;

export function storeBug(message: string): DrainError {
  return new DrainError('STORE_FAILED', message, { phase: 'store', retryable: false });
}

/** A failed conditional write: 412 PreconditionFailed, or 409 ConditionalRequestConflict. */
export function isConditionFailure(error: unknown): boolean {
  const status = sdkErrorStatus(error);
  const name = sdkErrorName(error);
  return status === 412 || name === 'PreconditionFailed' || name === 'ConditionalRequestConflict';
}

/** Strips what some S3 error responses echo back about the signature and access key. */
export function redactSdkError(error: unknown): unknown {
  if (error !== null && typeof error === 'object') {
    for (const field of SENSITIVE_ERROR_FIELDS) {
      if (field in error) delete (error as Record<string, unknown>)[field];
    }
  }
  return error;
}

function isSdkShaped(error: unknown): boolean {
  return error !== null && typeof error === 'object' && ('$metadata' in error || '$response' in error || '$fault' in error);
}

export function s3Failure(what: string, error: unknown, bucket: string): DrainError {
  let reason: string;
  if (sdkErrorName(error) === 'NoSuchBucket') {
    reason = `bucket ${bucket} does not exist (${describeSdkError(error)})`;
  } else if (error instanceof Error && !isSdkShaped(error) && !('code' in error)) {
    // lib-storage's own errors (part counts, aborts): their text is the library's, never a
    // response body, and describeSdkError would reduce them to a bare name.
    reason = `${error.name}: ${error.message.split('\n')[0] ?? ''}`;
  } else {
    reason = describeSdkError(error);
  }
  return new DrainError('STORE_FAILED', `S3 ${what} failed: ${reason}`, {
    phase: 'store',
    retryable: isRetryableSdkError(error),
    cause: redactSdkError(error),
  });
}
