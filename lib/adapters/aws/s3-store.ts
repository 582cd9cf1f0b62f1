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
 */
import { createHash, randomUUID, type Hash } from 'node:crypto';
import { open, rm, unlink, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline, Transform, Writable, type Readable, type TransformCallback } from 'node:stream';
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload, type Options as UploadOptions } from '@aws-sdk/lib-storage';
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
import { describeSdkError, isRetryableSdkError, sdkErrorName, sdkErrorStatus } from './sdk-error.js';

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
/** S3 allows at most this many parts; the part size grows for messages that would need more. */
export const MAX_PARTS = 10_000;
/** S3 limits user metadata (keys and values, as sent) to 2 KB per object. */
export const MAX_USER_METADATA_BYTES = 2 * 1024;
export const MESSAGE_CONTENT_TYPE = 'message/rfc822';
/** The user metadata key (x-amz-meta-sha256) that holds the hex sha256 of the object. */
export const SHA256_METADATA_KEY = 'sha256';

/** A file-spooled message is written to disk in batches of about this many bytes. */
const SPOOL_FLUSH_BYTES = 256 * 1024;
const SPOOL_FILE_MODE = 0o600;
/** Read buffer for streaming a spool file into the upload. */
const SPOOL_READ_CHUNK_BYTES = 64 * 1024;
const METADATA_KEY = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const METADATA_VALUE = /^[\x20-\x7e]*$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
/** Fields some S3 error responses echo back (SignatureDoesNotMatch, InvalidAccessKeyId). */
const SENSITIVE_ERROR_FIELDS = [
  'AWSAccessKeyId',
  'StringToSign',
  'StringToSignBytes',
  'CanonicalRequest',
  'CanonicalRequestBytes',
  'SignatureProvided',
] as const;

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

/** A counting semaphore (FIFO). */
class Semaphore {
  private readonly waiting: Array<() => void> = [];
  private free: number;

  constructor(slots: number) {
    this.free = slots;
  }

  acquire(): Promise<void> {
    if (this.free > 0) {
      this.free -= 1;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next !== undefined) next();
    else this.free += 1;
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

type WriterState = 'open' | 'committing' | 'done';

class S3MessageWriter implements MessageWriter {
  readonly stream: Writable;
  private state: WriterState = 'open';
  private upload: Upload | undefined;

  constructor(
    private readonly store: S3MessageStore,
    private readonly objectKey: string,
    private readonly mailboxId: string,
    private readonly spool: Spool,
  ) {
    this.stream = spool;
  }

  private get where(): string {
    return `s3://${this.store.bucket}/${this.objectKey}`;
  }

  private ref(versionId: string | undefined): StoreRef {
    return versionId === undefined
      ? { type: 's3', bucket: this.store.bucket, key: this.objectKey }
      : { type: 's3', bucket: this.store.bucket, key: this.objectKey, versionId };
  }

  async commit(summary: MessageSummary): Promise<StoredObject> {
    if (this.state !== 'open') {
      throw storeBug(`commit of ${this.where}: the writer was already ${this.state === 'done' ? 'committed or aborted' : 'committing'}`);
    }
    this.state = 'committing';
    try {
      this.checkSummary(summary);
      const metadata = userMetadata(summary, this.where);
      try {
        const versionId = await this.uploadSpool(summary, metadata);
        return { ref: this.ref(versionId), existed: false };
      } catch (error) {
        if (error instanceof DrainError) throw error;
        if (isConditionFailure(error)) return await this.resolveExisting(summary.sha256, error);
        throw s3Failure(`upload to ${this.where}`, error, this.store.bucket);
      }
    } finally {
      this.state = 'done';
      this.upload = undefined;
      await this.spool.discard();
    }
  }

  async abort(): Promise<void> {
    this.state = 'done';
    try {
      await this.upload?.abort();
    } catch {
      // lib-storage's abort only signals; nothing to report.
    }
    try {
      await this.spool.discard();
    } catch (error) {
      this.store.log().warn('could not remove a spool file', { mailboxId: this.mailboxId, key: this.objectKey, error: String(error) });
    }
  }

  private checkSummary(summary: MessageSummary): void {
    if (!this.spool.writableFinished || this.spool.errored !== null) {
      throw storeBug(`commit of ${this.where} before its stream finished (or after it failed)`);
    }
    const written = this.spool.result();
    if (summary.size !== written.size || summary.sha256.toLowerCase() !== written.sha256) {
      throw storeBug(
        `commit of ${this.where}: the summary (${summary.size} bytes, sha256 ${summary.sha256}) ` +
          `does not match the bytes written (${written.size} bytes, sha256 ${written.sha256})`,
      );
    }
  }

  /** Uploads the spool; resolves the new object's VersionId (when the bucket is versioned). */
  private async uploadSpool(summary: MessageSummary, metadata: Record<string, string>): Promise<string | undefined> {
    const { size } = summary;
    const sha256 = summary.sha256.toLowerCase();
    const partSize = this.store.partSizeFor(size);
    const singlePut = size <= partSize;
    const { body, failure } = this.spool.reader(sha256, this.where);
    const params: UploadOptions['params'] = {
      Bucket: this.store.bucket,
      Key: this.objectKey,
      Body: body,
      ContentLength: size,
      ContentType: MESSAGE_CONTENT_TYPE,
      Metadata: metadata,
      IfNoneMatch: '*',
      // Sent with CompleteMultipartUpload only: S3 rejects a completion of any other size.
      MpuObjectSize: size,
    };
    // Full-object SHA-256 checksums exist for single uploads only (multipart ones are per part).
    if (singlePut) params.ChecksumSHA256 = Buffer.from(sha256, 'hex').toString('base64');
    if (this.store.kmsKeyId !== undefined) {
      params.ServerSideEncryption = 'aws:kms';
      params.SSEKMSKeyId = this.store.kmsKeyId;
    }
    const run = async (): Promise<string | undefined> => {
      if (this.state !== 'committing') throw storeBug(`upload to ${this.where} aborted`);
      const upload = new Upload({ client: this.store.client, params, partSize, queueSize: this.store.queueSize, leavePartsOnError: false });
      this.upload = upload;
      return (await upload.done()).VersionId;
    };
    try {
      return singlePut ? await run() : await this.store.withMultipartSlot(run);
    } catch (error) {
      // lib-storage reports a failed AbortMultipartUpload instead of what made it abort.
      throw failure() ?? error;
    } finally {
      if (!(body instanceof Uint8Array)) body.destroy();
    }
  }

  private async resolveExisting(sha256: string, conditionError: unknown): Promise<StoredObject> {
    let head;
    try {
      head = await this.store.client.send(new HeadObjectCommand({ Bucket: this.store.bucket, Key: this.objectKey }));
    } catch (error) {
      if (sdkErrorStatus(error) === 404) {
        throw new DrainError(
          'STORE_FAILED',
          `conditional upload to ${this.where} failed (${describeSdkError(conditionError)}) but no object is there now; try again`,
          { phase: 'store', retryable: true, cause: redactSdkError(conditionError) },
        );
      }
      throw s3Failure(`HeadObject of ${this.where} (after ${sdkErrorName(conditionError)})`, error, this.store.bucket);
    }
    const existing = head.Metadata?.[SHA256_METADATA_KEY];
    if (existing !== undefined && existing.toLowerCase() === sha256.toLowerCase()) {
      this.store.log().debug('message already stored', { mailboxId: this.mailboxId, key: this.objectKey, sha256 });
      return { ref: this.ref(head.VersionId), existed: true };
    }
    throw new DrainError(
      'STORE_CONFLICT',
      `${this.where} already holds different content (sha256 ${existing ?? 'not recorded'}; this message has sha256 ${sha256})`,
      { phase: 'store', retryable: false },
    );
  }
}

function storeBug(message: string): DrainError {
  return new DrainError('STORE_FAILED', message, { phase: 'store', retryable: false });
}

/** The user metadata of an object: the summary's, plus our sha256. Checked against S3's rules. */
function userMetadata(summary: MessageSummary, where: string): Record<string, string> {
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

/** A failed conditional write: 412 PreconditionFailed, or 409 ConditionalRequestConflict. */
function isConditionFailure(error: unknown): boolean {
  const status = sdkErrorStatus(error);
  const name = sdkErrorName(error);
  return status === 412 || name === 'PreconditionFailed' || name === 'ConditionalRequestConflict';
}

/** Strips what some S3 error responses echo back about the signature and access key. */
function redactSdkError(error: unknown): unknown {
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

function s3Failure(what: string, error: unknown, bucket: string): DrainError {
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

// -------------------------------------------------------------------------------------------
// The spool

/**
 * A Writable that keeps what it is given: in memory up to a limit, then in a temp file (0600).
 * It hashes and counts as bytes arrive, so the commit can check the engine's summary.
 */
class Spool extends Writable {
  private readonly hash: Hash = createHash('sha256');
  private bytes = 0;
  private digest: string | undefined;
  private memory: Buffer[] = [];
  private toFile: boolean;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private file: FileHandle | undefined;
  /** Only set when the spool file could not be unlinked while open. */
  private path: string | undefined;
  private spooledToFile = false;
  /** The flush in progress, so a discard waits for it (and for a file it may be creating). */
  private flushing: Promise<void> | undefined;
  private discarded = false;

  constructor(
    private readonly dir: string,
    private readonly memoryLimit: number,
    toFile: boolean,
    private readonly where: string,
  ) {
    super();
    this.toFile = toFile;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    if (!this.toFile) {
      if (this.bytes <= this.memoryLimit) {
        this.memory.push(chunk);
        callback();
        return;
      }
      this.toFile = true;
      this.pending = this.memory;
      this.pendingBytes = this.bytes - chunk.length;
      this.memory = [];
    }
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes < SPOOL_FLUSH_BYTES) {
      callback();
      return;
    }
    this.runFlush().then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.digest = this.hash.digest('hex');
    if (!this.toFile) {
      callback();
      return;
    }
    // The file stays open: the upload reads it back through the same handle.
    this.runFlush().then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // After a normal finish (auto-destroy) the handle is still needed for the upload.
    if (error === null && !this.discarded) {
      callback(null);
      return;
    }
    const flushing = this.flushing ?? Promise.resolve();
    flushing
      .catch(() => undefined)
      .then(() => this.closeFile())
      .then(
        () => callback(error),
        () => callback(error),
      );
  }

  private runFlush(): Promise<void> {
    const flushing = this.flush().catch((error: unknown) => {
      throw spoolFailure(error, this.where);
    });
    this.flushing = flushing;
    return flushing.finally(() => {
      if (this.flushing === flushing) this.flushing = undefined;
    });
  }

  private async flush(): Promise<void> {
    if (this.file === undefined) {
      if (this.discarded) throw new Error('spool discarded');
      const path = join(this.dir, `popdrain-spool-${randomUUID()}.part`);
      this.file = await open(path, 'wx+', SPOOL_FILE_MODE);
      // Unlinked at once and used through the open handle: a process that is killed leaves no
      // copy of the mail on disk (the kernel frees it), however the process ends. Where the
      // platform refuses (Windows), the path is removed by discard() instead.
      try {
        await unlink(path);
      } catch {
        this.path = path;
      }
      this.spooledToFile = true;
    }
    while (this.pending.length > 0) {
      const buffers = this.pending;
      this.pending = [];
      this.pendingBytes = 0;
      await writeAll(this.file, buffers);
    }
  }

  private async closeFile(): Promise<void> {
    const file = this.file;
    this.file = undefined;
    await file?.close();
  }

  /** Size and hex sha256 of everything written (once finished). */
  result(): { size: number; sha256: string } {
    return { size: this.bytes, sha256: this.digest ?? '' };
  }

  /**
   * The spooled bytes for the upload: a Buffer, or a stream of the spool file that hashes what
   * it reads and fails (before the upload completes) if that is not what was written.
   */
  reader(sha256: string, where: string): { body: Buffer | Readable; failure(): DrainError | undefined } {
    const file = this.file;
    if (!this.toFile || !this.spooledToFile || file === undefined) {
      const body = this.memory.length === 1 ? this.memory[0]! : Buffer.concat(this.memory);
      return { body, failure: () => undefined };
    }
    const check = new SpoolCheck(this.bytes, sha256, where);
    const source = file.createReadStream({ start: 0, autoClose: false, highWaterMark: SPOOL_READ_CHUNK_BYTES });
    const body = pipeline(source, check, () => {
      // Errors reach the upload through `check`.
    });
    return { body, failure: () => check.failure };
  }

  /** Throws the spool away: stops the stream, waits for a write in progress, removes the file. */
  async discard(): Promise<void> {
    this.discarded = true;
    this.memory = [];
    this.pending = [];
    if (!this.destroyed && !this.writableFinished) this.destroy();
    await (this.flushing ?? Promise.resolve()).catch(() => undefined);
    await this.closeFile().catch(() => undefined);
    const path = this.path;
    this.path = undefined;
    if (path !== undefined) await rm(path, { force: true });
  }
}

/** Spool I/O errors that may pass (too many open files, a busy device) are worth a retry. */
const TRANSIENT_FS_CODES: ReadonlySet<string> = new Set(['EMFILE', 'ENFILE', 'EAGAIN', 'EBUSY', 'EINTR']);

function spoolFailure(error: unknown, where: string): DrainError {
  if (error instanceof DrainError) return error;
  const code = error !== null && typeof error === 'object' && 'code' in error ? String(error.code) : undefined;
  const text = error instanceof Error ? error.message : String(error);
  return new DrainError('STORE_FAILED', `spooling ${where} failed: ${text}`, {
    phase: 'store',
    retryable: code !== undefined && TRANSIENT_FS_CODES.has(code),
    cause: error,
  });
}

async function writeAll(file: FileHandle, buffers: Buffer[]): Promise<void> {
  let rest = buffers;
  while (rest.length > 0) {
    const { bytesWritten } = await file.writev(rest);
    let skip = bytesWritten;
    const next: Buffer[] = [];
    for (const b of rest) {
      if (skip >= b.length) skip -= b.length;
      else {
        next.push(skip > 0 ? b.subarray(skip) : b);
        skip = 0;
      }
    }
    rest = next;
  }
}

/** Passes the spool file through, failing at its end if it is not exactly what was written. */
class SpoolCheck extends Transform {
  /** Set when what was read is not what was written. */
  failure: DrainError | undefined;
  private readonly hash: Hash = createHash('sha256');
  private bytes = 0;

  constructor(
    private readonly expectedSize: number,
    private readonly expectedSha256: string,
    private readonly where: string,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    const sha256 = this.hash.digest('hex');
    if (this.bytes === this.expectedSize && sha256 === this.expectedSha256) {
      callback();
      return;
    }
    this.failure = new DrainError(
      'STORE_FAILED',
      `the spool file of ${this.where} changed: read ${this.bytes} bytes (sha256 ${sha256}), wrote ${this.expectedSize} (sha256 ${this.expectedSha256})`,
      { phase: 'store', retryable: true },
    );
    callback(this.failure);
  }
}
