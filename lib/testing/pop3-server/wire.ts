/**
 * Wire helpers: the bytes of multi-line answers (RFC 1939 dot-stuffing, the terminator, TOP).
 * Exported for tests that check bytes on the wire.
 */

const CRLF = Buffer.from('\r\n', 'latin1');
/** The line that ends a multi-line response. */
export const TERMINATOR = Buffer.from('.\r\n', 'latin1');
const DOT = Buffer.from('.', 'latin1');
export const LF_BYTE = 0x0a;
export const CR_BYTE = 0x0d;
const DOT_BYTE = 0x2e;

/** RFC 1939 byte-stuffing: a line that starts with `.` gets another `.` in front. */
export function dotStuff(bytes: Buffer): Buffer {
  const parts: Buffer[] = [];
  let copiedUpTo = 0;
  let lineStart = 0;
  while (lineStart < bytes.length) {
    if (bytes[lineStart] === DOT_BYTE) {
      parts.push(bytes.subarray(copiedUpTo, lineStart), DOT);
      copiedUpTo = lineStart;
    }
    const lf = bytes.indexOf(LF_BYTE, lineStart);
    if (lf < 0) break;
    lineStart = lf + 1;
  }
  if (parts.length === 0) return bytes;
  parts.push(bytes.subarray(copiedUpTo));
  return Buffer.concat(parts);
}

function endsWithCrlf(bytes: Buffer): boolean {
  return bytes.length >= 2 && bytes[bytes.length - 2] === CR_BYTE && bytes[bytes.length - 1] === LF_BYTE;
}

/**
 * The bytes that follow a positive status line for a message: dot-stuffed, CRLF added when the
 * stored bytes do not end with one (as real servers do), then `.` CRLF.
 */
export function encodeMultilineBody(bytes: Buffer): Buffer {
  const stuffed = dotStuff(bytes);
  const parts = [stuffed];
  if (bytes.length > 0 && !endsWithCrlf(bytes)) parts.push(CRLF);
  parts.push(TERMINATOR);
  return Buffer.concat(parts);
}

/** What TOP n k sends: the header block with its blank line, then the first `bodyLines` lines. */
export function extractTop(bytes: Buffer, bodyLines: number): Buffer {
  let pos = 0;
  while (pos < bytes.length) {
    const lf = bytes.indexOf(LF_BYTE, pos);
    const isBlank = lf === pos || (lf === pos + 1 && bytes[pos] === CR_BYTE);
    pos = lf < 0 ? bytes.length : lf + 1;
    if (isBlank) break;
  }
  for (let left = bodyLines; left > 0 && pos < bytes.length; left--) {
    const lf = bytes.indexOf(LF_BYTE, pos);
    pos = lf < 0 ? bytes.length : lf + 1;
  }
  return bytes.subarray(0, pos);
}

/** A correct multi-line response as text: the status line, the lines dot-stuffed, `.` CRLF. */
export function multilineText(status: string, lines: readonly string[]): string {
  const body = lines.map((l) => (l.startsWith('.') ? `.${l}` : l)).join('\r\n');
  return `${status}\r\n${lines.length > 0 ? `${body}\r\n` : ''}.\r\n`;
}
