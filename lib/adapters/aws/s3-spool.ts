/**
 * The S3 store's spool: S3 wants the object's metadata (our sha256 among it) before the body, so
 * a message is kept while the engine streams it, in memory up to a limit, beyond that in a
 * private temp file (mode 0600, unlinked at once where the platform allows), and read back for
 * the upload through a check of its size and sha256.
 */
import { createHash, randomUUID, type Hash } from 'node:crypto';
import { open, rm, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline, Writable, type Readable } from 'node:stream';
import { DrainError, describeError } from '../../drain/errors.js';
import { SpoolCheck } from './s3-spool-check.js';

/** A file-spooled message is written to disk in batches of about this many bytes. */
const SPOOL_FLUSH_BYTES = 256 * 1024;
const SPOOL_FILE_MODE = 0o600;
/** Read buffer for streaming a spool file into the upload. */
const SPOOL_READ_CHUNK_BYTES = 64 * 1024;

/**
 * A Writable that keeps what it is given: in memory up to a limit, then in a temp file (0600).
 * It hashes and counts as bytes arrive, so the commit can check the engine's summary.
 */
export class Spool extends Writable {
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
  const text = describeError(error);
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

