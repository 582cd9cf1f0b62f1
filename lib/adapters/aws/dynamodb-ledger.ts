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
 * partition, costs next to nothing).
 *
 * Stand-in notes: dynalite has no TransactWriteItems and ignores ReturnValuesOnConditionCheckFailure,
 * so a lost condition falls back to a GetItem when the exception carries no item.
 */
import {
  BatchGetItemCommand,
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { DrainError, type DrainPhase } from '../../drain/errors.js';
import type { DrainEvent } from '../../drain/events.js';
import type {
  Lease,
  LedgerEntry,
  LedgerStatus,
  MailboxState,
  MailboxStateUpdate,
  RecordOutcome,
  UidlLedger,
} from '../../drain/ports.js';
import { describeSdkError, isRetryableSdkError, sdkErrorName } from './sdk-error.js';

export const LEDGER_PARTITION_KEY = 'pk';
export const LEDGER_SORT_KEY = 'sk';
/** The table's TTL attribute (epoch seconds). */
export const LEDGER_TTL_ATTRIBUTE = 'expiresAt';
export const MESSAGE_SORT_KEY_PREFIX = 'm#';
export const LEASE_SORT_KEY = 'lease';
export const STATE_SORT_KEY = 'state';

/** Requests in flight at once for one ledger call. */
export const DEFAULT_LEDGER_CONCURRENCY = 16;
/** From this many UIDLs on, `lookup` Queries the partition instead of BatchGetItem. */
export const DEFAULT_LOOKUP_QUERY_THRESHOLD = 10_000;
/** BatchGetItem takes at most this many keys. */
export const MAX_BATCH_GET_KEYS = 100;
/** Attempts at a BatchGetItem's UnprocessedKeys before giving up (retryably). */
export const MAX_UNPROCESSED_ATTEMPTS = 8;
const UNPROCESSED_BASE_DELAY_MS = 50;
const UNPROCESSED_MAX_DELAY_MS = 2_000;

const STATUSES: ReadonlySet<string> = new Set<LedgerStatus>(['stored', 'announced', 'skipped']);

type Item = Record<string, AttributeValue>;

export interface DynamoDbLedgerOptions {
  client: DynamoDBClient;
  tableName: string;
  /** Requests in flight at once for one call (record, marks, lookup chunks). @default 16 */
  concurrency?: number;
  /** From this many UIDLs on, lookup Queries the mailbox's partition. @default 10_000 */
  lookupQueryThreshold?: number;
  /** Waits between attempts at UnprocessedKeys (tests shorten it). @default setTimeout */
  sleep?: (ms: number) => Promise<void>;
}

export class DynamoDbLedger implements UidlLedger {
  readonly tableName: string;
  private readonly client: DynamoDBClient;
  private readonly concurrency: number;
  private readonly lookupQueryThreshold: number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(options: DynamoDbLedgerOptions) {
    this.client = options.client;
    this.tableName = options.tableName;
    this.concurrency = options.concurrency ?? DEFAULT_LEDGER_CONCURRENCY;
    this.lookupQueryThreshold = options.lookupQueryThreshold ?? DEFAULT_LOOKUP_QUERY_THRESHOLD;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
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

  async acquireLease(mailboxId: string, owner: string, ttlMs: number, now: number): Promise<Lease | undefined> {
    checkLeaseArgs(mailboxId, owner, ttlMs);
    const expiresAt = now + ttlMs;
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: {
            pk: { S: mailboxId },
            sk: { S: LEASE_SORT_KEY },
            owner: { S: owner },
            leaseExpiresAt: num(expiresAt),
            acquiredAt: num(now),
            [LEDGER_TTL_ATTRIBUTE]: num(Math.ceil(expiresAt / 1000)),
          },
          ConditionExpression: 'attribute_not_exists(#pk) OR #leaseExpiresAt <= :now OR #owner = :owner',
          ExpressionAttributeNames: { '#pk': 'pk', '#leaseExpiresAt': 'leaseExpiresAt', '#owner': 'owner' },
          ExpressionAttributeValues: { ':now': num(now), ':owner': { S: owner } },
        }),
      );
      return { mailboxId, owner, expiresAt };
    } catch (error) {
      if (isConditionFailed(error)) return undefined;
      throw this.failure(`acquiring the lease of mailbox ${mailboxId}`, error, 'lease');
    }
  }

  async renewLease(lease: Lease, ttlMs: number, now: number): Promise<Lease> {
    checkLeaseArgs(lease.mailboxId, lease.owner, ttlMs);
    const expiresAt = now + ttlMs;
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: leaseKey(lease.mailboxId),
          UpdateExpression: 'SET #leaseExpiresAt = :until, #ttl = :ttl',
          ConditionExpression: '#owner = :owner',
          ExpressionAttributeNames: { '#leaseExpiresAt': 'leaseExpiresAt', '#ttl': LEDGER_TTL_ATTRIBUTE, '#owner': 'owner' },
          ExpressionAttributeValues: { ':until': num(expiresAt), ':ttl': num(Math.ceil(expiresAt / 1000)), ':owner': { S: lease.owner } },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      return { mailboxId: lease.mailboxId, owner: lease.owner, expiresAt };
    } catch (error) {
      if (isConditionFailed(error)) {
        const holder = conditionItem(error)?.['owner']?.S;
        throw new DrainError(
          'LEASE_HELD',
          `the lease of mailbox ${lease.mailboxId} is no longer held by ${lease.owner}` +
            (holder === undefined ? '' : ` (now held by ${holder})`),
          { phase: 'lease', retryable: false },
        );
      }
      throw this.failure(`renewing the lease of mailbox ${lease.mailboxId}`, error, 'lease');
    }
  }

  async releaseLease(lease: Lease): Promise<void> {
    try {
      await this.client.send(
        new DeleteItemCommand({
          TableName: this.tableName,
          Key: leaseKey(lease.mailboxId),
          ConditionExpression: '#owner = :owner',
          ExpressionAttributeNames: { '#owner': 'owner' },
          ExpressionAttributeValues: { ':owner': { S: lease.owner } },
        }),
      );
    } catch (error) {
      if (isConditionFailed(error)) return; // not ours any more (or gone): nothing to give up
      throw this.failure(`releasing the lease of mailbox ${lease.mailboxId}`, error, 'lease');
    }
  }

  async leaseHolder(mailboxId: string, now: number): Promise<Lease | undefined> {
    const item = await this.getItem(leaseKey(mailboxId), `reading the lease of mailbox ${mailboxId}`, 'lease');
    return item === undefined ? undefined : leaseFromItem(item, now);
  }

  /**
   * The unexpired leases of many mailboxes at once (BatchGetItem), for a scheduler that skips
   * busy mailboxes. Not part of the UidlLedger port.
   */
  async leaseHolders(mailboxIds: readonly string[], now: number): Promise<Map<string, Lease>> {
    const keys = [...new Set(mailboxIds)].map(leaseKey);
    const holders = new Map<string, Lease>();
    for (const item of await this.batchGetAll(keys, `reading the leases of ${keys.length} mailboxes`, 'lease')) {
      const lease = leaseFromItem(item, now);
      if (lease !== undefined) holders.set(lease.mailboxId, lease);
    }
    return holders;
  }

  // -----------------------------------------------------------------------------------------
  // Mailbox state

  async getMailboxState(mailboxId: string): Promise<MailboxState> {
    const item = await this.getItem(stateKey(mailboxId), `reading the state of mailbox ${mailboxId}`, 'ledger');
    const fields: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(item ?? {})) {
      if (name === LEDGER_PARTITION_KEY || name === LEDGER_SORT_KEY || name === 'mailboxId') continue;
      fields[name] = fromAttribute(value, `state field ${name} of mailbox ${mailboxId}`);
    }
    return { ...(fields as Partial<MailboxState>), mailboxId };
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
          ...(set.length > 0 ? { ExpressionAttributeValues: values } : {}),
        }),
      );
    } catch (error) {
      throw this.failure(`updating the state of mailbox ${mailboxId}`, error, 'ledger');
    }
  }

  // -----------------------------------------------------------------------------------------
  // Messages

  async lookup(mailboxId: string, uidls: readonly string[]): Promise<Map<string, LedgerEntry>> {
    const wanted = [...new Set(uidls)];
    const found = new Map<string, LedgerEntry>();
    if (wanted.length === 0) return found;
    if (wanted.length >= this.lookupQueryThreshold) {
      const set = new Set(wanted);
      await this.queryMessages(mailboxId, `looking up ${wanted.length} UIDLs of mailbox ${mailboxId}`, undefined, (entry) => {
        if (set.has(entry.uidl)) found.set(entry.uidl, entry);
      });
      return found;
    }
    const keys = wanted.map((uidl) => messageKey(mailboxId, uidl));
    for (const item of await this.batchGetAll(keys, `looking up UIDLs of mailbox ${mailboxId}`, 'ledger')) {
      const entry = entryFromItem(item);
      found.set(entry.uidl, entry);
    }
    return found;
  }

  async record(entries: readonly LedgerEntry[]): Promise<RecordOutcome[]> {
    for (const entry of entries) checkEntry(entry);
    return mapBounded(entries, this.concurrency, (entry) => this.recordOne(entry));
  }

  /** Entries that do not exist (expired, or never recorded) are left alone, as in the local ledger. */
  async markAnnounced(mailboxId: string, uidls: readonly string[], at: number): Promise<void> {
    await mapBounded([...new Set(uidls)], this.concurrency, (uidl) => this.markAnnouncedOne(mailboxId, uidl, at));
  }

  /** The first deletion's time is kept, the expiry is the latest; missing entries are left alone. */
  async markDeleted(mailboxId: string, uidls: readonly string[], at: number, expiresAt: number): Promise<void> {
    await mapBounded([...new Set(uidls)], this.concurrency, (uidl) =>
      this.updateExisting(
        mailboxId,
        uidl,
        {
          UpdateExpression: 'SET #deletedAt = if_not_exists(#deletedAt, :at), #ttl = :ttl',
          ExpressionAttributeNames: { '#deletedAt': 'deletedAt', '#ttl': LEDGER_TTL_ATTRIBUTE },
          ExpressionAttributeValues: { ':at': num(at), ':ttl': num(expiresAt) },
        },
        'marking deleted',
      ),
    );
  }

  async pending(mailboxId: string): Promise<LedgerEntry[]> {
    const entries: LedgerEntry[] = [];
    await this.queryMessages(mailboxId, `listing pending messages of mailbox ${mailboxId}`, 'stored', (entry) => {
      entries.push(entry);
    });
    return entries;
  }

  // -----------------------------------------------------------------------------------------

  private async recordOne(entry: LedgerEntry): Promise<RecordOutcome> {
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: itemFromEntry(entry),
          ConditionExpression: 'attribute_not_exists(#pk)',
          ExpressionAttributeNames: { '#pk': 'pk' },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      return { uidl: entry.uidl, ok: true };
    } catch (error) {
      if (!isConditionFailed(error)) {
        throw this.failure(`recording UIDL ${entry.uidl} of mailbox ${entry.mailboxId}`, error, 'ledger');
      }
      const item =
        conditionItem(error) ??
        (await this.getItem(messageKey(entry.mailboxId, entry.uidl), `reading UIDL ${entry.uidl} of mailbox ${entry.mailboxId}`, 'ledger'));
      return { uidl: entry.uidl, ok: false, conflict: item === undefined ? undefined : entryFromItem(item) };
    }
  }

  /**
   * `stored` becomes `announced`; a `skipped` entry keeps its status (it is never deleted) and
   * gains `announcedAt`. The first announcement's time is kept. False when there is no entry.
   */
  private async markAnnouncedOne(mailboxId: string, uidl: string, at: number): Promise<boolean> {
    const what = 'marking announced';
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: messageKey(mailboxId, uidl),
          UpdateExpression: 'SET #status = :announced, #announcedAt = if_not_exists(#announcedAt, :at)',
          ConditionExpression: 'attribute_exists(#pk) AND #status IN (:stored, :announced)',
          ExpressionAttributeNames: { '#pk': 'pk', '#status': 'status', '#announcedAt': 'announcedAt' },
          ExpressionAttributeValues: { ':announced': { S: 'announced' }, ':stored': { S: 'stored' }, ':at': num(at) },
        }),
      );
      return true;
    } catch (error) {
      if (!isConditionFailed(error)) throw this.failure(`${what} UIDL ${uidl} of mailbox ${mailboxId}`, error, 'ledger');
    }
    // Skipped (or missing): only the time.
    return this.updateExisting(
      mailboxId,
      uidl,
      {
        UpdateExpression: 'SET #announcedAt = if_not_exists(#announcedAt, :at)',
        ExpressionAttributeNames: { '#announcedAt': 'announcedAt' },
        ExpressionAttributeValues: { ':at': num(at) },
      },
      what,
    );
  }

  /** An UpdateItem on an existing message entry; false when there is none. */
  private async updateExisting(
    mailboxId: string,
    uidl: string,
    update: { UpdateExpression: string; ExpressionAttributeNames: Record<string, string>; ExpressionAttributeValues: Item },
    what: string,
  ): Promise<boolean> {
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: messageKey(mailboxId, uidl),
          UpdateExpression: update.UpdateExpression,
          ConditionExpression: 'attribute_exists(#pk)',
          ExpressionAttributeNames: { ...update.ExpressionAttributeNames, '#pk': 'pk' },
          ExpressionAttributeValues: update.ExpressionAttributeValues,
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailed(error)) return false;
      throw this.failure(`${what} UIDL ${uidl} of mailbox ${mailboxId}`, error, 'ledger');
    }
  }

  /** BatchGetItem of at most 100 keys, retrying UnprocessedKeys with backoff. */
  private async batchGet(keys: Item[], what: string, phase: DrainPhase): Promise<Item[]> {
    let pending = keys;
    const items: Item[] = [];
    for (let attempt = 1; ; attempt++) {
      let output;
      try {
        output = await this.client.send(
          new BatchGetItemCommand({ RequestItems: { [this.tableName]: { Keys: pending, ConsistentRead: true } } }),
        );
      } catch (error) {
        throw this.failure(what, error, phase);
      }
      items.push(...(output.Responses?.[this.tableName] ?? []));
      const unprocessed = output.UnprocessedKeys?.[this.tableName]?.Keys ?? [];
      if (unprocessed.length === 0) return items;
      if (attempt >= MAX_UNPROCESSED_ATTEMPTS) {
        throw new DrainError(
          'LEDGER_FAILED',
          `${what}: DynamoDB left ${unprocessed.length} keys of table ${this.tableName} unprocessed after ${attempt} attempts`,
          { phase, retryable: true },
        );
      }
      const cap = Math.min(UNPROCESSED_MAX_DELAY_MS, UNPROCESSED_BASE_DELAY_MS * 2 ** (attempt - 1));
      await this.sleep(Math.round(cap / 2 + (Math.random() * cap) / 2));
      pending = unprocessed;
    }
  }

  /** `batchGet` over any number of keys: chunks of 100, `concurrency` chunks at once. */
  private async batchGetAll(keys: Item[], what: string, phase: DrainPhase): Promise<Item[]> {
    const chunks: Item[][] = [];
    for (let i = 0; i < keys.length; i += MAX_BATCH_GET_KEYS) chunks.push(keys.slice(i, i + MAX_BATCH_GET_KEYS));
    const results = await mapBounded(chunks, this.concurrency, (chunk) => this.batchGet(chunk, what, phase));
    return results.flat();
  }

  /** Query the mailbox's message items (optionally only those of one status), page by page. */
  private async queryMessages(
    mailboxId: string,
    what: string,
    status: LedgerStatus | undefined,
    onEntry: (entry: LedgerEntry) => void,
  ): Promise<void> {
    let startKey: Item | undefined;
    do {
      let output;
      try {
        output = await this.client.send(
          new QueryCommand({
            TableName: this.tableName,
            KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :m)',
            ...(status === undefined ? {} : { FilterExpression: '#status = :status' }),
            ExpressionAttributeNames: { '#pk': 'pk', '#sk': 'sk', ...(status === undefined ? {} : { '#status': 'status' }) },
            ExpressionAttributeValues: {
              ':pk': { S: mailboxId },
              ':m': { S: MESSAGE_SORT_KEY_PREFIX },
              ...(status === undefined ? {} : { ':status': { S: status } }),
            },
            ConsistentRead: true,
            ...(startKey === undefined ? {} : { ExclusiveStartKey: startKey }),
          }),
        );
      } catch (error) {
        throw this.failure(what, error, 'ledger');
      }
      for (const item of output.Items ?? []) onEntry(entryFromItem(item));
      startKey = output.LastEvaluatedKey;
    } while (startKey !== undefined);
  }

  private async getItem(key: Item, what: string, phase: DrainPhase): Promise<Item | undefined> {
    try {
      const output = await this.client.send(new GetItemCommand({ TableName: this.tableName, Key: key, ConsistentRead: true }));
      return output.Item;
    } catch (error) {
      throw this.failure(what, error, phase);
    }
  }

  private failure(what: string, error: unknown, phase: DrainPhase): DrainError {
    if (sdkErrorName(error) === 'ResourceNotFoundException') {
      return new DrainError('LEDGER_FAILED', `${what} failed: DynamoDB table ${this.tableName} does not exist (in this account and region)`, {
        phase,
        retryable: false,
        cause: error,
      });
    }
    return new DrainError('LEDGER_FAILED', `${what} in DynamoDB table ${this.tableName} failed: ${describeSdkError(error)}`, {
      phase,
      retryable: isRetryableSdkError(error),
      cause: error,
    });
  }
}

// -------------------------------------------------------------------------------------------
// Items

function messageKey(mailboxId: string, uidl: string): Item {
  return { pk: { S: mailboxId }, sk: { S: MESSAGE_SORT_KEY_PREFIX + uidl } };
}

function leaseKey(mailboxId: string): Item {
  return { pk: { S: mailboxId }, sk: { S: LEASE_SORT_KEY } };
}

function stateKey(mailboxId: string): Item {
  return { pk: { S: mailboxId }, sk: { S: STATE_SORT_KEY } };
}

/** The lease an item holds, unless it has expired by `now`. */
function leaseFromItem(item: Item, now: number): Lease | undefined {
  const mailboxId = item['pk']?.S;
  const owner = item['owner']?.S;
  const expiresAt = optionalNumber(item, 'leaseExpiresAt');
  if (mailboxId === undefined || owner === undefined || expiresAt === undefined || expiresAt <= now) return undefined;
  return { mailboxId, owner, expiresAt };
}

function num(value: number): AttributeValue {
  return { N: String(value) };
}

function optionalNumber(item: Item, name: string): number | undefined {
  const n = item[name]?.N;
  if (n === undefined) return undefined;
  const value = Number(n);
  if (!Number.isFinite(value)) throw corrupt(`attribute ${name} is not a number`);
  return value;
}

function corrupt(detail: string): DrainError {
  return new DrainError('LEDGER_FAILED', `corrupt ledger item: ${detail}`, { phase: 'ledger', retryable: false });
}

function parseJson<T>(text: string, what: string): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    throw corrupt(`${what} is not JSON`);
  }
}

/** A JSON-like value as an attribute: objects are maps, arrays lists. */
function toAttribute(value: unknown): AttributeValue {
  if (value === null) return { NULL: true };
  switch (typeof value) {
    case 'string':
      return { S: value };
    case 'number':
      if (!Number.isFinite(value)) throw new DrainError('LEDGER_FAILED', `cannot store the number ${value}`, { phase: 'ledger', retryable: false });
      return num(value);
    case 'boolean':
      return { BOOL: value };
    case 'object':
      if (Array.isArray(value)) return { L: value.map(toAttribute) };
      return {
        M: Object.fromEntries(
          Object.entries(value as Record<string, unknown>)
            .filter(([, v]) => v !== undefined)
            .map(([k, v]) => [k, toAttribute(v)]),
        ),
      };
    default:
      throw new DrainError('LEDGER_FAILED', `cannot store a value of type ${typeof value}`, { phase: 'ledger', retryable: false });
  }
}

function fromAttribute(value: AttributeValue, what: string): unknown {
  if (value.S !== undefined) return value.S;
  if (value.N !== undefined) {
    const n = Number(value.N);
    if (!Number.isFinite(n)) throw corrupt(`${what} is not a number`);
    return n;
  }
  if (value.BOOL !== undefined) return value.BOOL;
  if (value.NULL !== undefined) return null;
  if (value.L !== undefined) return value.L.map((v) => fromAttribute(v, what));
  if (value.M !== undefined) return Object.fromEntries(Object.entries(value.M).map(([k, v]) => [k, fromAttribute(v, what)]));
  throw corrupt(`${what} has an unsupported type`);
}

function itemFromEntry(entry: LedgerEntry): Item {
  const item: Item = {
    ...messageKey(entry.mailboxId, entry.uidl),
    uidl: { S: entry.uidl },
    status: { S: entry.status },
    size: num(entry.size),
    firstSeenAt: num(entry.firstSeenAt),
    event: { S: JSON.stringify(entry.event) },
  };
  if (entry.key !== undefined) item['key'] = { S: entry.key };
  if (entry.sha256 !== undefined) item['sha256'] = { S: entry.sha256 };
  if (entry.announcedAt !== undefined) item['announcedAt'] = num(entry.announcedAt);
  if (entry.deletedAt !== undefined) item['deletedAt'] = num(entry.deletedAt);
  if (entry.expiresAt !== undefined) item[LEDGER_TTL_ATTRIBUTE] = num(entry.expiresAt);
  return item;
}

function entryFromItem(item: Item): LedgerEntry {
  const mailboxId = item['pk']?.S;
  const sk = item['sk']?.S;
  if (mailboxId === undefined || sk === undefined || !sk.startsWith(MESSAGE_SORT_KEY_PREFIX)) throw corrupt('not a message item');
  const uidl = item['uidl']?.S ?? sk.slice(MESSAGE_SORT_KEY_PREFIX.length);
  const status = item['status']?.S;
  if (status === undefined || !STATUSES.has(status)) throw corrupt(`UIDL ${uidl} of mailbox ${mailboxId} has status ${String(status)}`);
  const size = optionalNumber(item, 'size');
  const firstSeenAt = optionalNumber(item, 'firstSeenAt');
  const eventText = item['event']?.S;
  if (size === undefined || firstSeenAt === undefined || eventText === undefined) {
    throw corrupt(`UIDL ${uidl} of mailbox ${mailboxId} lacks size, firstSeenAt or event`);
  }
  const entry: LedgerEntry = {
    mailboxId,
    uidl,
    status: status as LedgerStatus,
    size,
    firstSeenAt,
    event: parseJson<DrainEvent>(eventText, `the event of UIDL ${uidl} of mailbox ${mailboxId}`),
  };
  const key = item['key']?.S;
  if (key !== undefined) entry.key = key;
  const sha256 = item['sha256']?.S;
  if (sha256 !== undefined) entry.sha256 = sha256;
  const announcedAt = optionalNumber(item, 'announcedAt');
  if (announcedAt !== undefined) entry.announcedAt = announcedAt;
  const deletedAt = optionalNumber(item, 'deletedAt');
  if (deletedAt !== undefined) entry.deletedAt = deletedAt;
  const expiresAt = optionalNumber(item, LEDGER_TTL_ATTRIBUTE);
  if (expiresAt !== undefined) entry.expiresAt = expiresAt;
  return entry;
}

function checkEntry(entry: LedgerEntry): void {
  const problem =
    entry.mailboxId === ''
      ? 'an empty mailbox id'
      : entry.uidl === ''
        ? `an empty UIDL (mailbox ${entry.mailboxId})`
        : entry.status === 'announced'
          ? `status 'announced' (UIDL ${entry.uidl}): new entries are 'stored' or 'skipped'`
          : undefined;
  if (problem !== undefined) {
    throw new DrainError('LEDGER_FAILED', `cannot record a ledger entry with ${problem}`, { phase: 'ledger', retryable: false });
  }
}

function checkLeaseArgs(mailboxId: string, owner: string, ttlMs: number): void {
  const problem =
    mailboxId === '' ? 'an empty mailbox id' : owner === '' ? 'an empty owner' : !(ttlMs > 0) ? `a ttl of ${ttlMs} ms` : undefined;
  if (problem !== undefined) {
    throw new DrainError('LEDGER_FAILED', `invalid lease request: ${problem}`, { phase: 'lease', retryable: false });
  }
}

function isConditionFailed(error: unknown): boolean {
  return sdkErrorName(error) === 'ConditionalCheckFailedException';
}

/** The item a lost condition returned (ReturnValuesOnConditionCheckFailure: ALL_OLD), if any. */
function conditionItem(error: unknown): Item | undefined {
  if (error === null || typeof error !== 'object' || !('Item' in error)) return undefined;
  const item = (error as { Item?: unknown }).Item;
  return item !== null && typeof item === 'object' && Object.keys(item).length > 0 ? (item as Item) : undefined;
}

/**
 * Runs `fn` over `items` with at most `limit` calls in flight, keeping the order of results.
 * After the first failure it starts nothing new, waits for the calls in flight, and throws it.
 */
async function mapBounded<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const index = next++;
      try {
        results[index] = await fn(items[index]!);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure.error;
  return results;
}
