import type { FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { writeFully } from './durable-fs.js';

/** Stream buffer of a message that is written to its temp file as it arrives. */
const FILE_STREAM_HIGH_WATER_MARK = 64 * 1024;

/**
 * The stream a message is written into: held in memory while it stays within the spool limit,
 * else appended to the temp file (opened on first need, left open: commit fsyncs and closes it).
 */
export class FileWritable extends Writable {
  /** Bytes in the temp file. */
  bytesWritten = 0;
  private held: Buffer[] = [];
  private heldBytes = 0;

  constructor(
    private readonly file: () => Promise<FileHandle>,
    private readonly memoryLimit: number,
  ) {
    super({ highWaterMark: FILE_STREAM_HIGH_WATER_MARK });
  }

  /** Bytes written into this stream so far (in memory or in the file). */
  get bytesReceived(): number {
    return this.bytesWritten + this.heldBytes;
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

  /** What is held in memory, taken for the commit; undefined once part of it went to the file. */
  takeHeldForCommit(): Buffer[] | undefined {
    return this.bytesWritten === 0 ? this.takeHeld() : undefined;
  }

  /** Write what is held in memory to the temp file (at commit, after the stream finished). */
  spill(): Promise<void> {
    if (this.held.length === 0 && this.bytesWritten > 0) return Promise.resolve();
    return this.append(this.takeHeld());
  }

  private take(buffers: Buffer[], bytes: number, callback: (error?: Error | null) => void): void {
    if (this.bytesWritten === 0 && this.heldBytes + bytes <= this.memoryLimit) {
      for (const b of buffers) this.held.push(b);
      this.heldBytes += bytes;
      callback();
      return;
    }
    const all = this.held.length === 0 ? buffers : [...this.takeHeld(), ...buffers];
    this.append(all).then(() => callback(), callback);
  }

  private takeHeld(): Buffer[] {
    const held = this.held;
    this.held = [];
    this.heldBytes = 0;
    return held;
  }

  private async append(buffers: Buffer[]): Promise<void> {
    const handle = await this.file();
    const data = buffers.length === 1 ? buffers[0]! : Buffer.concat(buffers);
    await writeFully(handle, data);
    this.bytesWritten += data.length;
  }
}
