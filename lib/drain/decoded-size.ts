/**
 * The decoded size of a MIME body, counted as its transfer-encoded bytes pass: nothing is
 * decoded and nothing is kept but a few bytes of state, whatever the body's size.
 *
 * The counts agree byte for byte with what mailparser's decoders (libbase64's and libqp's)
 * produce for the same bytes, broken encodings included, so an attachment's `size` is what a
 * consumer that decodes the part with those libraries gets.
 */

/** Counts one body. `write` as the bytes come, `end` once for the total. */
export interface DecodedSizeCounter {
  write(chunk: Uint8Array): void;
  /** The decoded size of everything written. */
  end(): number;
}

/**
 * A counter for a part with this Content-Transfer-Encoding (lower case, as mailsplit reports
 * it). Anything but base64 and quoted-printable (7bit, 8bit, binary, none, unknown) is taken
 * as is, as mailparser does.
 */
export function createDecodedSizeCounter(encoding: string | false): DecodedSizeCounter {
  if (encoding === 'base64') return new Base64SizeCounter();
  if (encoding === 'quoted-printable') return new QuotedPrintableSizeCounter();
  return new RawSizeCounter();
}

class RawSizeCounter implements DecodedSizeCounter {
  private bytes = 0;
  write(chunk: Uint8Array): void {
    this.bytes += chunk.length;
  }
  end(): number {
    return this.bytes;
  }
}

const B64_OTHER = 0;
const B64_DIGIT = 1;
const B64_PAD = 2;
const B64_CLASS = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/') B64_CLASS[c.charCodeAt(0)] = B64_DIGIT;
B64_CLASS[0x3d] = B64_PAD;

/**
 * Base64: every character outside the alphabet is skipped (line breaks, spaces, stray bytes),
 * and `=` ends a segment; each segment of n characters decodes to floor(6n / 8) bytes. That
 * is libbase64's Decoder, which strips the same characters and decodes segment by segment.
 */
class Base64SizeCounter implements DecodedSizeCounter {
  private bytes = 0;
  /** Characters of the current segment after its last complete quartet (0-3). */
  private pending = 0;

  write(chunk: Uint8Array): void {
    let bytes = this.bytes;
    let pending = this.pending;
    for (let i = 0; i < chunk.length; i++) {
      const k = B64_CLASS[chunk[i]!];
      if (k === B64_DIGIT) {
        if (++pending === 4) {
          bytes += 3;
          pending = 0;
        }
      } else if (k === B64_PAD) {
        bytes += (pending * 3) >> 2;
        pending = 0;
      }
    }
    this.bytes = bytes;
    this.pending = pending;
  }

  end(): number {
    const total = this.bytes + ((this.pending * 3) >> 2);
    this.bytes = total;
    this.pending = 0;
    return total;
  }
}

const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const EQ = 0x3d;

const IS_HEX = new Uint8Array(256);
for (const c of '0123456789ABCDEFabcdef') IS_HEX[c.charCodeAt(0)] = 1;

/** Bytes a quoted-printable scan has to look at; everything else is one output byte. */
const QP_SPECIAL = new Uint8Array(256);
for (const b of [TAB, LF, CR, SP, EQ]) QP_SPECIAL[b] = 1;

/**
 * Quoted-printable, as libqp decodes it, in three stages run as one pass:
 *  1. whitespace (SP, HTAB) at the end of a line or of the body is dropped;
 *  2. a soft line break, `=` before CRLF, LF or the end of the body, is dropped;
 *  3. `=XX` (two hex digits, either case) is one byte; every other byte is itself.
 * Each stage keeps at most a couple of bytes of look-ahead as state.
 */
class QuotedPrintableSizeCounter implements DecodedSizeCounter {
  /** Stage 3: bytes out so far, counting each `=XX` as three. */
  private chars = 0;
  /** Stage 3: `=XX` escapes seen (each is two bytes fewer than its characters). */
  private escapes = 0;
  /** Stage 3: 0 = nothing pending, 1 = after `=`, 2 = after `=` and one hex digit. */
  private escape = 0;
  /** Stage 2: 0 = nothing pending, 1 = after `=`, 2 = after `=` CR. */
  private soft = 0;
  /** Stage 1: whitespace held back until we know whether a line break follows it. */
  private spaces = 0;

  write(chunk: Uint8Array): void {
    // The common transitions run on locals; the rare ones (a pending `=` of stage 2) go
    // through the methods below with the state written back.
    let chars = this.chars;
    let escapes = this.escapes;
    let escape = this.escape;
    let spaces = this.spaces;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (QP_SPECIAL[c] === 0 && spaces === 0 && escape === 0 && this.soft === 0) {
        chars++;
        continue;
      }
      if (c === SP || c === TAB) {
        spaces++;
        continue;
      }
      if (c === CR || c === LF) {
        spaces = 0; // stage 1: whitespace before a line break goes
      } else if (spaces > 0) {
        if (this.soft !== 0) {
          this.save(chars, escapes, escape, spaces);
          this.releaseSoft();
          ({ chars, escapes, escape } = this);
        }
        chars += spaces;
        escape = 0;
        spaces = 0;
      }
      if (this.soft === 0 && c !== EQ) {
        // stage 3, inline
        chars++;
        if (escape !== 0) {
          if (IS_HEX[c] === 1) {
            if (escape === 1) escape = 2;
            else {
              escapes++;
              escape = 0;
            }
          } else escape = 0;
        }
        continue;
      }
      this.save(chars, escapes, escape, spaces);
      this.softBreakStage(c);
      ({ chars, escapes, escape } = this);
    }
    this.save(chars, escapes, escape, spaces);
  }

  private save(chars: number, escapes: number, escape: number, spaces: number): void {
    this.chars = chars;
    this.escapes = escapes;
    this.escape = escape;
    this.spaces = spaces;
  }

  end(): number {
    // Stage 1: whitespace at the very end goes. Stage 2: a final `=` is a soft break; a
    // final `=` CR is not (no LF follows), so both characters are output.
    this.spaces = 0;
    if (this.soft === 2) {
      this.escapeStage(EQ);
      this.escapeStage(CR);
    }
    this.soft = 0;
    this.escape = 0;
    return this.chars - 2 * this.escapes;
  }

  /** Stage 2: drop `=` CRLF and `=` LF. */
  private softBreakStage(c: number): void {
    if (this.soft === 1) {
      if (c === LF) {
        this.soft = 0;
        return;
      }
      if (c === CR) {
        this.soft = 2;
        return;
      }
    } else if (this.soft === 2 && c === LF) {
      this.soft = 0;
      return;
    }
    this.releaseSoft();
    if (c === EQ) this.soft = 1;
    else this.escapeStage(c);
  }

  /** Stage 2 let go of what it held: it was no soft line break after all. */
  private releaseSoft(): void {
    if (this.soft === 0) return;
    this.escapeStage(EQ);
    if (this.soft === 2) this.escapeStage(CR);
    this.soft = 0;
  }

  /** Stage 3: count characters and complete `=XX` escapes. */
  private escapeStage(c: number): void {
    this.chars++;
    if (this.escape === 0) {
      if (c === EQ) this.escape = 1;
    } else if (IS_HEX[c] === 1) {
      if (this.escape === 1) this.escape = 2;
      else {
        this.escapes++;
        this.escape = 0;
      }
    } else {
      this.escape = c === EQ ? 1 : 0;
    }
  }
}
