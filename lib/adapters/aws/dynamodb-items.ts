/**
 * How the DynamoDB ledger lays out its items (see dynamodb-ledger.ts for the table design): the
 * keys of message, lease and state items, and the codec between items and ledger entries,
 * leases and JSON-like state values. Pure functions; a malformed item is a non-retryable
 * LEDGER_FAILED.
 */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { DrainError } from '../../drain/errors.js';
import type { DrainEvent } from '../../drain/events.js';
import type { Lease, LedgerEntry, LedgerStatus } from '../../drain/ports.js';

export const LEDGER_PARTITION_KEY = 'pk';
export const LEDGER_SORT_KEY = 'sk';
/** The table's TTL attribute (epoch seconds). */
export const LEDGER_TTL_ATTRIBUTE = 'expiresAt';
export const MESSAGE_SORT_KEY_PREFIX = 'm#';
export const LEASE_SORT_KEY = 'lease';
export const STATE_SORT_KEY = 'state';

const STATUSES: ReadonlySet<string> = new Set<LedgerStatus>(['stored', 'announced', 'skipped']);

export type Item = Record<string, AttributeValue>;

export function messageKey(mailboxId: string, uidl: string): Item {
  return { pk: { S: mailboxId }, sk: { S: MESSAGE_SORT_KEY_PREFIX + uidl } };
}

export function leaseKey(mailboxId: string): Item {
  return { pk: { S: mailboxId }, sk: { S: LEASE_SORT_KEY } };
}

export function stateKey(mailboxId: string): Item {
  return { pk: { S: mailboxId }, sk: { S: STATE_SORT_KEY } };
}

/** The lease an item holds, unless it has expired by `now`. */
export function leaseFromItem(item: Item, now: number): Lease | undefined {
  const mailboxId = item['pk']?.S;
  const owner = item['owner']?.S;
  const expiresAt = optionalNumber(item, 'leaseExpiresAt');
  if (mailboxId === undefined || owner === undefined || expiresAt === undefined || expiresAt <= now) return undefined;
  return { mailboxId, owner, expiresAt };
}

export function num(value: number): AttributeValue {
  return { N: String(value) };
}

export function optionalNumber(item: Item, name: string): number | undefined {
  const n = item[name]?.N;
  if (n === undefined) return undefined;
  const value = Number(n);
  if (!Number.isFinite(value)) throw corrupt(`attribute ${name} is not a number`);
  return value;
}

export function corrupt(detail: string): DrainError {
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
export function toAttribute(value: unknown): AttributeValue {
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

export function fromAttribute(value: AttributeValue, what: string): unknown {
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

export function itemFromEntry(entry: LedgerEntry): Item {
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

export function entryFromItem(item: Item): LedgerEntry {
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
