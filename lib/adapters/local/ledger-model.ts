/**
 * A mailbox's ledger in memory, as replaying its log (ledger-log.ts) gives it: the entries, the
 * mailbox state, and what the compaction estimate and the index need of them.
 */
import { DrainError } from '../../drain/errors.js';
import type { LedgerEntry } from '../../drain/ports.js';
import { factsOf, type CompactEntries, type EntryFacts } from './compact-entries.js';
import { decodeLine, LEDGER_FORMAT_VERSION, type LedgerRecord, type MailboxStateFields } from './ledger-log.js';
import type { LogEventSource } from './log-event-source.js';
import { RecordedEntries } from './recorded-entries.js';

/** The entry of a `rec` line (read from `source` at `offset`), or undefined. */
function decodeEntryLine(line: Buffer, source: LogEventSource, offset: number): LedgerEntry | undefined {
  const record = decodeLine(line, source, offset);
  return record?.t === 'rec' ? record.e : undefined;
}

/**
 * A mailbox's ledger in memory: what replaying its log gives. Entries are objects (`entries`),
 * or, for those an index answered (ledger-index-codec.ts), columns (`base`) whose entries are read
 * from their log lines when a caller needs them whole, or, for those this ledger recorded once
 * their lines are durable (`settle`), columns too (`recorded`). A UIDL is in one of the three.
 */
export class LedgerModel {
  /** The entries as objects: all of them, or with a `base` those recorded after its prefix. */
  readonly entries = new Map<string, LedgerEntry>();
  /** The entries an index loaded, and the log they are read from when needed whole. */
  base: CompactEntries | undefined;
  baseSource: LogEventSource | undefined;
  /** The entries this ledger recorded whose lines are durable (recorded-entries.ts). */
  recorded: RecordedEntries | undefined;
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
    return this.entries.size + (this.base?.count ?? 0) + (this.recorded?.count ?? 0);
  }

  has(uidl: string): boolean {
    return this.entries.has(uidl) || this.base?.slotOf(uidl) !== undefined || this.recorded?.slotOf(uidl) !== undefined;
  }

  /** The model's own entry (read from the log if only its columns are loaded), or undefined. */
  get(uidl: string): LedgerEntry | undefined {
    const entry = this.entries.get(uidl);
    if (entry !== undefined) return entry;
    const slot = this.base?.slotOf(uidl);
    if (slot !== undefined) return this.entryAt(slot);
    const recorded = this.recorded?.slotOf(uidl);
    return recorded === undefined ? undefined : this.recorded!.entryAt(recorded, this.mailboxId);
  }

  /** The entry's fields without reading it whole, in an object reused by the next call. */
  facts(uidl: string): EntryFacts | undefined {
    // An index's load usually leaves no entry objects: no string hashed for an empty map.
    const entry = this.entries.size === 0 ? undefined : this.entries.get(uidl);
    if (entry !== undefined) return factsOf(entry, this.scratch);
    const slot = this.base?.slotOf(uidl);
    if (slot !== undefined) return this.base!.facts(slot);
    const recorded = this.recorded?.slotOf(uidl);
    return recorded === undefined ? undefined : this.recorded!.facts(recorded);
  }

  /** Every entry's fields (base first, in the index's order, then the objects, then the recorded), without reading any whole. */
  forEachFacts(fn: (facts: EntryFacts) => void): void {
    const base = this.base;
    if (base !== undefined) for (let slot = 0; slot < base.count; slot++) fn(base.facts(slot));
    for (const entry of this.entries.values()) fn(factsOf(entry, this.scratch));
    const recorded = this.recorded;
    if (recorded !== undefined) for (let slot = 0; slot < recorded.count; slot++) fn(recorded.facts(slot));
  }

  /**
   * Every entry but the base's, with its fields and the place of its line (undefined when the
   * model does not know it), until `fn` returns false; false if it did. For an index.
   */
  everyOwnEntry(fn: (uidl: string, facts: EntryFacts, place: { offset: number; length: number } | undefined) => boolean): boolean {
    for (const [uidl, entry] of this.entries) if (!fn(uidl, factsOf(entry, this.scratch), this.linePlace(uidl))) return false;
    const recorded = this.recorded;
    if (recorded === undefined) return true;
    for (let slot = 0; slot < recorded.count; slot++) if (!fn(recorded.uidlAt(slot), recorded.facts(slot), recorded.linePlace(slot))) return false;
    return true;
  }

  /** How many entries are past their expiry at `nowMs` (isExpired). */
  countExpired(nowMs: number): number {
    let n = this.base?.countExpired(nowMs) ?? 0;
    for (const entry of this.entries.values()) if (isExpired(entry, nowMs)) n++;
    const recorded = this.recorded;
    if (recorded !== undefined) for (let slot = 0; slot < recorded.count; slot++) if (isExpired(recorded.facts(slot), nowMs)) n++;
    return n;
  }

  /** The entries whose fields pass `filter` (every entry without one), read whole, in the order of forEachFacts. */
  *values(filter?: (facts: EntryFacts) => boolean): IterableIterator<LedgerEntry> {
    const base = this.base;
    if (base !== undefined) {
      for (let slot = 0; slot < base.count; slot++) if (filter === undefined || filter(base.facts(slot))) yield this.entryAt(slot);
    }
    for (const entry of this.entries.values()) if (filter === undefined || filter(factsOf(entry, this.scratch))) yield entry;
    const recorded = this.recorded;
    if (recorded !== undefined) {
      for (let slot = 0; slot < recorded.count; slot++) {
        if (filter === undefined || filter(recorded.facts(slot))) yield recorded.entryAt(slot, this.mailboxId);
      }
    }
  }

  /**
   * Of `uidls`, the entries held as objects whose lines are durable in the log `source` reads
   * (the caller's batch was written and fsynced) become columns (`recorded`): read from their
   * lines again when a caller needs them whole. Imported entries stay objects.
   */
  settle(uidls: Iterable<string>, source: LogEventSource): void {
    if (this.recorded !== undefined && this.recorded.source !== source) return;
    for (const uidl of uidls) {
      const entry = this.entries.get(uidl);
      const offset = this.lineOffsets.get(uidl);
      if (entry === undefined || offset === undefined || entry.status === 'imported') continue;
      this.recorded ??= new RecordedEntries(source, decodeEntryLine);
      this.recorded.add(uidl, factsOf(entry, this.scratch), offset, this.lineLengths.get(uidl)!);
      this.entries.delete(uidl);
      this.lineOffsets.delete(uidl);
      this.lineLengths.delete(uidl);
    }
  }

  /** Where the entry's `rec` line is, or undefined when the model does not know. */
  linePlace(uidl: string): { offset: number; length: number } | undefined {
    const slot = this.base?.slotOf(uidl);
    if (slot !== undefined) return { offset: this.base!.lineOffset[slot]!, length: this.base!.lineLength[slot]! };
    const recorded = this.recorded?.slotOf(uidl);
    if (recorded !== undefined) return this.recorded!.linePlace(recorded);
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
          else this.onColumns(uidl, (object) => markAnnounced(object, record.at), (columns, slot) => columns.markAnnounced(slot, record.at));
        }
        return;
      case 'del':
        for (const uidl of record.u) {
          const entry = this.entries.get(uidl);
          if (entry !== undefined) markDeleted(entry, record.at, record.exp);
          else this.onColumns(uidl, (object) => markDeleted(object, record.at, record.exp), (columns, slot) => columns.markDeleted(slot, record.at, record.exp));
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
    const recorded = this.recorded?.slotOf(entry.uidl);
    if (recorded !== undefined) {
      this.recorded!.replace(recorded, entry, lineOffset ?? NaN, lineBytes - 1);
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

  /** The change of an `ann` or `del` record to an entry held as columns (its object, once it has one). */
  private onColumns(
    uidl: string,
    onObject: (entry: LedgerEntry) => void,
    onColumns: (columns: Pick<CompactEntries, 'markAnnounced' | 'markDeleted'>, slot: number) => void,
  ): void {
    let columns: CompactEntries | RecordedEntries | undefined = this.base;
    let slot = columns?.slotOf(uidl);
    if (slot === undefined) {
      columns = this.recorded;
      slot = columns?.slotOf(uidl);
    }
    if (columns === undefined || slot === undefined) return;
    const object = columns.objects.get(slot);
    if (object !== undefined) onObject(object);
    else onColumns(columns, slot);
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
