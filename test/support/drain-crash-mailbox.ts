// The mail of a drain crash campaign (drain-crash-*.test.ts): what was delivered to the Dovecot
// mailbox, and which of it the server still holds.
import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import { servedForm, sha256, testMessage } from '../../testkit/fixtures/drain-fixtures.js';
import { dovecot } from './drain-crash-world.js';

const MiB = 1024 * 1024;
/** Large messages are 1-3 MB: spooled to a file by the S3 store, many RETR chunks long. */
export const LARGE_MIN_BYTES = 1 * MiB;
const LARGE_MAX_BYTES = 3 * MiB;
const SMALL_MAX_BODY_BYTES = 6_000;

export interface Source {
  /** Delivery order, from 0: Dovecot gives it UID index + 1. */
  index: number;
  /** The maildir file's base name (Dovecot may move it to cur/ and add flags after a ':'). */
  name: string;
  /** sha256 and size of what Dovecot serves for it (CRLF). */
  sha256: string;
  size: number;
  large: boolean;
}

/** A large message: base64 lines of random bytes, with a line that needs dot-stuffing. */
function largeMessage(i: number, tag: string, bytes: number): Buffer {
  const lines = randomBytes(Math.ceil((bytes * 3) / 4)).toString('base64').match(/.{1,76}/g)!;
  lines.splice(1, 0, '.a line that starts with a dot');
  return Buffer.from(
    `From: Big ${i} <big${i}@example.com>\nTo: r@example.com\nSubject: ${tag} large ${i}\nMessage-ID: <${tag}-large-${i}@example.com>\n` +
      `Date: Thu, 26 Nov 2026 10:00:00 +0000\nMIME-Version: 1.0\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n${lines.join('\n')}\n`,
  );
}

export const baseName = (path: string): string => basename(path).split(':')[0]!;

export class Mailbox {
  readonly sources: Source[] = [];
  private readonly random: () => number;

  constructor(
    readonly user: string,
    readonly tag: string,
    random: () => number,
  ) {
    this.random = random;
  }

  async deliver(small: number, large: number): Promise<void> {
    const messages: Array<{ bytes: Buffer; large: boolean }> = [];
    for (let k = 0; k < small; k++) {
      const i = this.sources.length + messages.length;
      messages.push({ bytes: testMessage(i, this.tag, 100 + Math.floor(this.random() * SMALL_MAX_BODY_BYTES)), large: false });
    }
    for (let k = 0; k < large; k++) {
      const i = this.sources.length + messages.length;
      const size = LARGE_MIN_BYTES + Math.floor(this.random() * (LARGE_MAX_BYTES - LARGE_MIN_BYTES));
      messages.push({ bytes: largeMessage(i, this.tag, size), large: true });
    }
    const paths = await dovecot.deliverMany(this.user, messages.map((m) => m.bytes));
    messages.forEach((m, k) => {
      const served = servedForm(m.bytes);
      this.sources.push({ index: this.sources.length, name: baseName(paths[k]!), sha256: sha256(served), size: served.length, large: m.large });
    });
  }

  /** The sources still in the maildir. */
  async onServer(): Promise<Source[]> {
    const present = new Set((await dovecot.listMaildir(this.user)).map(baseName));
    return this.sources.filter((s) => present.has(s.name));
  }
}
