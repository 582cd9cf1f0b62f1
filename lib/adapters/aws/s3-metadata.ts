/**
 * The S3 store's user metadata: the summary's small string fields plus our `sha256`, checked
 * against S3's rules (names, printable ASCII values, 2 KB in all) before anything is uploaded.
 */
import type { MessageSummary } from '../../drain/ports.js';
import { storeBug } from './s3-errors.js';

/** S3 limits user metadata (keys and values, as sent) to 2 KB per object. */
export const MAX_USER_METADATA_BYTES = 2 * 1024;
export const MESSAGE_CONTENT_TYPE = 'message/rfc822';
/** The user metadata key (x-amz-meta-sha256) that holds the hex sha256 of the object. */
export const SHA256_METADATA_KEY = 'sha256';
const METADATA_KEY = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const METADATA_VALUE = /^[\x20-\x7e]*$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** The user metadata of an object: the summary's, plus our sha256. Checked against S3's rules. */
export function userMetadata(summary: MessageSummary, where: string): Record<string, string> {
  const metadata: Record<string, string> = {};
  let bytes = 0;
  for (const [key, value] of Object.entries(summary.metadata)) {
    if (!METADATA_KEY.test(key)) throw storeBug(`metadata key ${JSON.stringify(key)} for ${where} is not a valid S3 metadata name`);
    if (key.toLowerCase() === SHA256_METADATA_KEY) throw storeBug(`metadata key "${key}" for ${where} is reserved`);
    if (!METADATA_VALUE.test(value)) throw storeBug(`metadata value of "${key}" for ${where} must be printable ASCII`);
    metadata[key.toLowerCase()] = value;
    bytes += key.length + value.length;
  }
  const sha256 = summary.sha256.toLowerCase();
  if (!SHA256_HEX.test(sha256)) throw storeBug(`sha256 for ${where} is not 64 hex digits`);
  metadata[SHA256_METADATA_KEY] = sha256;
  bytes += SHA256_METADATA_KEY.length + sha256.length;
  if (bytes > MAX_USER_METADATA_BYTES) {
    throw storeBug(`metadata for ${where} is ${bytes} bytes; S3 allows ${MAX_USER_METADATA_BYTES}`);
  }
  return metadata;
}
