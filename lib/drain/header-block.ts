/**
 * The root header block of a message, collected as its bytes stream in and kept within a byte
 * budget whatever the input: a header field that would not fit (a 5 MB Subject line, the
 * Received lines past the budget) is dropped whole, with its folded continuation lines, and
 * the fields after it are still kept while they fit. The block it returns is valid input for
 * mailsplit (the same lines in the same order, less the dropped fields), so the MIME structure
 * is parsed from the headers that were kept. It also locates the fields the caller asked for,
 * so they can be read without parsing the rest.
 *
 * Lines end at LF (CRLF or bare LF, as mailsplit reads them). The block ends at the first empty
 * line (CRLF or LF alone), or at the end of the input for a message without a body. When the
 * whole block arrives in the first chunk, as it mostly does, nothing is copied.
 */

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const TAB = 0x09;
const COLON = 0x3a;

/**
 * What one header line counts for against the budget, at least: mailsplit charges each line a
 * floor of 64 bytes (its per-line overhead) against its own header limit, and the block we
 * keep has to pass that limit too.
 */
export const HEADER_LINE_MIN_COST = 64;

const INITIAL_COPY_BYTES = 2048;

/** A field of the block: its lower-case name and its bytes, folding included. */
export interface HeaderField {
  name: string;
  start: number;
  end: number;
}

export interface HeaderBlock {
  /** The kept block, with the empty line that ended it, if one did. */
  bytes: Buffer;
  /** The fields whose names were asked for, in order. */
  fields: HeaderField[];
  /** Some field was dropped to stay within the budget. */
  truncated: boolean;
}

/** Field names to locate, prepared once: `fieldNames(['subject', ...])`. */
export interface FieldNames {
  readonly byLength: ReadonlyArray<ReadonlyArray<{ name: string; bytes: Uint8Array }> | undefined>;
  readonly longest: number;
}

/** Prepare lower-case ASCII field names for HeaderBlockReader. */
export function fieldNames(names: readonly string[]): FieldNames {
  const byLength: Array<Array<{ name: string; bytes: Uint8Array }> | undefined> = [];
  let longest = 0;
  for (const name of names) {
    (byLength[name.length] ??= []).push({ name, bytes: Buffer.from(name.toLowerCase(), 'latin1') });
    longest = Math.max(longest, name.length);
  }
  return { byLength, longest };
}

export class HeaderBlockReader {
  /** The empty line that ends the block has been seen. */
  complete = false;

  /** Where the kept bytes are: the first chunk itself while nothing forced a copy, else `owned`. */
  private base: Buffer | undefined;
  private owned = false;
  /** Bytes of whole fields kept: base[0, kept). */
  private kept = 0;
  private keptCost = 0;
  /** End of the current field's bytes: base[kept, end). */
  private end = 0;
  /** Cost of the current field's completed lines. */
  private fieldCost = 0;
  /** The current field no longer fits: its bytes are being skipped. */
  private dropping = false;
  private truncated = false;
  private atLineStart = true;
  private lineFirstByte = 0;
  private lineLength = 0;
  private readonly fields: HeaderField[] = [];

  constructor(
    private readonly budget: number,
    /** The fields to locate. */
    private readonly wanted: FieldNames,
  ) {}

  /**
   * Read a chunk. Returns the offset in `chunk` where the body starts when the block ended in
   * it (possibly `chunk.length`), or -1 when the whole chunk belonged to the block.
   */
  push(chunk: Buffer): number {
    if (this.base === undefined) this.base = chunk;
    else this.own(); // the block goes on past the first chunk: from now on, copy
    let i = 0;
    while (i < chunk.length) {
      if (this.atLineStart) {
        const first = chunk[i]!;
        // A line that does not start with whitespace ends the field before it.
        if (first !== SP && first !== TAB) this.commitField();
        this.lineFirstByte = first;
        this.lineLength = 0;
        this.atLineStart = false;
      }
      const lf = chunk.indexOf(LF, i);
      const stop = lf === -1 ? chunk.length : lf + 1;
      this.lineLength += stop - i;
      if (!this.dropping) {
        // The empty line that ends the block is always kept (room is left for it).
        const maybeEmptyLine = this.lineLength <= 2 && (this.lineFirstByte === CR || this.lineFirstByte === LF);
        if (!maybeEmptyLine && this.keptCost + this.fieldCost + Math.max(this.lineLength, HEADER_LINE_MIN_COST) > this.budget) {
          this.dropping = true;
          this.end = this.kept;
        } else {
          this.append(chunk, i, stop);
        }
      }
      i = stop;
      if (lf === -1) break;
      if (this.lineLength === 1 || (this.lineLength === 2 && this.lineFirstByte === CR)) {
        // The empty line. commitField() ran when it started, so it is all that follows `kept`.
        this.kept = this.end;
        this.complete = true;
        return i;
      }
      this.fieldCost += Math.max(this.lineLength, HEADER_LINE_MIN_COST);
      this.atLineStart = true;
    }
    return -1;
  }

  /** The block kept. Call once, when it is complete or the input ended. */
  finish(): HeaderBlock {
    if (!this.complete) this.commitField();
    const bytes = this.base === undefined ? Buffer.alloc(0) : this.base.subarray(0, this.kept);
    return { bytes, fields: this.fields, truncated: this.truncated };
  }

  private commitField(): void {
    if (this.dropping) {
      this.truncated = true;
      this.dropping = false;
      this.end = this.kept;
    } else if (this.end > this.kept) {
      this.locate(this.kept, this.end);
      this.kept = this.end;
      this.keptCost += this.fieldCost;
    }
    this.fieldCost = 0;
  }

  /** Note the field base[start, end) if its name is wanted. */
  private locate(start: number, end: number): void {
    const base = this.base!;
    const limit = Math.min(end, start + this.wanted.longest + 8);
    let colon = start;
    while (colon < limit && base[colon] !== COLON) colon++;
    if (colon === limit) return;
    let nameEnd = colon;
    while (nameEnd > start && (base[nameEnd - 1] === SP || base[nameEnd - 1] === TAB)) nameEnd--;
    const candidates = this.wanted.byLength[nameEnd - start];
    if (candidates === undefined) return;
    next: for (const candidate of candidates) {
      for (let k = 0; k < candidate.bytes.length; k++) {
        const b = base[start + k]!;
        const c = candidate.bytes[k]!;
        // ASCII case-insensitive: c is lower case
        if (b !== c && !(c >= 0x61 && c <= 0x7a && b === c - 0x20)) continue next;
      }
      this.fields.push({ name: candidate.name, start, end });
      return;
    }
  }

  private append(chunk: Buffer, start: number, stop: number): void {
    if (!this.owned && chunk === this.base && start === this.end) {
      this.end = stop; // still contiguous in the first chunk: nothing to copy
      return;
    }
    this.own();
    const needed = this.end + (stop - start);
    if (needed > this.base!.length) {
      // The cost check keeps `needed` within the budget and the empty line.
      const grown = Buffer.allocUnsafe(Math.min(Math.max(needed, this.base!.length * 2), this.budget + 2));
      this.base!.copy(grown, 0, 0, this.end);
      this.base = grown;
    }
    chunk.copy(this.base!, this.end, start, stop);
    this.end = needed;
  }

  /** Move the kept bytes out of the caller's chunk into a buffer of our own. */
  private own(): void {
    if (this.owned) return;
    const copy = Buffer.allocUnsafe(Math.min(Math.max(INITIAL_COPY_BYTES, this.end * 2), this.budget + 2));
    this.base!.copy(copy, 0, 0, this.end);
    this.base = copy;
    this.owned = true;
  }
}
