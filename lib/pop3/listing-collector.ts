/**
 * The body of a multi-line listing (CAPA, LIST, UIDL) collected into one buffer, within the
 * limits on its total size and on each of its lines. Bytes in, a buffer out; no I/O.
 */
import type { Pop3Phase } from './errors.js';
import { limitExceeded, listingTooLarge } from './limits.js';

const LF = 0x0a;

export interface ListingLimits {
  /** Largest listing in total (MAX_LISTING_BYTES). */
  maxBytes: number;
  /** Longest line, counted as the framer counts status lines: without its LF (MAX_LISTING_LINE_BYTES). */
  maxLineBytes: number;
}

export class ListingCollector {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  /** Bytes of the current line so far (since the last LF). */
  private lineBytes = 0;

  constructor(
    private readonly limits: ListingLimits,
    /** Where the listing was asked for, for the limit's error. */
    private readonly phase: Pop3Phase,
    private readonly command: string,
  ) {}

  /** Unstuffed listing bytes as the framer passes them on; throws when a limit is exceeded. */
  push(data: Buffer): void {
    this.bytes += data.length;
    if (this.bytes > this.limits.maxBytes) throw listingTooLarge(this.command, this.limits.maxBytes, this.phase);
    // Every line at most maxLineBytes: the current line (begun `lineBytes` ago, maybe in an
    // earlier chunk) must end within maxLineBytes of its start, so the last LF in that window
    // ends it and every line before it, all short enough; the next line starts after it. One
    // search per window, not per line (a UIDL listing's lines are ~30 bytes, the limit 8 KiB).
    const max = this.limits.maxLineBytes;
    let lineStart = -this.lineBytes;
    while (lineStart + max < data.length) {
      const lf = data.lastIndexOf(LF, lineStart + max);
      if (lf < Math.max(lineStart, 0)) this.checkLine(max + 1);
      lineStart = lf + 1;
    }
    const last = data.lastIndexOf(LF);
    if (last >= Math.max(lineStart, 0)) lineStart = last + 1;
    this.lineBytes = data.length - lineStart;
    this.checkLine(this.lineBytes);
    this.chunks.push(data);
  }

  /** The whole listing, once its terminator was read. */
  finish(): Buffer {
    const first = this.chunks[0];
    return this.chunks.length === 1 && first !== undefined ? first : Buffer.concat(this.chunks);
  }

  private checkLine(length: number): void {
    if (length > this.limits.maxLineBytes) {
      throw limitExceeded('a listing line', this.limits.maxLineBytes, this.phase, this.command);
    }
  }
}
