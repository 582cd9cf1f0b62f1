/**
 * The message store on S3.
 *
 * S3 wants the object's metadata (our `sha256` among it) before the body, but the sha256 is only
 * known once the last byte went by. So a writer *spools* the message while the engine streams it:
 * in memory up to `memorySpoolBytes`, beyond that into a private temp file (mode 0600) that is
 * removed after the commit or abort. `commit()` then uploads the spool with lib-storage's
 * `Upload` (one PutObject for small messages, a multipart upload streamed from the spool file for
 * large ones: at most about `(queueSize + 2) * partSize` bytes of the message are in memory).
 *
 * Exactly once: every upload is conditional (`If-None-Match: *`, which lib-storage passes to
 * PutObject and CompleteMultipartUpload), so a retry never makes a second version. When the
 * condition fails (412, or a 409 ConditionalRequestConflict) HeadObject decides: the same
 * `x-amz-meta-sha256` means the message is already stored (`existed: true`), anything else is a
 * STORE_CONFLICT. Integrity: the summary the engine commits must match the bytes we spooled;
 * reading the spool back is hashed again and fails the upload before it completes on any
 * difference; a single PutObject carries `x-amz-checksum-sha256` and a multipart completion
 * `x-amz-mp-object-size`, so S3 itself rejects a body that is not the one we hashed.
 *
 * The parts: s3-message-writer.ts (commit, upload, an existing object decided), s3-spool.ts and
 * s3-spool-check.ts (the spool and its read-back check), s3-metadata.ts (user metadata rules),
 * s3-existing-object.ts (a lost condition decided by HeadObject), s3-errors.ts (SDK failures as
 * DrainErrors, redacted), semaphore.ts (multipart slots).
 */
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { finished } from 'node:stream/promises';
import type { S3Client } from '@aws-sdk/client-s3';
import { DrainError } from '../../drain/errors.js';
import {
  silentLogger,
  type DrainLogger,
  type MessageStore,
  type MessageSummary,
  type MessageWriter,
  type StoredObject,
  type StoreRef,
} from '../../drain/ports.js';
import { S3MessageWriter } from './s3-message-writer.js';
import { Spool } from './s3-spool.js';
import { putWholeMessage } from './s3-whole-put.js';
import { Semaphore } from './semaphore.js';

export { MAX_USER_METADATA_BYTES, MESSAGE_CONTENT_TYPE, SHA256_METADATA_KEY } from './s3-metadata.js';

export const DEFAULT_S3_PREFIX = 'messages/';
/** Messages up to this size are spooled in memory; larger ones go to a temp file. */
export const DEFAULT_MEMORY_SPOOL_BYTES = 1024 * 1024;
/** S3's smallest multipart part (except the last). */
export const MIN_PART_SIZE_BYTES = 5 * 1024 * 1024;
/** lib-storage's default part size; a message up to this size is one PutObject. */
export const DEFAULT_PART_SIZE_BYTES = MIN_PART_SIZE_BYTES;
/** Parts of one message uploaded at once (lib-storage's own default is 4). */
export const DEFAULT_QUEUE_SIZE = 2;
/** Multipart uploads (messages larger than a part) running at once, across all writers. */
export const DEFAULT_MULTIPART_CONCURRENCY = 2;
/**
 * Messages in flight to S3 at once, for the engine's `storeConcurrency` (the composition roots
 * set it: cli/aws.ts, bench/drain-worker.ts). A PUT of a small message is mostly waiting (about
 * 20 ms in a region, next to well under 1 ms of CPU), so the engine's default of 8 would cap a
 * drain of 4 KB messages near 8 / 20 ms = 400 msg/s; 64 lets it pass 1,000 msg/s (the SDK's
 * agent keeps up to 50 sockets). Memory stays bounded: messages received whole are capped by the
 * engine (32 MB in flight), streamed ones spool at most `memorySpoolBytes` each in memory, and
 * multipart uploads take `multipartConcurrency` slots.
 */
export const DEFAULT_S3_STORE_CONCURRENCY = 64;
/** S3 allows at most this many parts; the part size grows for messages that would need more. */
export const MAX_PARTS = 10_000;

export interface S3MessageStoreOptions {
  client: S3Client;
  bucket: string;
  /** Prepended to the engine's key (`<mailbox id>/<digest>.eml`). @default 'messages/' */
  prefix?: string;
  /** KMS key id or ARN: objects are written with SSE-KMS under it. @default undefined (the bucket's default encryption) */
  kmsKeyId?: string;
  /** Where spool files of large messages go. @default os.tmpdir() */
  spoolDir?: string;
  /** Messages up to this many bytes are spooled in memory. @default 1 MiB */
  memorySpoolBytes?: number;
  /** Multipart part size, at least 5 MiB; a message up to this size is one PutObject. @default 5 MiB */
  partSize?: number;
  /** Parts of one message in flight at once. @default 2 */
  queueSize?: number;
  /**
   * Multipart uploads at once across all writers of this store; further large commits wait.
   * The engine commits several messages in parallel, and each multipart upload holds about
   * `(queueSize + 2) * partSize` bytes, so this bounds the store's memory at about
   * `multipartConcurrency * (queueSize + 2) * partSize` plus the in-memory spools. @default 2
   */
  multipartConcurrency?: number;
  /** @default silence */
  logger?: DrainLogger;
}

export class S3MessageStore implements MessageStore {
  readonly client: S3Client;
  readonly bucket: string;
  readonly prefix: string;
  readonly kmsKeyId: string | undefined;
  readonly spoolDir: string;
  readonly memorySpoolBytes: number;
  readonly partSize: number;
  readonly queueSize: number;
  readonly multipartConcurrency: number;
  private readonly logger: DrainLogger;
  private readonly multipartSlots: Semaphore;

  constructor(options: S3MessageStoreOptions) {
    this.client = options.client;
    this.bucket = options.bucket;
    this.prefix = options.prefix ?? DEFAULT_S3_PREFIX;
    this.kmsKeyId = options.kmsKeyId;
    this.spoolDir = options.spoolDir ?? tmpdir();
    this.memorySpoolBytes = options.memorySpoolBytes ?? DEFAULT_MEMORY_SPOOL_BYTES;
    this.partSize = options.partSize ?? DEFAULT_PART_SIZE_BYTES;
    this.queueSize = options.queueSize ?? DEFAULT_QUEUE_SIZE;
    this.multipartConcurrency = options.multipartConcurrency ?? DEFAULT_MULTIPART_CONCURRENCY;
    this.logger = options.logger ?? silentLogger;
    const problem = optionsProblem(this);
    if (problem !== undefined) {
      throw new DrainError('CONFIG_INVALID', `S3 message store: ${problem}`, { phase: 'config', retryable: false });
    }
    this.multipartSlots = new Semaphore(this.multipartConcurrency);
  }

  async open(key: string, info: { mailboxId: string; uidl: string; expectedSize?: number }): Promise<MessageWriter> {
    const objectKey = this.prefix + key;
    const toFile = info.expectedSize !== undefined && info.expectedSize > this.memorySpoolBytes;
    const spool = new Spool(this.spoolDir, this.memorySpoolBytes, toFile, `s3://${this.bucket}/${objectKey}`);
    return new S3MessageWriter(this, objectKey, info.mailboxId, spool);
  }

  /**
   * A message the engine holds whole: one conditional PutObject (s3-whole-put.ts). One larger
   * than the in-memory spool limit goes through a writer, as a streamed one would.
   */
  async put(key: string, info: { mailboxId: string; uidl: string }, chunks: readonly Buffer[], summary: MessageSummary): Promise<StoredObject> {
    let size = 0;
    for (const chunk of chunks) size += chunk.length;
    if (size > this.memorySpoolBytes || size > this.partSizeFor(size)) {
      const writer = await this.open(key, { ...info, expectedSize: size });
      try {
        for (const chunk of chunks) if (!writer.stream.write(chunk)) await once(writer.stream, 'drain');
        writer.stream.end();
        await finished(writer.stream);
      } catch (error) {
        await writer.abort();
        throw error;
      }
      return writer.commit(summary);
    }
    const objectKey = this.prefix + key;
    return putWholeMessage({ client: this.client, bucket: this.bucket, objectKey, mailboxId: info.mailboxId, logger: this.logger, kmsKeyId: this.kmsKeyId }, chunks, summary);
  }

  refFor(key: string): StoreRef {
    return { type: 's3', bucket: this.bucket, key: this.prefix + key };
  }

  /** @internal The part size for a message of `size` bytes (grown so it needs at most MAX_PARTS). */
  partSizeFor(size: number): number {
    return Math.max(this.partSize, Math.ceil(size / MAX_PARTS));
  }

  /** @internal Runs a multipart upload when one of the store's slots is free. */
  async withMultipartSlot<T>(run: () => Promise<T>): Promise<T> {
    await this.multipartSlots.acquire();
    try {
      return await run();
    } finally {
      this.multipartSlots.release();
    }
  }

  /** @internal */
  log(): DrainLogger {
    return this.logger;
  }
}


function optionsProblem(store: S3MessageStore): string | undefined {
  if (store.bucket === '') return 'bucket must not be empty';
  if (store.prefix.startsWith('/')) return `prefix must not start with "/" (got ${JSON.stringify(store.prefix)})`;
  if (!Number.isSafeInteger(store.memorySpoolBytes) || store.memorySpoolBytes < 0) return 'memorySpoolBytes must be a whole number >= 0';
  if (!Number.isSafeInteger(store.partSize) || store.partSize < MIN_PART_SIZE_BYTES) {
    return `partSize must be a whole number >= ${MIN_PART_SIZE_BYTES} (5 MiB, S3's minimum part size)`;
  }
  if (!Number.isSafeInteger(store.queueSize) || store.queueSize < 1) return 'queueSize must be a whole number >= 1';
  if (!Number.isSafeInteger(store.multipartConcurrency) || store.multipartConcurrency < 1) {
    return 'multipartConcurrency must be a whole number >= 1';
  }
  return undefined;
}
