/**
 * The local ledger's log format and its replay, with no I/O (file-ledger.ts does the files).
 *
 * A log is a sequence of lines, one record each: `<crc32 as 8 lowercase hex> <json>\n`, the
 * checksum taken over the JSON's UTF-8 bytes. The first record is a header naming the format
 * version and the mailbox. Appending whole lines in one write and fsyncing them makes a record
 * durable; a crash can only leave a torn tail (a last line without its newline, or bytes that
 * fail their checksum), which replay ignores and the next writer truncates away.
 *
 *   {"t":"hdr","v":1,"mailboxId":"m"}          header
 *   {"t":"rec","e":{...LedgerEntry}}           an entry (new, or its current form in a snapshot)
 *   {"t":"ann","u":["uidl",...],"at":ms}       entries announced
 *   {"t":"del","u":["uidl",...],"at":ms,"exp":s}  entries deleted from the server
 *   {"t":"st","s":{...MailboxState fields}}    the mailbox state, whole
 */
import type { LedgerEntry, MailboxState, MailboxStateUpdate } from '../../drain/ports.js';
import { eventJson } from '../../drain/events.js';
import { crc32 } from './crc32.js';
import { decodeEntryBody, entryFields, REC_PREFIX, unparsedEventText } from './lazy-event-entry.js';
import type { LogEventSource } from './log-event-source.js';

// The model a log replays into is ledger-model.ts's; its importers find it here too.
export { isExpired, LedgerModel } from './ledger-model.js';

export const LEDGER_FORMAT_VERSION = 1;

export type MailboxStateFields = Omit<MailboxState, 'mailboxId'>;

export type LedgerRecord =
  | { t: 'hdr'; v: number; mailboxId: string }
  | { t: 'rec'; e: LedgerEntry }
  | { t: 'ann'; u: string[]; at: number }
  | { t: 'del'; u: string[]; at: number; exp: number }
  | { t: 'st'; s: MailboxStateFields };

const NEWLINE = 0x0a;
const SPACE = 0x20;
const CRC_HEX_CHARS = 8;

/**
 * One log line (with its newline) holding `json`, the JSON text of a record, optionally
 * wrapped as `<prefix><json>}` (ASCII prefix) without building the joined string.
 */
export function encodeLine(json: string, asciiPrefix = ''): Buffer {
  const jsonBytes = Buffer.byteLength(json);
  const start = CRC_HEX_CHARS + 1;
  const wrap = asciiPrefix.length > 0 ? 1 : 0;
  const bodyBytes = asciiPrefix.length + jsonBytes + wrap;
  const line = Buffer.allocUnsafe(start + bodyBytes + 1);
  if (wrap) {
    line.write(asciiPrefix, start, 'latin1');
    line[start + bodyBytes - 1] = 0x7d; // }
  }
  line.write(json, start + asciiPrefix.length, 'utf8');
  const crc = crc32(line.subarray(start, start + bodyBytes));
  line.write(crc.toString(16).padStart(CRC_HEX_CHARS, '0'), 0, 'latin1');
  line[CRC_HEX_CHARS] = SPACE;
  line[line.length - 1] = NEWLINE;
  return line;
}

/** The line of a `rec` record of an entry whose JSON text is `entryJson`. */
export function encodeEntryLine(entryJson: string): Buffer {
  return encodeLine(entryJson, REC_PREFIX);
}

/**
 * `JSON.stringify(entry)` with its event last, the event's detail text kept for the event file
 * (eventJson); an event replayed but never read is written as the text it was read from.
 */
export function entryJson(entry: LedgerEntry): string {
  const head = JSON.stringify(entryFields(entry));
  if (entry.event === undefined) return head; // an imported entry
  const unparsed = unparsedEventText(entry);
  const event = unparsed === undefined ? eventJson(entry.event) : unparsed.toString('utf8');
  return `${head.slice(0, -1)}${head.length > 2 ? ',' : ''}"event":${event}}`;
}

export function encodeRecord(record: LedgerRecord): Buffer {
  return encodeLine(JSON.stringify(record));
}

/**
 * The record on one line (without its newline), or undefined when it fails its checksum. With a
 * `source` (the log file the line was read from, at `lineOffset`), an entry's event is left in
 * the file (lazy-event-entry.ts) instead of kept as a view of `line`.
 */
export function decodeLine(line: Buffer, source?: LogEventSource, lineOffset = 0): LedgerRecord | undefined {
  if (line.length < CRC_HEX_CHARS + 3 || line[CRC_HEX_CHARS] !== SPACE) return undefined;
  const checksum = lowerHexValue(line, CRC_HEX_CHARS);
  if (checksum === -1) return undefined;
  const body = line.subarray(CRC_HEX_CHARS + 1);
  if (crc32(body) !== checksum) return undefined;
  // Most lines are entries: their events are parsed when read (lazy-event-entry.ts).
  const entry = decodeEntryBody(body, source, lineOffset + CRC_HEX_CHARS + 1);
  if (entry !== undefined) return { t: 'rec', e: entry };
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || typeof (value as { t?: unknown }).t !== 'string') return undefined;
  return value as LedgerRecord;
}

/** The value of the first `digits` bytes as lowercase hex (at most 13 digits), or -1 if any is not [0-9a-f]. */
function lowerHexValue(data: Buffer, digits: number): number {
  let value = 0;
  for (let i = 0; i < digits; i++) {
    const b = data[i]!;
    const d = b >= 0x30 && b <= 0x39 ? b - 0x30 : b >= 0x61 && b <= 0x66 ? b - 0x57 : -1;
    if (d === -1) return -1;
    value = value * 16 + d;
  }
  return value;
}

export interface DecodedLog {
  records: LedgerRecord[];
  /** Byte length of each record's line (newline included), parallel to `records`. */
  sizes: number[];
  /** Byte offset of each record's line in the file, parallel to `records`. */
  offsets: number[];
  /** Bytes up to and including the last valid line: what a writer keeps. */
  validBytes: number;
  /** Invalid lines followed by valid ones (never written by a sole writer; skipped). */
  corruptLines: number;
  /**
   * Byte offset of the first invalid line that a crash cannot explain (undefined when none):
   * one followed by valid lines, or a tail that is not a torn line (isTornTail). The log is
   * then unreadable, not torn.
   */
  corruptAt: number | undefined;
}

/**
 * What a crash can leave after the last complete line: one line at most (its newline, if any,
 * last), either a prefix of a line as encodeLine makes them (8 lowercase hex digits, a space,
 * `{`) or NUL bytes (blocks allocated but never written). More lines, or other bytes, are garbage.
 */
export function isTornTail(tail: Buffer): boolean {
  const newline = tail.indexOf(NEWLINE);
  if (newline !== -1 && newline !== tail.length - 1) return false;
  const line = newline === -1 ? tail : tail.subarray(0, newline);
  if (line.every((b) => b === 0)) return true;
  for (let i = 0; i < Math.min(line.length, CRC_HEX_CHARS); i++) {
    const b = line[i]!;
    if (!((b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x66))) return false;
  }
  if (line.length > CRC_HEX_CHARS && line[CRC_HEX_CHARS] !== SPACE) return false;
  return line.length <= CRC_HEX_CHARS + 1 || line[CRC_HEX_CHARS + 1] === 0x7b; // {
}

/**
 * Split a log into records. Everything after the last valid line (a line cut short by a
 * crash, or bytes of an unfinished write) is a torn tail: `validBytes` stops before it.
 */
export function decodeLog(data: Buffer): DecodedLog {
  const scan = new LogScan();
  let start = 0;
  while (start < data.length) {
    const end = data.indexOf(NEWLINE, start);
    if (end === -1) break; // no newline: torn
    scan.line(start, end, end > start ? decodeLine(data.subarray(start, end)) : undefined);
    start = end + 1;
  }
  return scan.result(data.length, (from) => data.subarray(from));
}

/**
 * The bookkeeping of decodeLog, line by line, for a caller that reads the log in pieces
 * (log-reader.ts): each complete line's offsets and record (undefined: invalid or empty).
 */
export class LogScan {
  private readonly records: LedgerRecord[] = [];
  private readonly sizes: number[] = [];
  private readonly offsets: number[] = [];
  /** Bytes up to and including the last valid line so far. */
  validBytes: number;
  private corruptLines = 0;
  private pendingCorrupt = 0;
  private firstInvalid: number | undefined;
  private corruptAt: number | undefined;

  /** `start`: where the scan begins in the file (the bytes before are valid lines, read elsewhere). */
  constructor(start = 0) {
    this.validBytes = start;
  }

  /** The line from `start` to its newline at `end`. */
  line(start: number, end: number, record: LedgerRecord | undefined): void {
    if (record === undefined) {
      if (end > start) this.pendingCorrupt++;
      this.firstInvalid ??= start;
    } else {
      this.records.push(record);
      this.sizes.push(end + 1 - start);
      this.offsets.push(start);
      this.corruptLines += this.pendingCorrupt;
      this.pendingCorrupt = 0;
      this.corruptAt ??= this.firstInvalid;
      this.firstInvalid = undefined;
      this.validBytes = end + 1;
    }
  }

  /** The log of `size` bytes; `tail(from)` gives its bytes from `from` to the end. */
  result(size: number, tail: (from: number) => Buffer): DecodedLog {
    let corruptAt = this.corruptAt;
    if (corruptAt === undefined && this.validBytes < size && !isTornTail(tail(this.validBytes))) corruptAt = this.validBytes;
    return { records: this.records, sizes: this.sizes, offsets: this.offsets, validBytes: this.validBytes, corruptLines: this.corruptLines, corruptAt };
  }
}


/** The state after an update: a null field is removed, an undefined one left as it was. */
export function updatedState(state: MailboxStateFields, update: MailboxStateUpdate): MailboxStateFields {
  const next: Record<string, unknown> = { ...state };
  for (const [field, value] of Object.entries(update)) {
    if (value === undefined || field === 'mailboxId') continue;
    if (value === null) delete next[field];
    else next[field] = value;
  }
  return next as MailboxStateFields;
}
