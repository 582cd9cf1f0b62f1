/**
 * Bytes in, POP3 responses out; no sockets, no timers.
 *
 * Two modes. In line mode the framer cuts status lines (and SASL challenges) at LF, strips the
 * CR before it, and hands each line to `onLine`. When the consumer learns that a multi-line
 * response follows (it called `beginBody()` from `onLine`), the framer switches to body mode:
 * it passes the response's bytes on as they arrive, removes the stuffed dot at the start of a
 * line (RFC 1939 section 3), and stops at the terminating CRLF.CRLF, which is not passed on
 * (the CRLF before the dot ends the message's last line and is kept). Bytes are never decoded.
 *
 * Body bytes are handed on as the pushed chunks or sub-arrays of them: no copy, one call per
 * chunk plus one per stuffed dot. Across chunk boundaries the framer keeps a small state (after CR, at the
 * start of a line, after a line-initial dot, after a line-initial dot and CR), so a terminator
 * split over any number of TCP segments is still found.
 */

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const CRLF_DOT = Buffer.from('\r\n.', 'latin1');
const CR_ONLY = Buffer.from('\r', 'latin1');

/** Where the body scanner stands between chunks. */
const MID = 0; // inside a line
const AFTER_CR = 1; // the last byte was a CR inside a line
const LINE_START = 2; // at the first byte of a line
const AFTER_DOT = 3; // a line began with a dot that is held back
const AFTER_DOT_CR = 4; // a line began with dot + CR, both held back
type BodyState = typeof MID | typeof AFTER_CR | typeof LINE_START | typeof AFTER_DOT | typeof AFTER_DOT_CR;

export interface FramerHandlers {
  /**
   * A complete line in line mode, without its line ending. Return `false` to stop processing
   * the current chunk; the rest stays buffered (see `takeBuffered`).
   */
  onLine(line: Buffer): boolean | void;
  /** Unstuffed bytes of the current multi-line response. */
  onBodyData(data: Buffer): void;
  /** The terminator of the current multi-line response was consumed. */
  onBodyEnd(): void;
}

export class LineTooLongError extends Error {
  override readonly name = 'LineTooLongError';
  constructor(readonly limit: number) {
    super(`line longer than ${limit} bytes`);
  }
}

export class ResponseFramer {
  private inBody = false;
  private bodyState: BodyState = LINE_START;
  private partial: Buffer[] = [];
  private partialBytes = 0;
  private stopped: Buffer | undefined;
  maxLineBytes: number;

  constructor(
    private readonly handlers: FramerHandlers,
    maxLineBytes: number,
  ) {
    this.maxLineBytes = maxLineBytes;
  }

  /** True while a multi-line response is being read. */
  get readingBody(): boolean {
    return this.inBody;
  }

  /** Bytes received but not yet framed: a partial line, or what followed a stop. */
  get bufferedBytes(): number {
    return this.partialBytes + (this.stopped?.length ?? 0);
  }

  /** Switch to body mode; call it from `onLine` for a positive multi-line response. */
  beginBody(): void {
    this.inBody = true;
    this.bodyState = LINE_START;
  }

  /** Remove and return what is buffered (a partial line and anything after a stop). */
  takeBuffered(): Buffer {
    const parts = this.partial;
    if (this.stopped !== undefined) parts.push(this.stopped);
    this.partial = [];
    this.partialBytes = 0;
    this.stopped = undefined;
    return Buffer.concat(parts);
  }

  /** Continue with the bytes left over after `onLine` returned false. */
  resume(): void {
    const rest = this.stopped;
    this.stopped = undefined;
    if (rest !== undefined && rest.length > 0) this.push(rest);
  }

  push(chunk: Buffer): void {
    let pos = 0;
    const len = chunk.length;
    while (pos < len) {
      if (this.inBody) {
        pos = this.scanBody(chunk, pos);
        continue;
      }
      const end = chunk.indexOf(LF, pos);
      if (end === -1) {
        this.keepPartial(chunk.subarray(pos));
        return;
      }
      const line = this.completeLine(chunk, pos, end);
      pos = end + 1;
      if (this.handlers.onLine(line) === false) {
        if (pos < len) this.stopped = chunk.subarray(pos);
        return;
      }
    }
  }

  private keepPartial(part: Buffer): void {
    this.partialBytes += part.length;
    if (this.partialBytes > this.maxLineBytes) throw new LineTooLongError(this.maxLineBytes);
    this.partial.push(part);
  }

  private completeLine(chunk: Buffer, start: number, lf: number): Buffer {
    let line: Buffer;
    if (this.partialBytes === 0) {
      line = chunk.subarray(start, lf);
    } else {
      this.partial.push(chunk.subarray(start, lf));
      line = Buffer.concat(this.partial);
      this.partial = [];
      this.partialBytes = 0;
    }
    if (line.length > this.maxLineBytes) throw new LineTooLongError(this.maxLineBytes);
    return line.length > 0 && line[line.length - 1] === CR ? line.subarray(0, line.length - 1) : line;
  }

  /** Scan body bytes from `pos`; returns where line mode continues (or `chunk.length`). */
  private scanBody(chunk: Buffer, pos: number): number {
    const len = chunk.length;
    const emit = (from: number, to: number): void => {
      // A whole chunk of body bytes (most of a large message) is handed on as it is.
      if (to > from) this.handlers.onBodyData(from === 0 && to === len ? chunk : chunk.subarray(from, to));
    };
    let i = pos;
    let seg = pos;

    // Resolve a state carried over from the previous chunk, a byte at a time.
    while (this.bodyState !== MID) {
      if (i >= len) {
        emit(seg, len);
        return len;
      }
      const b = chunk[i];
      switch (this.bodyState) {
        case AFTER_CR:
          if (b === LF) {
            i++;
            this.bodyState = LINE_START;
          } else {
            this.bodyState = MID;
          }
          break;
        case LINE_START:
          if (b === DOT) {
            emit(seg, i);
            i++;
            seg = i;
            this.bodyState = AFTER_DOT;
          } else {
            this.bodyState = MID;
          }
          break;
        case AFTER_DOT:
          if (b === CR) {
            i++;
            seg = i;
            this.bodyState = AFTER_DOT_CR;
          } else {
            this.bodyState = MID; // a stuffed dot: dropped
          }
          break;
        case AFTER_DOT_CR:
          if (b === LF) return this.endBody(i + 1);
          // ".\r" then something else: a stuffed line that begins with CR.
          this.handlers.onBodyData(CR_ONLY);
          this.bodyState = MID;
          break;
      }
    }

    // Inside a line: everything up to the next CRLF followed by a dot is plain data.
    for (;;) {
      const hit = chunk.indexOf(CRLF_DOT, i);
      if (hit === -1) {
        emit(seg, len);
        if (len - i >= 2 && chunk[len - 2] === CR && chunk[len - 1] === LF) this.bodyState = LINE_START;
        else if (len > i && chunk[len - 1] === CR) this.bodyState = AFTER_CR;
        return len;
      }
      const dot = hit + 2;
      emit(seg, dot);
      if (dot + 1 >= len) {
        this.bodyState = AFTER_DOT;
        return len;
      }
      if (chunk[dot + 1] === CR) {
        if (dot + 2 >= len) {
          this.bodyState = AFTER_DOT_CR;
          return len;
        }
        if (chunk[dot + 2] === LF) return this.endBody(dot + 3);
      }
      seg = dot + 1;
      i = dot + 1;
    }
  }

  private endBody(next: number): number {
    this.inBody = false;
    this.bodyState = LINE_START;
    this.handlers.onBodyEnd();
    return next;
  }
}
