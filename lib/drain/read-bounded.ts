/**
 * Small files the user names (a mailbox configuration, a CA bundle) read with a bound: a path
 * such as /dev/zero or a FIFO would otherwise be read until memory runs out.
 */
import { closeSync, openSync, readSync } from 'node:fs';

/** A mailbox configuration larger than this is refused. */
export const MAX_CONFIG_FILE_BYTES = 4 * 1024 * 1024;
/** A CA bundle larger than this is refused (Mozilla's whole bundle is ~220 KB). */
export const MAX_CA_FILE_BYTES = 4 * 1024 * 1024;

/** The file as UTF-8, or throws when it holds more than `maxBytes` (without reading further). */
export function readTextFileBounded(path: string, maxBytes: number): string {
  const fd = openSync(path, 'r');
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(64 * 1024, maxBytes + 1 - total));
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      total += n;
      chunks.push(chunk.subarray(0, n));
      if (total > maxBytes) throw new Error(`${path} is larger than ${maxBytes} bytes`);
    }
    return Buffer.concat(chunks).toString('utf8');
  } finally {
    closeSync(fd);
  }
}
