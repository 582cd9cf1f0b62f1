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
import { DrainError } from '../../drain/errors.js';
import { factsOf, type CompactEntries, type EntryFacts } from './compact-entries.js';
import { crc32 } from './crc32.js';
import { decodeEntryBody, entryFields, REC_PREFIX, unparsedEventText } from './lazy-event-entry.js';
import type { LogEventSource } from './log-event-source.js';

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

/**
 * A mailbox's ledger in memory: what replaying its log gives. Entries are objects (`entries`),
 * or, for those an index answered (ledger-index-codec.ts), columns (`base`) whose entries are read
 * from their log lines when a caller needs them whole. A UIDL is in one of the two, never both.
 */
export class LedgerModel {
  /** The entries as objects: all of them, or with a `base` those recorded after its prefix. */
  readonly entries = new Map<string, LedgerEntry>();
  /** The entries an index loaded, and the log they are read from when needed whole. */
  base: CompactEntries | undefined;
  baseSource: LogEventSource | undefined;
  /** Where each entry of `entries` has its `rec` line in the log (for an index): offset, length. */
  readonly lineOffsets = new Map<string, number>();
  readonly lineLengths = new Map<string, number>();
  state: MailboxStateFields = {};
  /** Sum of the sizes of the `rec` lines replayed or appended (for the compaction estimate). */
  recordBytes = 0;
  recordLines = 0;
  private readonly scratch: EntryFacts = { status: 'stored', size: 0, firstSeenAt: 0, announcedAt: undefined, deletedAt: undefined, expiresAt: undefined };

  constructor(readonly mailboxId: string) {}

  /** How many entries. */
  get size(): number {
    return this.entries.size + (this.base?.count ?? 0);
  }

  has(uidl: string): boolean {
    return this.entries.has(uidl) || this.base?.slotOf(uidl) !== undefined;
  }

  /** The model's own entry (read from the log if only its columns are loaded), or undefined. */
  get(uidl: string): LedgerEntry | undefined {
    const entry = this.entries.get(uidl);
    if (entry !== undefined || this.base === undefined) return entry;
    const slot = this.base.slotOf(uidl);
    return slot === undefined ? undefined : this.entryAt(slot);
  }

  /** The entry's fields without reading it whole, in an object reused by the next call. */
  facts(uidl: string): EntryFacts | undefined {
    // An index's load usually leaves no entry objects: no string hashed for an empty map.
    const entry = this.entries.size === 0 ? undefined : this.entries.get(uidl);
    if (entry !== undefined) return factsOf(entry, this.scratch);
    const slot = this.base?.slotOf(uidl);
    return slot === undefined ? undefined : this.base!.facts(slot);
  }

  /** Every entry's fields (base first, in the index's order, then the others), without reading any whole. */
  forEachFacts(fn: (facts: EntryFacts) => void): void {
    const base = this.base;
    if (base !== undefined) for (let slot = 0; slot < base.count; slot++) fn(base.facts(slot));
    for (const entry of this.entries.values()) fn(factsOf(entry, this.scratch));
  }

  /** How many entries are past their expiry at `nowMs` (isExpired). */
  countExpired(nowMs: number): number {
    let n = this.base?.countExpired(nowMs) ?? 0;
    for (const entry of this.entries.values()) if (isExpired(entry, nowMs)) n++;
    return n;
  }

  /** The entries whose fields pass `filter` (every entry without one), read whole, in the order of forEachFacts. */
  *values(filter?: (facts: EntryFacts) => boolean): IterableIterator<LedgerEntry> {
    const base = this.base;
    if (base !== undefined) {
      for (let slot = 0; slot < base.count; slot++) if (filter === undefined || filter(base.facts(slot))) yield this.entryAt(slot);
    }
    for (const entry of this.entries.values()) if (filter === undefined || filter(factsOf(entry, this.scratch))) yield entry;
  }

  /** Where the entry's `rec` line is, or undefined when the model does not know. */
  linePlace(uidl: string): { offset: number; length: number } | undefined {
    const slot = this.base?.slotOf(uidl);
    if (slot !== undefined) return { offset: this.base!.lineOffset[slot]!, length: this.base!.lineLength[slot]! };
    const offset = this.lineOffsets.get(uidl);
    return offset === undefined ? undefined : { offset, length: this.lineLengths.get(uidl)! };
  }

  /** Apply one record (replay and live writes share this); `lineOffset`: where its line is in the log. */
  apply(record: LedgerRecord, lineBytes: number, lineOffset?: number): void {
    switch (record.t) {
      case 'hdr':
        if (record.v > LEDGER_FORMAT_VERSION) {
          throw new Error(`ledger format version ${record.v} is newer than this popdrain's (${LEDGER_FORMAT_VERSION})`);
        }
        if (record.mailboxId !== this.mailboxId) {
          throw new Error(`ledger belongs to mailbox ${JSON.stringify(record.mailboxId)}`);
        }
        return;
      case 'rec':
        this.set(record.e, lineBytes, lineOffset);
        this.recordBytes += lineBytes;
        this.recordLines++;
        return;
      case 'ann':
        for (const uidl of record.u) {
          const entry = this.entries.get(uidl);
          if (entry !== undefined) markAnnounced(entry, record.at);
          else this.onBase(uidl, (object) => markAnnounced(object, record.at), (base, slot) => base.markAnnounced(slot, record.at));
        }
        return;
      case 'del':
        for (const uidl of record.u) {
          const entry = this.entries.get(uidl);
          if (entry !== undefined) markDeleted(entry, record.at, record.exp);
          else this.onBase(uidl, (object) => markDeleted(object, record.at, record.exp), (base, slot) => base.markDeleted(slot, record.at, record.exp));
        }
        return;
      case 'st':
        this.state = record.s;
        return;
      default:
        // A record type of a newer format: the header would have said so. Ignore it.
        return;
    }
  }

  /** Of `uidls`, those whose entries an `ann` record would change. */
  toAnnounce(uidls: readonly string[]): string[] {
    const out: string[] = [];
    for (const uidl of new Set(uidls)) {
      const entry = this.facts(uidl);
      if (entry !== undefined && entry.status !== 'imported' && (entry.status === 'stored' || entry.announcedAt === undefined)) out.push(uidl);
    }
    return out;
  }

  /** Of `uidls`, those whose entries a `del` record would change. */
  toDelete(uidls: readonly string[], expiresAt: number): string[] {
    const out: string[] = [];
    for (const uidl of new Set(uidls)) {
      const entry = this.facts(uidl);
      if (entry !== undefined && (entry.deletedAt === undefined || entry.expiresAt !== expiresAt)) out.push(uidl);
    }
    return out;
  }

  /** The records of a snapshot: header, live entries, state. */
  snapshot(nowMs: number): LedgerRecord[] {
    const out: LedgerRecord[] = [{ t: 'hdr', v: LEDGER_FORMAT_VERSION, mailboxId: this.mailboxId }];
    for (const entry of this.values((f) => !isExpired(f, nowMs))) out.push({ t: 'rec', e: entry });
    out.push({ t: 'st', s: this.state });
    return out;
  }

  private set(entry: LedgerEntry, lineBytes: number, lineOffset: number | undefined): void {
    const slot = this.base?.slotOf(entry.uidl);
    if (slot !== undefined) {
      // Recorded again (an imported entry replaced): the new entry is the slot's truth.
      const base = this.base!;
      base.objects.set(slot, entry);
      base.lineOffset[slot] = lineOffset ?? NaN;
      base.lineLength[slot] = lineBytes - 1;
      return;
    }
    this.entries.set(entry.uidl, entry);
    if (lineOffset === undefined) {
      this.lineOffsets.delete(entry.uidl);
    } else {
      this.lineOffsets.set(entry.uidl, lineOffset);
      this.lineLengths.set(entry.uidl, lineBytes - 1);
    }
  }

  private onBase(uidl: string, onObject: (entry: LedgerEntry) => void, onColumns: (base: CompactEntries, slot: number) => void): void {
    const slot = this.base?.slotOf(uidl);
    if (slot === undefined) return;
    const object = this.base!.objects.get(slot);
    if (object !== undefined) onObject(object);
    else onColumns(this.base!, slot);
  }

  /** The slot's entry: its object, or read from its line in the log with the columns applied. */
  private entryAt(slot: number): LedgerEntry {
    const base = this.base!;
    const known = base.objects.get(slot);
    if (known !== undefined) return known;
    const offset = base.lineOffset[slot]!;
    const line = this.baseSource!.read(offset, base.lineLength[slot]!);
    const record = decodeLine(line, this.baseSource, offset);
    if (record?.t !== 'rec' || record.e.uidl !== base.uidlAt(slot)) {
      throw new DrainError('LEDGER_FAILED', `the ledger index of mailbox ${this.mailboxId} points at a line of the log that is not the entry of UIDL ${base.uidlAt(slot)}`, {
        phase: 'ledger',
        retryable: false,
      });
    }
    const entry = base.withColumns(slot, record.e);
    base.objects.set(slot, entry);
    return entry;
  }
}

/** An entry past its expiry (epoch seconds), which compaction drops as DynamoDB's TTL would. */
export function isExpired(entry: Pick<LedgerEntry, 'expiresAt'>, nowMs: number): boolean {
  return entry.expiresAt !== undefined && entry.expiresAt * 1000 <= nowMs;
}

/**
 * Announced: a stored entry becomes 'announced'; a skipped one stays 'skipped' (it is never
 * deleted) and only gains `announcedAt`. The first announcement's time is kept. Changes the
 * model's own entry in place (callers only ever get copies).
 */
function markAnnounced(entry: LedgerEntry, at: number): void {
  if (entry.status === 'stored') entry.status = 'announced';
  entry.announcedAt ??= at;
}

/** Deleted from the server: the first deletion's time is kept, the expiry is the latest one. */
function markDeleted(entry: LedgerEntry, at: number, expiresAt: number): void {
  entry.deletedAt ??= at;
  entry.expiresAt = expiresAt;
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
