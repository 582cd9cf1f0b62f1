/** The form in which Dovecot serves a maildir file, for the tests against it (pop3-dovecot-*.test.ts). */
import { createHash } from 'node:crypto';

const CR = 0x0d;
const LF = 0x0a;
const CRLF = Buffer.from('\r\n', 'latin1');

/**
 * What Dovecot serves for a maildir file, computed without the client: every LF that has no CR
 * before it becomes CRLF (a lone CR stays), and a file that does not end in LF gets a CRLF
 * before the terminator. `listSize` is the size of the CRLF form alone, which LIST reports.
 */
export class ServedDigest {
  private readonly hash = createHash('sha256');
  private last = -1;
  private crlfBytes = 0;

  update(chunk: Buffer): this {
    let start = 0;
    for (let lf = chunk.indexOf(LF); lf !== -1; lf = chunk.indexOf(LF, lf + 1)) {
      const before = lf > 0 ? chunk[lf - 1] : this.last;
      if (before !== CR) {
        this.add(chunk.subarray(start, lf));
        this.add(CRLF);
        start = lf + 1;
      }
    }
    this.add(chunk.subarray(start));
    if (chunk.length > 0) this.last = chunk[chunk.length - 1]!;
    return this;
  }

  finish(): { sha256: string; listSize: number; servedSize: number; endsWithNewline: boolean } {
    const listSize = this.crlfBytes;
    const endsWithNewline = this.last === LF;
    if (!endsWithNewline) this.add(CRLF);
    return { sha256: this.hash.digest('hex'), listSize, servedSize: this.crlfBytes, endsWithNewline };
  }

  private add(part: Buffer): void {
    this.hash.update(part);
    this.crlfBytes += part.length;
  }
}

/** The served form of a small message, as bytes (LF → CRLF, plus CRLF when no final LF). */
export function servedBytes(file: Buffer): Buffer {
  const parts: Buffer[] = [];
  let start = 0;
  for (let lf = file.indexOf(LF); lf !== -1; lf = file.indexOf(LF, lf + 1)) {
    if (lf === 0 || file[lf - 1] !== CR) {
      parts.push(file.subarray(start, lf), CRLF);
      start = lf + 1;
    }
  }
  parts.push(file.subarray(start));
  if (file.length === 0 || file[file.length - 1] !== LF) parts.push(CRLF);
  return Buffer.concat(parts);
}
