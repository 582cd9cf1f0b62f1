/**
 * The format of a mailbox's ledger index, `<dir>/<mailboxId>.ledger-index`, with no I/O
 * (ledger-index-file.ts reads and writes it). The log stays the truth: the index is what replaying
 * a prefix of the log gave (each entry's fields and the place of its `rec` line, the mailbox
 * state), so a load reads the index and replays only the records appended after that prefix.
 * An index that does not match its log (another file, a shorter log, other bytes at the ends of
 * the prefix it covers) is ignored: `indexProblem` says why.
 *
 *   8 bytes   magic "PDLIDX03"
 *   u32le     header length, then the header's JSON (IndexHeader), zero bytes up to a multiple of 8
 *   columns   count f64le each, in this order: size, firstSeenAt, announcedAt, deletedAt,
 *             expiresAt (NaN: none), lineOffset, lineLength (of the entry's `rec` line, without
 *             its newline); then count u8 status codes (STATUS_CODES), zero bytes up to a
 *             multiple of 4
 *   UIDLs     count + 1 u32le offsets (slot i's UIDL is bytes [start i, start i+1) of the UIDL
 *             bytes), tableSize u32le buckets (the hash table of uidl-table.ts: slot + 1, 0 when
 *             empty), then the UIDLs' UTF-8 bytes one after another
 *   u32le     crc32 of every byte before it (a torn or damaged index fails it)
 *
 * Everything a lookup needs is laid out as it is used, so a load checks the checksum and the
 * shape and views the file's bytes: no copy, no hashing, no object per entry (a little-endian
 * host's typed arrays; a big-endian host finds the index unusable and replays the log).
 */
import { endianness } from 'node:os';
import type { MailboxStateFields } from './ledger-log.js';
import { CompactEntries, F64_COLUMNS, STATUS_CODES, type EntryColumns, type EntryFacts } from './compact-entries.js';
import { crc32 } from './crc32.js';
import { UidlTable, tableSizeFor } from './uidl-table.js';

export const LEDGER_INDEX_VERSION = 3;
const MAGIC = Buffer.from('PDLIDX03', 'latin1');
const LITTLE_ENDIAN = endianness() === 'LE';

export interface IndexHeader {
  v: number;
  mailboxId: string;
  /** The log file the index was built from: its inode and birth time (0 where the file system has none). */
  ino: number;
  birthtimeMs: number;
  /** The bytes of the log covered (a prefix, whole lines). */
  coveredBytes: number;
  /**
   * The crc32 of the covered prefix's first and last CHECK_WINDOW_BYTES (both the whole prefix
   * when it is shorter): see indexProblem for what they tell and what they do not.
   */
  headCrc: number;
  tailCrc: number;
  count: number;
  /** Buckets of the UIDL hash table (uidl-table.ts tableSizeFor). */
  tableSize: number;
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
const pad4 = (n: number): number => (n + 3) & ~3;

/** Where each part starts, for `count` entries after a header of `headerBytes`. */
function layout(headerBytes: number, count: number, tableSize: number, uidlBytes: number) {
  const columnsAt = pad8(MAGIC.length + 4 + headerBytes);
  const statusAt = columnsAt + F64_COLUMNS.length * 8 * count;
  const startsAt = pad4(statusAt + count);
  const bucketsAt = startsAt + 4 * (count + 1);
  const uidlsAt = bucketsAt + 4 * tableSize;
  return { columnsAt, statusAt, startsAt, bucketsAt, uidlsAt, end: uidlsAt + uidlBytes };
}

/** Throws when a UIDL occurs twice (a model never holds one twice). */
export function encodeIndex(header: Omit<IndexHeader, 'v' | 'count' | 'tableSize'>, rows: readonly IndexRow[]): Buffer {
  const count = rows.length;
  const uidls = rows.map((r) => Buffer.from(r.uidl, 'utf8'));
  const starts = new Uint32Array(count + 1);
  for (let i = 0; i < count; i++) starts[i + 1] = starts[i]! + uidls[i]!.length;
  const uidlBytes = Buffer.concat(uidls);
  const table = UidlTable.build(uidlBytes, starts);
  const tableSize = tableSizeFor(count);
  const headerJson = Buffer.from(JSON.stringify({ v: LEDGER_INDEX_VERSION, ...header, count, tableSize }), 'utf8');
  const at = layout(headerJson.length, count, tableSize, uidlBytes.length);
  const out = Buffer.alloc(at.end + 4);
  MAGIC.copy(out, 0);
  out.writeUInt32LE(headerJson.length, MAGIC.length);
  headerJson.copy(out, MAGIC.length + 4);
  for (let i = 0; i < count; i++) {
    const { facts, lineOffset, lineLength } = rows[i]!;
    const values = [facts.size, facts.firstSeenAt, facts.announcedAt ?? NaN, facts.deletedAt ?? NaN, facts.expiresAt ?? NaN, lineOffset, lineLength];
    for (let c = 0; c < F64_COLUMNS.length; c++) out.writeDoubleLE(values[c]!, at.columnsAt + (c * count + i) * 8);
    out[at.statusAt + i] = STATUS_CODES.indexOf(facts.status);
  }
  const { buckets } = table.parts();
  for (let i = 0; i <= count; i++) out.writeUInt32LE(starts[i]!, at.startsAt + 4 * i);
  for (let b = 0; b < tableSize; b++) out.writeUInt32LE(buckets[b]!, at.bucketsAt + 4 * b);
  uidlBytes.copy(out, at.uidlsAt);
  out.writeUInt32LE(crc32(out.subarray(0, at.end)), at.end);
  return out;
}

export type DecodedIndex = { header: IndexHeader; entries: CompactEntries } | { problem: string };

/**
 * The index in `data`, or why it cannot be used (torn, damaged, another version). The entries
 * view `data`'s bytes (copied once if they are not 8-byte aligned): the caller gives them up.
 */
export function decodeIndex(data: Buffer): DecodedIndex {
  if (data.length < MAGIC.length + 8 || !data.subarray(0, MAGIC.length).equals(MAGIC)) return { problem: 'not a ledger index of this version' };
  if (!LITTLE_ENDIAN) return { problem: 'this host is big-endian' };
  const end = data.length - 4;
  if (crc32(data.subarray(0, end)) !== data.readUInt32LE(end)) return { problem: 'torn or damaged (checksum)' };
  const headerBytes = data.readUInt32LE(MAGIC.length);
  if (MAGIC.length + 4 + headerBytes > end) return { problem: 'damaged (header length)' };
  const header = parseHeader(data.toString('utf8', MAGIC.length + 4, MAGIC.length + 4 + headerBytes));
  if (typeof header === 'string') return { problem: header };
  const { count, tableSize } = header;
  if (tableSize !== tableSizeFor(count)) return { problem: 'damaged (table size)' };
  const at = layout(headerBytes, count, tableSize, 0);
  if (at.uidlsAt > end) return { problem: 'damaged (shorter than its entries)' };
  const bytes = data.byteOffset % 8 === 0 ? data : Buffer.copyBytesFrom(data);
  const u32 = (from: number, length: number): Uint32Array => new Uint32Array(bytes.buffer, bytes.byteOffset + from, length);
  const starts = u32(at.startsAt, count + 1);
  const buckets = u32(at.bucketsAt, tableSize);
  const shape = tableShapeProblem(starts, buckets, end - at.uidlsAt);
  if (shape !== undefined) return { problem: `damaged (${shape})` };
  const status = new Uint8Array(bytes.buffer, bytes.byteOffset + at.statusAt, count);
  for (let i = 0; i < count; i++) if (status[i]! >= STATUS_CODES.length) return { problem: `damaged (status code ${status[i]})` };
  const f64 = (c: number): Float64Array => new Float64Array(bytes.buffer, bytes.byteOffset + at.columnsAt + c * 8 * count, count);
  const columns = { status } as EntryColumns;
  F64_COLUMNS.forEach((name, c) => (columns[name] = f64(c)));
  const uidls = new UidlTable(new Uint8Array(bytes.buffer, bytes.byteOffset + at.uidlsAt, end - at.uidlsAt), starts, buckets);
  return { header, entries: new CompactEntries(count, uidls, columns) };
}

/**
 * What a lookup needs to end: offsets from 0 to the UIDL bytes' end, and an empty bucket (a probe
 * stops there). The rest of the table is what the checksum vouches for: an offset or bucket out
 * of place makes a lookup read out of range (undefined, never equal) and miss, never hit another
 * UIDL, since every hit compares the bytes. Native calls only: a load does no pass per entry.
 */
function tableShapeProblem(starts: Uint32Array, buckets: Uint32Array, uidlBytes: number): string | undefined {
  if (starts[0] !== 0 || starts[starts.length - 1] !== uidlBytes) return 'UIDL bytes';
  if (buckets.indexOf(0) === -1) return 'hash table';
  return undefined;
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
  const numbers = [h.ino, h.coveredBytes, h.headCrc, h.tailCrc, h.count, h.tableSize, h.recordBytes, h.recordLines];
  if (typeof h.birthtimeMs !== 'number' || !Number.isFinite(h.birthtimeMs)) return 'damaged (header fields)';
  if (typeof h.mailboxId !== 'string' || numbers.some((n) => typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0)) return 'damaged (header fields)';
  if (typeof h.state !== 'object' || h.state === null) return 'damaged (header state)';
  return h as IndexHeader;
}

/** Bytes at each end of the covered prefix whose crc32 an index records (headCrc, tailCrc). */
export const CHECK_WINDOW_BYTES = 64 * 1024;

/** The byte ranges [start, end) of the log whose crc32 are headCrc and tailCrc, for `coveredBytes`. */
export function checkWindows(coveredBytes: number): { head: [number, number]; tail: [number, number] } {
  return {
    head: [0, Math.min(coveredBytes, CHECK_WINDOW_BYTES)],
    tail: [Math.max(0, coveredBytes - CHECK_WINDOW_BYTES), coveredBytes],
  };
}

/** The log an index is checked against: the file loaded now. */
export interface LogFacts {
  mailboxId: string;
  ino: number;
  birthtimeMs: number;
  /** The file's size now. */
  bytes: number;
}

/**
 * Why the index does not describe this log (undefined: it does): another mailbox, another file
 * (inode, or birth time: an inode number reused by a later file), a log shorter than what it
 * covers (truncated, replaced), or, given `windows` (the crc32 of checkWindows' ranges of the log
 * now), other bytes at either end of the covered prefix. Ask first without `windows`, then read
 * the two ranges and ask again with them.
 *
 * What this tells. Every writer of a log appends whole lines after the bytes an index covers,
 * truncates only a torn tail past them, and replaces the log only by renaming another file over
 * it (a compaction, a set-aside log): the covered bytes of a file never change in place. So the
 * index describes the log while the file is the one it was built from (inode and birth time) and
 * at least as long. The head and tail windows add what is cheap to catch of a log written in
 * place by something else: another log copied over it (`cat other > log`, a restore), a file
 * cut and rewritten, a boundary that is no longer the end of a line; and an inode number reused
 * where the file system has no birth time. What they do not catch: bytes changed in place in
 * the middle of the covered prefix by hand (same inode, same ends), or decayed there on the
 * disk. Checking those took a read and crc32 of the whole log at every load (~26 ms of a rerun's
 * CPU for a 21 MB log, and the file read from disk when not cached), which is why it went. Such
 * an edit also breaks the line's own checksum: a replay without the index reports the log
 * unreadable; through the index, the entry keeps the fields the index holds, and reading it
 * whole (a re-announcement, a deletion, a compaction) fails with LEDGER_FAILED naming it. No
 * message is taken for stored that the log did not record as stored when the index was built.
 */
export function indexProblem(header: IndexHeader, log: LogFacts, windows?: { headCrc: number; tailCrc: number }): string | undefined {
  if (header.mailboxId !== log.mailboxId) return `it belongs to mailbox ${JSON.stringify(header.mailboxId)}`;
  if (header.ino !== log.ino || header.birthtimeMs !== log.birthtimeMs) return 'it was built from another file (the log was replaced since)';
  if (header.coveredBytes === 0 || header.coveredBytes > log.bytes) return `it covers ${header.coveredBytes} bytes and the log has ${log.bytes}`;
  if (windows !== undefined && (windows.headCrc !== header.headCrc || windows.tailCrc !== header.tailCrc)) return 'the bytes of the log it covers changed (at its start or its end)';
  return undefined;
}
