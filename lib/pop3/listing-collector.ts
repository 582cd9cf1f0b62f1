/**
 * The body of a multi-line listing (CAPA, LIST, UIDL) collected into one buffer, within the
 * limit on its total size. Bytes in, a buffer out; no I/O.
 */
import { LineTooLongError } from './framer.js';

export interface ListingLimits {
  /** Largest listing in total (MAX_LISTING_BYTES). */
  maxBytes: number;
}

export class ListingCollector {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;

  constructor(private readonly limits: ListingLimits) {}

  /** Unstuffed listing bytes as the framer passes them on; throws when a limit is exceeded. */
  push(data: Buffer): void {
    this.bytes += data.length;
    if (this.bytes > this.limits.maxBytes) throw new LineTooLongError(this.limits.maxBytes);
    this.chunks.push(data);
  }

  /** The whole listing, once its terminator was read. */
  finish(): Buffer {
    const first = this.chunks[0];
    return this.chunks.length === 1 && first !== undefined ? first : Buffer.concat(this.chunks);
  }
}
