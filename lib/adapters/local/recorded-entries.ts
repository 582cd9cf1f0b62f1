/**
 * The entries this ledger recorded itself, once their lines are durable in the log, as columns:
 * per entry the UIDL, the fields a run's triage, announcements and counts read (status, size,
 * first seen, announced, deleted, expiry) and the place of its `rec` line in the log. No object
 * per entry: an entry is read from its line (`source`) the first time a caller needs it whole,
 * and from then on that object is the slot's truth (as compact-entries.ts does for an index's).
 *
 * A first drain of 20,000 messages kept an object per entry with its fields, its event text and
 * three map entries: 10-15 MB of live heap that the collector traced on every full collection
 * and that let the heap grow to ~2.5 times the live set.
 */
import { DrainError } from '../../drain/errors.js';
import type { LedgerEntry } from '../../drain/ports.js';
import { columnFacts, entryWithColumns, factsOf, STATUS_CODES, type EntryFacts } from './compact-entries.js';
import type { LogEventSource } from './log-event-source.js';

const FIRST_CAPACITY = 1024;

/** How a slot's entry is read whole from its log line (ledger-log.ts decodeLine). */
export type LineDecoder = (line: Buffer, source: LogEventSource, offset: number) => LedgerEntry | undefined;

export class RecordedEntries {
  count = 0;
  private readonly slots = new Map<string, number>();
  private uidls: string[] = [];
  // The columns (an EntryColumns, read by compact-entries.ts columnFacts); written only here.
  status = new Uint8Array(FIRST_CAPACITY);
  size = new Float64Array(FIRST_CAPACITY);
  firstSeenAt = new Float64Array(FIRST_CAPACITY);
  /** NaN: undefined. */
  announcedAt = new Float64Array(FIRST_CAPACITY);
  deletedAt = new Float64Array(FIRST_CAPACITY);
  expiresAt = new Float64Array(FIRST_CAPACITY);
  /** Where the entry's `rec` line is in the log (its first byte, its length without the newline). */
  lineOffset = new Float64Array(FIRST_CAPACITY);
  lineLength = new Float64Array(FIRST_CAPACITY);
  /** Entries read whole (or recorded again) since they became columns: the slot's truth from then on. */
  readonly objects = new Map<number, LedgerEntry>();
  private readonly scratch: EntryFacts = { status: 'stored', size: 0, firstSeenAt: 0, announcedAt: undefined, deletedAt: undefined, expiresAt: undefined };

  /** `source`: the log the lines are read from (the inode the offsets are of). */
  constructor(
    readonly source: LogEventSource,
    private readonly decode: LineDecoder,
  ) {}

  slotOf(uidl: string): number | undefined {
    return this.slots.get(uidl);
  }

  uidlAt(slot: number): string {
    return this.uidls[slot]!;
  }

  /** A new slot for `uidl` with these facts and line. */
  add(uidl: string, facts: EntryFacts, offset: number, length: number): void {
    if (this.count === this.status.length) this.grow();
    const slot = this.count++;
    this.slots.set(uidl, slot);
    this.uidls.push(uidl);
    this.status[slot] = STATUS_CODES.indexOf(facts.status);
    this.size[slot] = facts.size;
    this.firstSeenAt[slot] = facts.firstSeenAt;
    this.announcedAt[slot] = facts.announcedAt ?? NaN;
    this.deletedAt[slot] = facts.deletedAt ?? NaN;
    this.expiresAt[slot] = facts.expiresAt ?? NaN;
    this.lineOffset[slot] = offset;
    this.lineLength[slot] = length;
  }

  /** The slot's fields (its object's, once it has one), in an object reused by the next call. */
  facts(slot: number): EntryFacts {
    const f = this.scratch;
    const object = this.objects.size === 0 ? undefined : this.objects.get(slot);
    if (object !== undefined) return factsOf(object, f);
    return columnFacts(this, slot, f);
  }

  /** Where the slot's `rec` line is in the log. */
  linePlace(slot: number): { offset: number; length: number } {
    return { offset: this.lineOffset[slot]!, length: this.lineLength[slot]! };
  }

  /** Announced (ledger-log.ts markAnnounced, on the columns): a stored entry becomes announced, the first time stays. */
  markAnnounced(slot: number, at: number): void {
    if (this.status[slot] === STORED) this.status[slot] = ANNOUNCED;
    if (Number.isNaN(this.announcedAt[slot]!)) this.announcedAt[slot] = at;
  }

  /** Deleted from the server (markDeleted on the columns): the first time stays, the expiry is the latest. */
  markDeleted(slot: number, at: number, expiresAt: number): void {
    if (Number.isNaN(this.deletedAt[slot]!)) this.deletedAt[slot] = at;
    this.expiresAt[slot] = expiresAt;
  }

  /** The slot recorded again (an imported entry replaced, say): `entry` and its line are its truth. */
  replace(slot: number, entry: LedgerEntry, offset: number, length: number): void {
    this.objects.set(slot, entry);
    this.lineOffset[slot] = offset;
    this.lineLength[slot] = length;
  }

  /** The slot's entry: its object, or read from its line in the log with the columns applied. */
  entryAt(slot: number, mailboxId: string): LedgerEntry {
    const known = this.objects.get(slot);
    if (known !== undefined) return known;
    const offset = this.lineOffset[slot]!;
    const decoded = this.decode(this.source.read(offset, this.lineLength[slot]!), this.source, offset);
    if (decoded === undefined || decoded.uidl !== this.uidls[slot]) {
      throw new DrainError('LEDGER_FAILED', `the ledger of mailbox ${mailboxId} holds at offset ${offset} a line that is not the entry of UIDL ${this.uidls[slot]!}`, {
        phase: 'ledger',
        retryable: false,
      });
    }
    this.objects.set(slot, entryWithColumns(this, slot, decoded));
    return decoded;
  }

  private grow(): void {
    const capacity = this.status.length * 2;
    const status = new Uint8Array(capacity);
    status.set(this.status);
    this.status = status;
    this.size = grown(this.size, capacity);
    this.firstSeenAt = grown(this.firstSeenAt, capacity);
    this.announcedAt = grown(this.announcedAt, capacity);
    this.deletedAt = grown(this.deletedAt, capacity);
    this.expiresAt = grown(this.expiresAt, capacity);
    this.lineOffset = grown(this.lineOffset, capacity);
    this.lineLength = grown(this.lineLength, capacity);
  }
}

const STORED = STATUS_CODES.indexOf('stored');
const ANNOUNCED = STATUS_CODES.indexOf('announced');

function grown(column: Float64Array<ArrayBuffer>, capacity: number): Float64Array<ArrayBuffer> {
  const next = new Float64Array(capacity);
  next.set(column);
  return next;
}

