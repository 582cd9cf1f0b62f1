/**
 * The format of a mailbox's ledger index, `<dir>/<mailboxId>.ledger-index`, with no I/O
 * (ledger-index-file.ts reads and writes it). The log stays the truth: the index is what replaying
 * a prefix of the log gave (each entry's fields and the place of its `rec` line, the mailbox
 * state), so a load reads the index and replays only the records appended after that prefix.
 * An index that does not match its log (another file, a shorter log, other bytes in the prefix
 * it covers) is ignored: `indexProblem` says why.
 *
 *   8 bytes   magic "PDLIDX02"
 *   u32le     header length, then the header's JSON (IndexHeader), zero bytes up to a multiple of 8
 *   columns   count f64le each, in this order: size, firstSeenAt, announcedAt, deletedAt,
 *             expiresAt (NaN: none), lineOffset, lineLength (of the entry's `rec` line, without
 *             its newline); then count u8 status codes (STATUS_CODES)
 *   UIDLs     count u16le byte lengths, then the UIDLs' UTF-8 bytes one after another
 *   u32le     crc32 of every byte before it (a torn or damaged index fails it)
 *
 * Columns, not rows, so a load copies each one whole (a little-endian host's Float64Array); a
 * big-endian host finds the index unusable and replays the log.
 */
import { endianness } from 'node:os';
import { isAscii } from 'node:buffer';
import type { MailboxStateFields } from './ledger-log.js';
import { CompactEntries, STATUS_CODES, type EntryFacts } from './compact-entries.js';
import { crc32 } from './crc32.js';
import { UidlTable } from './uidl-table.js';

export const LEDGER_INDEX_VERSION = 2;
const MAGIC = Buffer.from('PDLIDX02', 'latin1');
const MAX_UIDL_BYTES = 0xffff;
const LITTLE_ENDIAN = endianness() === 'LE';
/** The f64 columns, in the file's order. */
const COLUMNS = ['size', 'firstSeenAt', 'announcedAt', 'deletedAt', 'expiresAt', 'lineOffset', 'lineLength'] as const;

export interface IndexHeader {
  v: number;
  mailboxId: string;
  /** The log file the index was built from (its inode), the bytes of it covered, their crc32. */
  ino: number;
  coveredBytes: number;
  coveredCrc: number;
  count: number;
  /** The model's compaction estimate (ledger-log.ts LedgerModel) after the covered bytes. */
  recordBytes: number;
  recordLines: number;
  /** The mailbox state after the covered bytes. */
  state: MailboxStateFields;
}

/** One entry as the index stores it. */
export interface IndexRow {
  uidl: string;
  facts: EntryFacts;
  lineOffset: number;
  lineLength: number;
}

const pad8 = (n: number): number => (n + 7) & ~7;

export function encodeIndex(header: Omit<IndexHeader, 'v' | 'count'>, rows: readonly IndexRow[]): Buffer {
  const count = rows.length;
  const headerJson = Buffer.from(JSON.stringify({ v: LEDGER_INDEX_VERSION, ...header, count }), 'utf8');
  const columnsAt = pad8(MAGIC.length + 4 + headerJson.length);
  const uidls = rows.map((r) => Buffer.from(r.uidl, 'utf8'));
  let uidlBytes = 0;
  for (const u of uidls) {
    if (u.length > MAX_UIDL_BYTES) throw new Error(`a UIDL of ${u.length} bytes does not fit the ledger index`);
    uidlBytes += u.length;
  }
  const statusAt = columnsAt + COLUMNS.length * 8 * count;
  const lengthsAt = statusAt + count;
  const end = lengthsAt + 2 * count + uidlBytes;
  const out = Buffer.alloc(end + 4);
  MAGIC.copy(out, 0);
  out.writeUInt32LE(headerJson.length, MAGIC.length);
  headerJson.copy(out, MAGIC.length + 4);
  for (let i = 0; i < count; i++) {
    const { facts, lineOffset, lineLength } = rows[i]!;
    const values = [facts.size, facts.firstSeenAt, facts.announcedAt ?? NaN, facts.deletedAt ?? NaN, facts.expiresAt ?? NaN, lineOffset, lineLength];
    for (let c = 0; c < COLUMNS.length; c++) out.writeDoubleLE(values[c]!, columnsAt + (c * count + i) * 8);
    out[statusAt + i] = STATUS_CODES.indexOf(facts.status);
    out.writeUInt16LE(uidls[i]!.length, lengthsAt + 2 * i);
  }
  let at = lengthsAt + 2 * count;
  for (const u of uidls) at += u.copy(out, at);
  out.writeUInt32LE(crc32(out.subarray(0, end)), end);
  return out;
}

export type DecodedIndex = { header: IndexHeader; entries: CompactEntries } | { problem: string };

/** The index in `data`, or why it cannot be used (torn, damaged, another version). */
export function decodeIndex(data: Buffer): DecodedIndex {
  if (data.length < MAGIC.length + 8 || !data.subarray(0, MAGIC.length).equals(MAGIC)) return { problem: 'not a ledger index of this version' };
  if (!LITTLE_ENDIAN) return { problem: 'this host is big-endian' };
  const end = data.length - 4;
  if (crc32(data.subarray(0, end)) !== data.readUInt32LE(end)) return { problem: 'torn or damaged (checksum)' };
  const headerBytes = data.readUInt32LE(MAGIC.length);
  if (MAGIC.length + 4 + headerBytes > end) return { problem: 'damaged (header length)' };
  const header = parseHeader(data.toString('utf8', MAGIC.length + 4, MAGIC.length + 4 + headerBytes));
  if (typeof header === 'string') return { problem: header };
  const count = header.count;
  const columnsAt = pad8(MAGIC.length + 4 + headerBytes);
  const statusAt = columnsAt + COLUMNS.length * 8 * count;
  const lengthsAt = statusAt + count;
  if (lengthsAt + 2 * count > end) return { problem: 'damaged (shorter than its entries)' };
  const lengths = new Uint16Array(count);
  let total = 0;
  for (let i = 0; i < count; i++) total += lengths[i] = data.readUInt16LE(lengthsAt + 2 * i);
  const uidlsAt = lengthsAt + 2 * count;
  if (uidlsAt + total !== end) return { problem: 'damaged (UIDL bytes)' };
  // Copied: the rest of the file's bytes need not stay.
  const uidlBytes = Buffer.copyBytesFrom(data, uidlsAt, total);
  let uidls: UidlTable;
  try {
    uidls = new UidlTable(uidlBytes, lengths, isAscii(uidlBytes));
  } catch {
    return { problem: 'damaged (a UIDL twice)' };
  }
  const entries = new CompactEntries(count, uidls);
  for (let c = 0; c < COLUMNS.length; c++) {
    // Copied out of the file's bytes (a Float64Array needs them aligned).
    const column = new Uint8Array(data.buffer, data.byteOffset + columnsAt + c * 8 * count, 8 * count);
    new Uint8Array(entries[COLUMNS[c]!].buffer).set(column);
  }
  entries.status.set(data.subarray(statusAt, statusAt + count));
  for (let i = 0; i < count; i++) if (entries.status[i]! >= STATUS_CODES.length) return { problem: `damaged (status code ${entries.status[i]})` };
  return { header, entries };
}

function parseHeader(json: string): IndexHeader | string {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return 'damaged (header)';
  }
  const h = value as Partial<IndexHeader> | null;
  if (typeof h !== 'object' || h === null) return 'damaged (header)';
  if (h.v !== LEDGER_INDEX_VERSION) return `version ${String(h.v)}, not ${LEDGER_INDEX_VERSION}`;
  const numbers = [h.ino, h.coveredBytes, h.coveredCrc, h.count, h.recordBytes, h.recordLines];
  if (typeof h.mailboxId !== 'string' || numbers.some((n) => typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0)) return 'damaged (header fields)';
  if (typeof h.state !== 'object' || h.state === null) return 'damaged (header state)';
  return h as IndexHeader;
}

/** The log an index is checked against: the file loaded now. */
export interface LogFacts {
  mailboxId: string;
  ino: number;
  /** The file's size now. */
  bytes: number;
}

/**
 * Why the index does not describe this log (undefined: it does): another mailbox, another file,
 * a log shorter than what it covers (truncated, replaced), or, given `prefixCrc` (the crc32 of
 * the log's first `coveredBytes` bytes now), bytes that changed. Ask first without `prefixCrc`,
 * then read the prefix and ask again with it.
 */
export function indexProblem(header: IndexHeader, log: LogFacts, prefixCrc?: number): string | undefined {
  if (header.mailboxId !== log.mailboxId) return `it belongs to mailbox ${JSON.stringify(header.mailboxId)}`;
  if (header.ino !== log.ino) return 'it was built from another file (the log was replaced since)';
  if (header.coveredBytes === 0 || header.coveredBytes > log.bytes) return `it covers ${header.coveredBytes} bytes and the log has ${log.bytes}`;
  if (prefixCrc !== undefined && prefixCrc !== header.coveredCrc) return 'the bytes of the log it covers changed';
  return undefined;
}
