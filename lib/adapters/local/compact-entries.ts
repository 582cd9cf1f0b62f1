/**
 * A mailbox's ledger entries as columns, loaded from its index (ledger-index-codec.ts): per
 * entry the UIDL, the fields a run's triage and the ledger's counts read (status, size, first
 * seen, announced, deleted, expiry) and the place of its `rec` line in the log. No object per
 * entry: an entry is read from its line in the log the first time a caller needs it whole
 * (ledger-log.ts, LedgerModel), and from then on that object is the slot's truth.
 */
import type { LedgerEntry, LedgerStatus } from '../../drain/ports.js';
import type { UidlTable } from './uidl-table.js';

/** Status codes as the index stores them. */
export const STATUS_CODES: readonly LedgerStatus[] = ['stored', 'announced', 'skipped', 'imported'];

/** The fields of an entry that columns hold (all but the key, sha256 and event). */
export interface EntryFacts {
  status: LedgerStatus;
  size: number;
  firstSeenAt: number;
  announcedAt: number | undefined;
  deletedAt: number | undefined;
  expiresAt: number | undefined;
}

/** The f64 columns, in the order the index file holds them. */
export const F64_COLUMNS = ['size', 'firstSeenAt', 'announcedAt', 'deletedAt', 'expiresAt', 'lineOffset', 'lineLength'] as const;

/** An entry's columns, each `count` long. */
export type EntryColumns = { status: Uint8Array } & Record<(typeof F64_COLUMNS)[number], Float64Array>;

export class CompactEntries {
  readonly status: Uint8Array;
  readonly size: Float64Array;
  readonly firstSeenAt: Float64Array;
  /** NaN: undefined. */
  readonly announcedAt: Float64Array;
  readonly deletedAt: Float64Array;
  readonly expiresAt: Float64Array;
  /** Where the entry's `rec` line is in the log (its first byte, its length without the newline). */
  readonly lineOffset: Float64Array;
  readonly lineLength: Float64Array;
  /** Entries read whole (or recorded again) since the load: the slot's truth from then on. */
  readonly objects = new Map<number, LedgerEntry>();
  /** One object reused by `facts` (read it before the next call). */
  private readonly scratch: EntryFacts = { status: 'stored', size: 0, firstSeenAt: 0, announcedAt: undefined, deletedAt: undefined, expiresAt: undefined };

  /**
   * `uidls`: the slots' UIDLs (slot i is the i-th); `columns`: the columns as the index file
   * holds them (views of its bytes, written to by mark*), or fresh ones (zeros) to be filled.
   */
  constructor(
    readonly count: number,
    private readonly uidls: UidlTable,
    columns?: EntryColumns,
  ) {
    this.status = columns?.status ?? new Uint8Array(count);
    this.size = columns?.size ?? new Float64Array(count);
    this.firstSeenAt = columns?.firstSeenAt ?? new Float64Array(count);
    this.announcedAt = columns?.announcedAt ?? new Float64Array(count);
    this.deletedAt = columns?.deletedAt ?? new Float64Array(count);
    this.expiresAt = columns?.expiresAt ?? new Float64Array(count);
    this.lineOffset = columns?.lineOffset ?? new Float64Array(count);
    this.lineLength = columns?.lineLength ?? new Float64Array(count);
  }

  /** The slot of `uidl`, or undefined. */
  slotOf(uidl: string): number | undefined {
    return this.uidls.slotOf(uidl);
  }

  uidlAt(slot: number): string {
    return this.uidls.uidlAt(slot);
  }

  /** The slot's fields (its object's, once it has one), in an object reused by the next call. */
  facts(slot: number): EntryFacts {
    const object = this.objects.size === 0 ? undefined : this.objects.get(slot);
    if (object !== undefined) return factsOf(object, this.scratch);
    return columnFacts(this, slot, this.scratch);
  }

  /** How many entries are past their expiry at `nowMs` (ledger-log.ts isExpired), from the column. */
  countExpired(nowMs: number): number {
    let n = 0;
    const expiresAt = this.expiresAt;
    // NaN (none) never compares true.
    for (let slot = 0; slot < this.count; slot++) if (expiresAt[slot]! * 1000 <= nowMs) n++;
    // Entries read whole since the load hold their own expiry.
    for (const [slot, entry] of this.objects) {
      const before = expiresAt[slot]! * 1000 <= nowMs;
      const now = entry.expiresAt !== undefined && entry.expiresAt * 1000 <= nowMs;
      n += Number(now) - Number(before);
    }
    return n;
  }

  /** Announced (ledger-log.ts markAnnounced, on the columns): a stored entry becomes announced, the first time stays. */
  markAnnounced(slot: number, at: number): void {
    if (STATUS_CODES[this.status[slot]!] === 'stored') this.status[slot] = STATUS_CODES.indexOf('announced');
    if (Number.isNaN(this.announcedAt[slot]!)) this.announcedAt[slot] = at;
  }

  /** Deleted from the server (markDeleted on the columns): the first time stays, the expiry is the latest. */
  markDeleted(slot: number, at: number, expiresAt: number): void {
    if (Number.isNaN(this.deletedAt[slot]!)) this.deletedAt[slot] = at;
    this.expiresAt[slot] = expiresAt;
  }

  /**
   * The entry read from its line (`decoded`), with what the columns hold since: the status, and
   * the announcement and deletion recorded after the line (set as replay sets them).
   */
  withColumns(slot: number, decoded: LedgerEntry): LedgerEntry {
    return entryWithColumns(this, slot, decoded);
  }
}

/** `decoded` (an entry read from its line) with what a slot's columns hold since: as CompactEntries.withColumns. */
export function entryWithColumns(columns: EntryColumns, slot: number, decoded: LedgerEntry): LedgerEntry {
  decoded.status = STATUS_CODES[columns.status[slot]!]!;
  const announcedAt = columns.announcedAt[slot]!;
  if (!Number.isNaN(announcedAt) && decoded.announcedAt === undefined) decoded.announcedAt = announcedAt;
  const deletedAt = columns.deletedAt[slot]!;
  if (!Number.isNaN(deletedAt) && decoded.deletedAt === undefined) decoded.deletedAt = deletedAt;
  const expiresAt = columns.expiresAt[slot]!;
  if (!Number.isNaN(expiresAt)) decoded.expiresAt = expiresAt;
  return decoded;
}

/** An entry's facts, into `into`. */
export function factsOf(entry: LedgerEntry, into: EntryFacts): EntryFacts {
  into.status = entry.status;
  into.size = entry.size;
  into.firstSeenAt = entry.firstSeenAt;
  into.announcedAt = entry.announcedAt;
  into.deletedAt = entry.deletedAt;
  into.expiresAt = entry.expiresAt;
  return into;
}

/** A slot's facts read from its columns (NaN: none), into `into`. */
export function columnFacts(columns: EntryColumns, slot: number, into: EntryFacts): EntryFacts {
  into.status = STATUS_CODES[columns.status[slot]!]!;
  into.size = columns.size[slot]!;
  into.firstSeenAt = columns.firstSeenAt[slot]!;
  into.announcedAt = definedOrUndefined(columns.announcedAt[slot]!);
  into.deletedAt = definedOrUndefined(columns.deletedAt[slot]!);
  into.expiresAt = definedOrUndefined(columns.expiresAt[slot]!);
  return into;
}

function definedOrUndefined(value: number): number | undefined {
  return Number.isNaN(value) ? undefined : value;
}
