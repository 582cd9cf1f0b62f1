/**
 * The bytes of one version of a mailbox's log, for reading replayed events when they are needed
 * (lazy-event-entry.ts) instead of keeping the whole file in memory.
 *
 * A source holds a read-only descriptor of the log's inode as it was loaded. The bytes of the
 * lines a load read never change in that inode: writers only append (with O_APPEND), truncate
 * a torn tail past the last valid line, or replace the file by renaming another over it
 * (compaction, setting a corrupt log aside), which leaves the old inode readable through this
 * descriptor. So an event read later is the event replay checksummed.
 *
 * The descriptor is closed when the source is no longer reachable (no entry refers to it), or by
 * `close()`; an event read after that fails with LEDGER_FAILED.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { DrainError } from '../../drain/errors.js';

const closer = new FinalizationRegistry<{ fd: number | undefined }>((held) => {
  if (held.fd === undefined) return;
  try {
    closeSync(held.fd);
  } catch {
    // already gone
  }
  held.fd = undefined;
});

export class LogEventSource {
  /** Shared with the finalizer (which must not hold the source itself). */
  private readonly held: { fd: number | undefined };

  private constructor(
    readonly path: string,
    fd: number,
  ) {
    this.held = { fd };
    closer.register(this, this.held, this);
  }

  /** Open the log at `path` for reading (throws as `openSync` does, e.g. ENOENT). */
  static open(path: string): LogEventSource {
    return new LogEventSource(path, openSync(path, 'r'));
  }

  /** The inode the source reads (to check it is the file another descriptor has open). */
  ino(): number {
    const fd = this.held.fd;
    if (fd === undefined) throw this.failure('the source was closed', undefined);
    return fstatSync(fd).ino;
  }

  /** `length` bytes at `position`, all of them. */
  read(position: number, length: number): Buffer {
    const fd = this.held.fd;
    if (fd === undefined) throw this.failure('the source was closed', undefined);
    const out = Buffer.allocUnsafe(length);
    let filled = 0;
    try {
      while (filled < length) {
        const n = readSync(fd, out, filled, length - filled, position + filled);
        if (n === 0) break;
        filled += n;
      }
    } catch (error) {
      throw this.failure(String((error as Error).message), error);
    }
    if (filled < length) throw this.failure(`${length - filled} bytes missing at offset ${position}`, undefined);
    return out;
  }

  close(): void {
    closer.unregister(this);
    const fd = this.held.fd;
    this.held.fd = undefined;
    if (fd !== undefined) closeSync(fd);
  }

  private failure(reason: string, cause: unknown): DrainError {
    return new DrainError('LEDGER_FAILED', `cannot read an event of the ledger ${this.path}: ${reason}`, {
      phase: 'ledger',
      retryable: false,
      cause,
    });
  }
}
