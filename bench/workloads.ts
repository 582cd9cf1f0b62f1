/** The benchmark's mailboxes: deterministic messages, stored as a maildir stores them (LF). */
import { createHash } from 'node:crypto';

export interface Workload {
  id: 'a' | 'a20k' | 'b' | 'c' | 'd';
  description: string;
  count: number;
  /** Approximate size of each message as stored (LF line ends). */
  size: number;
  /** Also run through the 5 ms latency proxy. */
  withLatency: boolean;
  /** Report transfer MB/s (RETR sent to end of body) for popdrain. */
  reportTransfer: boolean;
  /** Bytes the server serves (CRLF line ends), filled in by makeCorpus. */
  servedBytes: number;
}

export const WORKLOADS: Workload[] = [
  { id: 'a', description: '2,000 x 4 KB', count: 2000, size: 4096, withLatency: true, reportTransfer: false, servedBytes: 0 },
  { id: 'a20k', description: '20,000 x 4 KB', count: 20000, size: 4096, withLatency: false, reportTransfer: false, servedBytes: 0 },
  { id: 'b', description: '200 x 100 KB', count: 200, size: 100 * 1024, withLatency: true, reportTransfer: false, servedBytes: 0 },
  { id: 'c', description: 'one 50 MB message', count: 1, size: 50 * 1000 * 1000, withLatency: false, reportTransfer: true, servedBytes: 0 },
  { id: 'd', description: 'one 200 MB message', count: 1, size: 200 * 1000 * 1000, withLatency: false, reportTransfer: true, servedBytes: 0 },
];

const LINE_CHARS = 76;

/** One message of about `size` bytes: headers, then base64-looking lines that differ per message. */
export function makeMessage(index: number, size: number, tag: string): Buffer {
  const header = Buffer.from(
    `From: Bench Sender <sender@example.com>\nTo: bench-${tag}@example.com\n` +
      `Subject: bench ${tag} message ${index}\nMessage-ID: <bench-${tag}-${index}@example.com>\n` +
      `Date: Thu, 26 Nov 2026 12:00:00 +0000\nMIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n`,
  );
  const bodySize = Math.max(LINE_CHARS + 1, size - header.length);
  const lines = Math.floor(bodySize / (LINE_CHARS + 1));
  const body = Buffer.alloc(lines * (LINE_CHARS + 1));
  // A block of pseudo-random base64 text seeded by the message, repeated to fill the body.
  let seed = createHash('sha256').update(`${tag}-${index}`).digest();
  const block = Buffer.alloc(64 * (LINE_CHARS + 1));
  for (let l = 0; l < 64; l++) {
    seed = createHash('sha256').update(seed).digest();
    const text = Buffer.concat([seed, seed, seed]).toString('base64').slice(0, LINE_CHARS);
    block.write(`${text}\n`, l * (LINE_CHARS + 1), 'latin1');
  }
  for (let off = 0; off < body.length; off += block.length) block.copy(body, off, 0, Math.min(block.length, body.length - off));
  // A line that starts with a dot now and then, so byte-stuffing is exercised.
  if (lines > 3) body.write('.', 2 * (LINE_CHARS + 1), 'latin1');
  return Buffer.concat([header, body]);
}

export function makeCorpus(w: Workload): Buffer[] {
  const messages = Array.from({ length: w.count }, (_, i) => makeMessage(i, w.size, w.id));
  w.servedBytes = messages.reduce((sum, m) => sum + m.length + countLf(m), 0);
  return messages;
}

function countLf(b: Buffer): number {
  let n = 0;
  let i = -1;
  while ((i = b.indexOf(0x0a, i + 1)) !== -1) n++;
  return n;
}
