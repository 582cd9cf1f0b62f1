/**
 * The file store's errors and its check of a file already at a message's name: the same bytes are
 * a retry after a crash (fine), different ones a STORE_CONFLICT (the existing file is kept).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { DrainError } from '../../drain/errors.js';
import type { MessageSummary } from '../../drain/ports.js';
import { isRetryableFsError } from './durable-fs.js';
import { fsFailureText } from './fs-failure-text.js';

export function storeError(action: string, path: string, cause: unknown): DrainError {
  if (cause instanceof DrainError) return cause;
  // Node's messages name the code and the path: "ENOSPC: no space left on device, write".
  const reason = fsFailureText(cause);
  return new DrainError('STORE_FAILED', `cannot ${action} ${path}: ${reason}`, {
    phase: 'store',
    retryable: isRetryableFsError(cause),
    cause,
  });
}

/** Hex sha256 and size of a file, streamed. */
async function hashFile(path: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  const input = createReadStream(path);
  for await (const chunk of input) {
    const buf = chunk as Buffer;
    size += buf.length;
    hash.update(buf);
  }
  return { sha256: hash.digest('hex'), size };
}

/** An identical file already at `path` is fine (a retry after a crash); a different one is a conflict. */
export async function checkExisting(path: string, summary: MessageSummary): Promise<void> {
  let existing: { sha256: string; size: number };
  try {
    existing = await hashFile(path);
  } catch (error) {
    throw storeError('read existing', path, error);
  }
  if (existing.sha256 !== summary.sha256) {
    throw new DrainError(
      'STORE_CONFLICT',
      `a different message is already stored at ${path} (sha256 ${existing.sha256}, ${existing.size} bytes; ` +
        `new: sha256 ${summary.sha256}, ${summary.size} bytes); the existing file is kept`,
      { phase: 'store', retryable: false },
    );
  }
}

export function sizeMismatch(path: string, written: number, summary: MessageSummary): DrainError {
  return new DrainError('STORE_FAILED', `cannot commit ${path}: ${written} bytes were written but the summary says ${summary.size}`, {
    phase: 'store',
    retryable: false,
  });
}

