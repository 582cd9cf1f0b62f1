/** A large message for the POP3 tests against Dovecot (pop3-dovecot-*.test.ts). */
import { randomBytes } from 'node:crypto';

/**
 * A message of exactly `size` bytes of LF-terminated lines: numbered lines of varying length,
 * with lines that are just ".", lines starting with "." and "..", and a last line ending in ".".
 * Written straight into one Buffer so that generating it leaves little garbage behind.
 */
export function largeMessage(size: number, id: string): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let off = buf.write(
    `From: Large Sender <large@popdrain.test>\nTo: drain@popdrain.test\nSubject: ${id}\n` +
      `Message-ID: <${id}@popdrain.test>\nContent-Type: text/plain; charset=us-ascii\n\n`,
    0,
    'latin1',
  );
  const filler = randomBytes(3 * 1024).toString('base64');
  for (let n = 0; ; n++) {
    let line: string;
    if (n % 1000 === 7) line = '.\n';
    else if (n % 1000 === 500) line = `..two dots ${n}\n`;
    else if (n % 1000 === 900) line = `.one dot ${n}\n`;
    else {
      const from = (n * 7) % 2048;
      line = `${n} ${filler.slice(from, from + 40 + (n % 53))}\n`;
    }
    if (off + line.length + 64 > size) break;
    off += buf.write(line, off, 'latin1');
  }
  // Pad to the exact size; the last line ends in a dot.
  const tail = size - off;
  buf.fill('z', off, off + tail - 2, 'latin1');
  buf.write('.\n', size - 2, 'latin1');
  return buf;
}
