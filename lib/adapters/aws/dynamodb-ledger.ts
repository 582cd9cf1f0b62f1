/**
 * The UIDL ledger on DynamoDB.
 *
 * Table design (also in docs/ledger-table.md):
 *
 *   pk (S, partition key)  the mailbox id
 *   sk (S, sort key)       `m#<uidl>`  one item per message
 *                          `lease`     the mailbox's lease
 *                          `state`     the mailbox's state
 *   expiresAt (N)          the TTL attribute (epoch seconds); on-demand billing, no indexes
 *
 *   m#<uidl>  uidl (S), status (S: stored | announced | skipped), key (S), sha256 (S), size (N),
 *             firstSeenAt (N, ms), announcedAt (N, ms), deletedAt (N, ms),
 *             expiresAt (N, s: set by markDeleted, so DynamoDB forgets a message some time
 *             after the server did), event (S: the DrainEvent as JSON)
 *   lease     owner (S), leaseExpiresAt (N, ms), acquiredAt (N, ms),
 *             expiresAt (N, s: the lease's end, so a stale lease of a removed mailbox goes away)
 *   done#NN   the done set (NN = 00..15): v (N), n (N), d (B: packed UIDL, size, firstSeenAt,
 *             skipped) of the messages a run leaves alone; see dynamodb-done-set.ts
 *   state     one attribute per MailboxState field: lastRun (M), lastSuccessAt (N),
 *             backlogSince (N), uidlResetTrippedAt (N), acceptUidlReset (BOOL)
 *
 * One partition per mailbox keeps a mailbox's messages, lease and state together: `pending()`
 * and large lookups are a Query of one partition, and nothing scans the table.
 *
 * Writes are conditional: `record` puts with `attribute_not_exists(pk)` (a second run that
 * recorded the message first wins, and we return what it recorded), marks update with
 * `attribute_exists(pk)` (never a half item; an entry that is gone is left alone, as the local
 * ledger does), the lease is a conditional put/update/delete on the owner and its expiry.
 * Lease times are kept in `leaseExpiresAt` (ms) rather than in
 * `expiresAt`, whose unit (seconds) is DynamoDB's TTL's.
 *
 * `lookup` decides by size: below `lookupQueryThreshold` UIDLs it reads exactly those keys with
 * BatchGetItem (100 keys a request, in parallel; its cost grows with the number of UIDLs asked
 * for, found or not); from the threshold on it Queries the mailbox's partition (1 MB pages in
 * sequence; its cost grows with the partition's size, and a mailbox's first run, with an empty
 * partition, costs next to nothing). Asked with the run's policy (`LookupOptions`) for at least
 * DONE_SET_MIN_UIDLS UIDLs, it first reads the done set (one BatchGetItem of 16 items) and reads
 * items only for the UIDLs the set does not answer (new ones, and those the policy may delete):
 * a `keep` run's reads no longer grow by one item per kept message.
 *
 * The parts: dynamodb-done-set.ts and done-set-codec.ts (the done set), dynamodb-items.ts (keys and the item codec), dynamodb-leases.ts (the lease item),
 * dynamodb-entry-writer.ts (record and marks of one entry), dynamodb-reader.ts (GetItem,
 * BatchGetItem, Query), dynamodb-conditions.ts (argument checks, lost conditions, errors).
 *
 * Stand-in notes: dynalite has no TransactWriteItems and ignores ReturnValuesOnConditionCheckFailure,
 * so a lost condition falls back to a GetItem when the exception carries no item.
 */
import { UpdateItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DrainError, type DrainPhase } from '../../drain/errors.js';
import { triageCode } from '../../drain/listing-triage.js';
import {
  TRIAGE,
  type DrainLogger,
  type Lease,
  type LedgerEntry,
  type ListingTriage,
  type LookupOptions,
  type MailboxState,
  type MailboxStateUpdate,
  type RecordOutcome,
  type RequestMarker,
  type UidlLedger,
} from '../../drain/ports.js';
import { checkEntry, ledgerFailure } from './dynamodb-conditions.js';
import {
  entryFromItem,
  fromAttribute,
  LEDGER_PARTITION_KEY,
  LEDGER_SORT_KEY,
  messageKey,
  stateKey,
  toAttribute,
  type Item,
} from './dynamodb-items.js';
import { DynamoDbDoneSet } from './dynamodb-done-set.js';
import { DONE_SET_MIN_UIDLS, doneFromEntry, hitAnswers, keptEntry, shouldFlush, summarizable } from './done-set-codec.js';
import { DynamoDbEntryWriter } from './dynamodb-entry-writer.js';
import { DynamoDbLeases } from './dynamodb-leases.js';
import { DynamoDbReader } from './dynamodb-reader.js';
import { DynamoDbRequestMarkers } from './dynamodb-request-marker.js';
import { mapBounded } from './map-bounded.js';

export {
  LEASE_SORT_KEY,
  LEDGER_PARTITION_KEY,
  LEDGER_SORT_KEY,
  LEDGER_TTL_ATTRIBUTE,
  MESSAGE_SORT_KEY_PREFIX,
  STATE_SORT_KEY,
} from './dynamodb-items.js';
export { MAX_BATCH_GET_KEYS, MAX_UNPROCESSED_ATTEMPTS } from './dynamodb-reader.js';

/** Requests in flight at once for one ledger call. */
export const DEFAULT_LEDGER_CONCURRENCY = 16;
/** From this many UIDLs on, `lookup` Queries the partition instead of BatchGetItem. */
export const DEFAULT_LOOKUP_QUERY_THRESHOLD = 10_000;

export interface DynamoDbLedgerOptions {
  client: DynamoDBClient;
  tableName: string;
  /** Requests in flight at once for one call (record, marks, lookup chunks). @default 16 */
  concurrency?: number;
  /** From this many UIDLs on, lookup Queries the mailbox's partition. @default 10_000 */
  lookupQueryThreshold?: number;
  /**
   * Whether `lookup` with options reads the done set (summary items) first. false reads every
   * UIDL's item, as before the done set (the ledger-read bench compares both). @default true
   */
  doneSet?: boolean;
  /**
   * Where a failed done-set write is reported (one warning per shard left unwritten: the
   * mailbox id, the shard, the error's name); the write is best effort and the run goes on.
   * @default silence
   */
  logger?: DrainLogger;
  /** Waits between attempts at UnprocessedKeys (tests shorten it). @default setTimeout */
  sleep?: (ms: number) => Promise<void>;
}


export class DynamoDbLedger implements UidlLedger {
  readonly tableName: string;
  private readonly client: DynamoDBClient;
  private readonly concurrency: number;
  private readonly lookupQueryThreshold: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly reader: DynamoDbReader;
  private readonly leases: DynamoDbLeases;
  private readonly writer: DynamoDbEntryWriter;
  private readonly markers: DynamoDbRequestMarkers;
  private readonly doneSet: DynamoDbDoneSet | undefined;

  constructor(options: DynamoDbLedgerOptions) {
    this.client = options.client;
    this.tableName = options.tableName;
    this.concurrency = options.concurrency ?? DEFAULT_LEDGER_CONCURRENCY;
    this.lookupQueryThreshold = options.lookupQueryThreshold ?? DEFAULT_LOOKUP_QUERY_THRESHOLD;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.reader = new DynamoDbReader(this.client, this.tableName, this.concurrency, this.sleep);
    this.leases = new DynamoDbLeases(this.client, this.tableName, this.reader);
    this.writer = new DynamoDbEntryWriter(this.client, this.tableName, this.reader);
    this.markers = new DynamoDbRequestMarkers(this.client, this.tableName);
    this.doneSet = options.doneSet === false ? undefined : new DynamoDbDoneSet(this.client, this.tableName, this.reader, options.logger);
    const problem =
      this.tableName === ''
        ? 'tableName must not be empty'
        : !Number.isSafeInteger(this.concurrency) || this.concurrency < 1
          ? 'concurrency must be a whole number >= 1'
          : !Number.isSafeInteger(this.lookupQueryThreshold) || this.lookupQueryThreshold < 1
            ? 'lookupQueryThreshold must be a whole number >= 1'
            : undefined;
    if (problem !== undefined) {
      throw new DrainError('CONFIG_INVALID', `DynamoDB ledger: ${problem}`, { phase: 'config', retryable: false });
    }
  }

  // -----------------------------------------------------------------------------------------
  // Lease

  acquireLease(mailboxId: string, owner: string, ttlMs: number, now: number): Promise<Lease | undefined> {
    return this.leases.acquire(mailboxId, owner, ttlMs, now);
  }

  renewLease(lease: Lease, ttlMs: number, now: number): Promise<Lease> {
    return this.leases.renew(lease, ttlMs, now);
  }

  releaseLease(lease: Lease): Promise<void> {
    return this.leases.release(lease);
  }

  leaseHolder(mailboxId: string, now: number): Promise<Lease | undefined> {
    return this.leases.holder(mailboxId, now);
  }

  /**
   * The unexpired leases of many mailboxes at once (BatchGetItem), for a scheduler that skips
   * busy mailboxes. Not part of the UidlLedger port.
   */
  leaseHolders(mailboxIds: readonly string[], now: number): Promise<Map<string, Lease>> {
    return this.leases.holders(mailboxIds, now);
  }

  // -----------------------------------------------------------------------------------------
  // Mailbox state

  async getMailboxState(mailboxId: string): Promise<MailboxState> {
    const item = await this.reader.getItem(stateKey(mailboxId), `reading the state of mailbox ${mailboxId}`, 'ledger');
    return stateFromItem(mailboxId, item);
  }

  /**
   * The states of many mailboxes at once (BatchGetItem, eventually consistent: a scheduler's
   * decisions are advisory, the lease decides). Mailboxes without a state item get `{ mailboxId }`.
   * Not part of the UidlLedger port.
   */
  async mailboxStates(mailboxIds: readonly string[]): Promise<Map<string, MailboxState>> {
    const ids = [...new Set(mailboxIds)];
    const items = await this.reader.batchGetAll(ids.map(stateKey), `reading the state of ${ids.length} mailboxes`, 'ledger', false);
    const byId = new Map(items.map((item) => [item[LEDGER_PARTITION_KEY]?.S ?? '', item]));
    return new Map(ids.map((id) => [id, stateFromItem(id, byId.get(id))]));
  }

  claimRequestMarker(mailboxId: string, marker: RequestMarker, now: number): Promise<boolean> {
    return this.markers.claim(mailboxId, marker, now);
  }

  releaseRequestMarker(mailboxId: string, token: string): Promise<void> {
    return this.markers.release(mailboxId, token);
  }

  /** SET for each given field, REMOVE for each null one; fields left undefined keep their value. */
  async updateMailboxState(mailboxId: string, update: MailboxStateUpdate): Promise<void> {
    const set: string[] = [];
    const remove: string[] = [];
    const names: Record<string, string> = {};
    const values: Item = {};
    let n = 0;
    for (const [field, value] of Object.entries(update) as Array<[string, unknown]>) {
      if (value === undefined || field === 'mailboxId') continue;
      n += 1;
      names[`#f${n}`] = field;
      if (value === null) remove.push(`#f${n}`);
      else {
        set.push(`#f${n} = :v${n}`);
        values[`:v${n}`] = toAttribute(value);
      }
    }
    if (n === 0) return;
    const expression = [set.length > 0 ? `SET ${set.join(', ')}` : '', remove.length > 0 ? `REMOVE ${remove.join(', ')}` : '']
      .filter((part) => part !== '')
      .join(' ');
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: stateKey(mailboxId),
          UpdateExpression: expression,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: set.length > 0 ? values : undefined,
        }),
      );
    } catch (error) {
      throw this.failure(`updating the state of mailbox ${mailboxId}`, error, 'ledger');
    }
  }

  // -----------------------------------------------------------------------------------------
  // Messages

  /**
   * With `options` (the run's policy and clock, and the server's whole listing as `uidls`), the
   * done set answers for the messages the policy keeps, and only the others are read one by one
   * (see dynamodb-done-set.ts); without, or below DONE_SET_MIN_UIDLS, every UIDL's item is read.
   */
  async lookup(mailboxId: string, uidls: readonly string[], options?: LookupOptions): Promise<Map<string, LedgerEntry>> {
    const wanted = [...new Set(uidls)];
    if (options === undefined || this.doneSet === undefined || wanted.length < DONE_SET_MIN_UIDLS) return this.lookupItems(mailboxId, wanted);
    const shards = await this.doneSet.read(mailboxId);
    const summarized = new Map(shards.flatMap((shard) => shard.entries.map((e) => [e.uidl, e] as const)));
    const found = new Map<string, LedgerEntry>();
    const toRead: string[] = [];
    for (const uidl of wanted) {
      const hit = summarized.get(uidl);
      if (hit !== undefined && hitAnswers(hit, options.deletePolicy, options.now)) found.set(uidl, keptEntry(mailboxId, hit));
      else toRead.push(uidl);
    }
    const read = await this.lookupItems(mailboxId, toRead);
    const missing = [...read.values()].filter((e) => !summarized.has(e.uidl) && summarizable(e, options.deletePolicy, options.now));
    if (shouldFlush(missing.length, summarized.size)) await this.doneSet.add(mailboxId, shards, missing.map(doneFromEntry), new Set(wanted));
    for (const [uidl, entry] of read) found.set(uidl, entry);
    return found;
  }

  /** The lookup with the done set, each entry then triaged (triageCode). */
  async triage(mailboxId: string, uidls: readonly string[], options: LookupOptions): Promise<ListingTriage> {
    const found = await this.lookup(mailboxId, uidls, options);
    const codes = new Uint8Array(uidls.length);
    const entries = new Map<string, LedgerEntry>();
    for (let i = 0; i < uidls.length; i++) {
      const entry = found.get(uidls[i]!);
      const code = triageCode(entry, options.deletePolicy, options.now);
      codes[i] = code;
      if (code === TRIAGE.entry) entries.set(entry!.uidl, entry!);
    }
    return { codes, entries };
  }

  /** Every UIDL's own item: BatchGetItem, or from lookupQueryThreshold UIDLs a Query. */
  private async lookupItems(mailboxId: string, wanted: readonly string[]): Promise<Map<string, LedgerEntry>> {
    const found = new Map<string, LedgerEntry>();
    if (wanted.length === 0) return found;
    if (wanted.length >= this.lookupQueryThreshold) {
      const set = new Set(wanted);
      await this.reader.queryMessages(mailboxId, `looking up ${wanted.length} UIDLs of mailbox ${mailboxId}`, undefined, (entry) => {
        if (set.has(entry.uidl)) found.set(entry.uidl, entry);
      });
      return found;
    }
    const keys = wanted.map((uidl) => messageKey(mailboxId, uidl));
    for (const item of await this.reader.batchGetAll(keys, `looking up UIDLs of mailbox ${mailboxId}`, 'ledger')) {
      const entry = entryFromItem(item);
      found.set(entry.uidl, entry);
    }
    return found;
  }

  async record(entries: readonly LedgerEntry[]): Promise<RecordOutcome[]> {
    for (const entry of entries) checkEntry(entry);
    return mapBounded(entries, this.concurrency, (entry) => this.writer.record(entry));
  }

  /** Entries that do not exist (expired, or never recorded) are left alone, as in the local ledger. */
  async markAnnounced(mailboxId: string, uidls: readonly string[], at: number): Promise<void> {
    await mapBounded([...new Set(uidls)], this.concurrency, (uidl) => this.writer.markAnnounced(mailboxId, uidl, at));
  }

  /** The first deletion's time is kept, the expiry is the latest; missing entries are left alone. */
  async markDeleted(mailboxId: string, uidls: readonly string[], at: number, expiresAt: number): Promise<void> {
    await mapBounded([...new Set(uidls)], this.concurrency, (uidl) => this.writer.markDeleted(mailboxId, uidl, at, expiresAt));
  }

  async pending(mailboxId: string): Promise<LedgerEntry[]> {
    const entries: LedgerEntry[] = [];
    await this.reader.queryMessages(mailboxId, `listing pending messages of mailbox ${mailboxId}`, 'stored', (entry) => {
      entries.push(entry);
    });
    return entries;
  }


  private failure(what: string, error: unknown, phase: DrainPhase): DrainError {
    return ledgerFailure(this.tableName, what, error, phase);
  }
}

function stateFromItem(mailboxId: string, item: Item | undefined): MailboxState {
  const fields: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(item ?? {})) {
    if (name === LEDGER_PARTITION_KEY || name === LEDGER_SORT_KEY || name === 'mailboxId') continue;
    fields[name] = fromAttribute(value, `state field ${name} of mailbox ${mailboxId}`);
  }
  return { ...(fields as Partial<MailboxState>), mailboxId };
}
