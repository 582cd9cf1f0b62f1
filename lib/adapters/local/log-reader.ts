/**
 * Replay of a log file read in pieces: the same result as `decodeLog` of the whole file
 * (ledger-log.ts), without holding the file in memory. Entries keep their events' places in the
 * file (`source`, log-event-source.ts) rather than their bytes, so what a load keeps is the
 * entries' fields, not the file.
 */
import type { FileHandle } from 'node:fs/promises';
import { readAt } from './durable-fs.js';
import { decodeLine, LogScan, type DecodedLog } from './ledger-log.js';
import type { LogEventSource } from './log-event-source.js';

/** Bytes read at a time; a longer line is read whole. */
export const LOG_READ_CHUNK_BYTES = 1024 * 1024;

const NEWLINE = 0x0a;

/** A log read from its file: what decodeLog gives, and how many bytes were read. */
export interface ReadLog extends DecodedLog {
  /** The file's size as read (less than asked if it ended sooner). */
  bytes: number;
}

/**
 * Decode the first `size` bytes of the log open as `handle`; `source` reads the same file. With
 * `start` (the end of a prefix known valid: an index's), only the lines from there are read.
 */
export async function readLog(handle: FileHandle, size: number, source: LogEventSource, chunkBytes = LOG_READ_CHUNK_BYTES, start = 0): Promise<ReadLog> {
  const scan = new LogScan(start);
  let buffer = Buffer.allocUnsafe(Math.max(1, Math.min(chunkBytes, size - start)));
  /** File offset of buffer[0]; bytes [0, filled) of the buffer are the file's. */
  let base = start;
  let filled = 0;
  while (base + filled < size) {
    if (filled === buffer.length) {
      // A line longer than the buffer: grow it.
      const bigger = Buffer.allocUnsafe(Math.min(buffer.length * 2, size - base));
      buffer.copy(bigger, 0, 0, filled);
      buffer = bigger;
    }
    const { bytesRead } = await handle.read(buffer, filled, Math.min(buffer.length - filled, size - base - filled), base + filled);
    if (bytesRead === 0) break; // shorter than its stat said: stop where it ends
    filled += bytesRead;
    let start = 0;
    for (;;) {
      const end = buffer.indexOf(NEWLINE, start);
      if (end === -1 || end >= filled) break;
      scan.line(base + start, base + end, end > start ? decodeLine(buffer.subarray(start, end), source, base + start) : undefined);
      start = end + 1;
    }
    // The unfinished line moves to the front. No record views the buffer: entries keep their
    // events' places in the file, other records are parsed.
    buffer.copyWithin(0, start, filled);
    base += start;
    filled -= start;
  }
  const end = base + filled;
  const tail = scan.validBytes < end ? await readAt(handle, scan.validBytes, end - scan.validBytes) : Buffer.alloc(0);
  return { ...scan.result(end, () => tail), bytes: end };
}
