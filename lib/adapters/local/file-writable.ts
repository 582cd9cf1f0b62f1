import type { FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { writevFully } from './durable-fs.js';

/**
 * Stream buffer of a message written to its temp file: while one batch is being written, the
 * next may gather this much before the writer is asked to wait (the socket then pauses).
 */
const FILE_STREAM_HIGH_WATER_MARK = 1024 * 1024;
/**
 * Bytes gathered before one write to the temp file (a writev of the chunks as they came, no
 * copy). The chunks arrive in pieces of at most 16 KB (a TLS record): writing each at once
 * cost a thread-pool round trip per piece (~1,550 writes for 50 MB, ~30 KB each).
 */
export const FILE_WRITE_BATCH_BYTES = 1024 * 1024;
/** At most this many chunks in one writev (under every platform's IOV_MAX). */
const FILE_WRITE_BATCH_CHUNKS = 512;

/**
 * The stream a message is written into: held in memory while it stays within the spool limit,
 * else appended to the temp file (opened on first need, left open: commit fsyncs and closes it)
 * in batches of FILE_WRITE_BATCH_BYTES (one written while the next gathers), the last one when
 * the stream ends.
 */
export class FileWritable extends Writable {
  /** Bytes in the temp file. */
  bytesWritten = 0;
  /** Chunks not in the file yet: the message held in memory, or the batch being gathered. */
  private held: Buffer[] = [];
  private heldBytes = 0;
  /** The message went past the memory limit: its bytes go to the temp file. */
  private toFile: boolean;
  /** The batches being written, in order (each waits for the one before); never rejects unseen. */
  private writing: Promise<void> = Promise.resolve();
  /** Bytes of the batches being written. */
  private writingBytes = 0;

  constructor(
    private readonly file: () => Promise<FileHandle>,
    private readonly memoryLimit: number,
  ) {
    super({ highWaterMark: FILE_STREAM_HIGH_WATER_MARK });
    this.toFile = memoryLimit === 0;
  }

  /** Bytes written into this stream so far (in memory or in the file). */
  get bytesReceived(): number {
    return this.bytesWritten + this.writingBytes + this.heldBytes;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.take([chunk], chunk.length, callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    let bytes = 0;
    const buffers = chunks.map((c) => {
      bytes += c.chunk.length;
      return c.chunk;
    });
    this.take(buffers, bytes, callback);
  }

  /** At the end, a message on its way to the file writes its last batch: the file then holds it all. */
  override _final(callback: (error?: Error | null) => void): void {
    if (this.toFile && this.held.length > 0) this.writeBatch();
    this.writing.then(() => callback(), callback);
  }

  /** What is held in memory, taken for the commit; undefined once the message went to the file. */
  takeHeldForCommit(): Buffer[] | undefined {
    return this.toFile ? undefined : this.takeHeld();
  }

  /** Write what is held in memory to the temp file (at commit, after the stream finished). */
  spill(): Promise<void> {
    if (this.held.length === 0 && this.bytesWritten > 0) return this.writing;
    this.toFile = true;
    this.writeBatch();
    return this.writing;
  }

  private take(buffers: Buffer[], bytes: number, callback: (error?: Error | null) => void): void {
    if (!this.toFile && this.heldBytes + bytes > this.memoryLimit) {
      this.toFile = true;
      // Create the temp file now (a failure shows with this chunk), though the first batch
      // is written once it is full.
      this.file().then(() => this.take(buffers, bytes, callback), callback);
      return;
    }
    for (const b of buffers) this.held.push(b);
    this.heldBytes += bytes;
    if (!this.toFile || (this.heldBytes < FILE_WRITE_BATCH_BYTES && this.held.length < FILE_WRITE_BATCH_CHUNKS)) {
      callback();
      return;
    }
    // The next batch gathers while this one is written: wait only for the one before it.
    const previous = this.writing;
    this.writeBatch();
    previous.then(() => callback(), callback);
  }

  /** Queue what is held as the next batch to write (after the batches before it). */
  private writeBatch(): void {
    const bytes = this.heldBytes;
    const batch = this.takeHeld();
    this.writingBytes += bytes;
    this.writing = this.writing.then(async () => {
      const handle = await this.file();
      const written = await writevFully(handle, batch);
      this.writingBytes -= bytes;
      this.bytesWritten += written;
    });
    // A failure is seen by the write that waits for it, or by _final / spill.
    this.writing.catch(() => undefined);
  }

  private takeHeld(): Buffer[] {
    const held = this.held;
    this.held = [];
    this.heldBytes = 0;
    return held;
  }
}
