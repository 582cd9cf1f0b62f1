/**
 * DynamoDbLedger against dynalite with the real DynamoDBClient, for what is particular to DynamoDB
 * (the port's semantics are in test/contract/ledger-contract.ts): item layout, the GetItem
 * behind a lost condition, chunked and Query lookups, UnprocessedKeys, the TTL attribute. dynalite never expires items and ignores ReturnValuesOnConditionCheckFailure, so
 * the tests assert the attribute's value (not an expiry) and conflicts come from a GetItem.
 * Throttling and server errors, which dynalite cannot produce, come from the loopback AWS JSON
 * endpoint.
 */
import { DynamoDBClient, GetItemCommand, type BatchGetItemCommandOutput } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DynamoDbLedger,
  MAX_UNPROCESSED_ATTEMPTS,
  type DynamoDbLedgerOptions,
} from '../../lib/adapters/aws/dynamodb-ledger.js';
import type { LedgerEntry, RunSummary } from '../../lib/drain/ports.js';
import { startAwsJsonEndpoint, type AwsJsonEndpoint } from '../../testkit/aws/json-endpoint.js';
import { startDynalite, type DynamoDbStandin } from '../../testkit/aws/standins.js';
import { storedEntry } from '../../testkit/fixtures/ledger-fixtures.js';
import { drainErrorOf as caught } from '../support/drain-error.js';

const TABLE = 'popdrain-ledger';
const T0 = Date.UTC(2025, 5, 1, 12, 0, 0);

/** Counts the commands a client sends, by name. */
function countCommands(client: DynamoDBClient): Map<string, number> {
  const counts = new Map<string, number>();
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = String(context.commandName);
      counts.set(name, (counts.get(name) ?? 0) + 1);
      return next(args);
    },
    { step: 'initialize', name: 'testCountCommands' },
  );
  return counts;
}

let mailboxCounter = 0;
const newMailbox = (): string => `mbx-${++mailboxCounter}`;

describe('DynamoDbLedger on dynalite', () => {
  let db: DynamoDbStandin;
  let client: DynamoDBClient;
  let ledger: DynamoDbLedger;

  beforeAll(async () => {
    db = await startDynalite();
    await db.createLedgerTable(TABLE);
    client = db.client();
    ledger = new DynamoDbLedger({ client, tableName: TABLE });
  });

  afterAll(async () => {
    await db?.stop();
  });

  const ledgerWith = (options: Partial<DynamoDbLedgerOptions>, ownClient = db.client()): DynamoDbLedger =>
    new DynamoDbLedger({ client: ownClient, tableName: TABLE, ...options });

  const rawItem = async (mailboxId: string, sk: string) =>
    (await client.send(new GetItemCommand({ TableName: TABLE, Key: { pk: { S: mailboxId }, sk: { S: sk } }, ConsistentRead: true }))).Item;

  // The port's semantics (record once, order, refusals, lookup, marks, pending, state, leases)
  // are in test/contract/ledger-contract.ts, run by test/contract/ledger-dynamodb.test.ts. Here:
  // what is particular to DynamoDB (item layout, request counts, GetItem fallback, TTL attribute).

  it('a lost record condition reads the existing item with one GetItem; items hold the entry as laid out', async () => {
    const mbx = newMailbox();
    const first = storedEntry(mbx, 'uidl-1');
    await ledger.record([first]);
    const countingClient = db.client();
    const counts = countCommands(countingClient);
    const retry = { ...storedEntry(mbx, 'uidl-1'), sha256: 'f'.repeat(64), firstSeenAt: T0 + 1 };
    expect(await ledgerWith({}, countingClient).record([retry])).toEqual([{ uidl: 'uidl-1', ok: false, conflict: first }]);
    // dynalite ignores ReturnValuesOnConditionCheckFailure: the existing item came from a GetItem.
    expect(counts.get('GetItemCommand')).toBe(1);

    const item = await rawItem(mbx, 'm#uidl-1');
    expect(item?.['pk']).toEqual({ S: mbx });
    expect(item?.['status']).toEqual({ S: 'stored' });
    expect(JSON.parse(item?.['event']?.S ?? 'null')).toEqual(first.event);
    expect(item?.['expiresAt']).toBeUndefined();
  });

  it('records with the concurrency option, keeping the order of outcomes', async () => {
    const mbx = newMailbox();
    const entries = Array.from({ length: 200 }, (_, i) => storedEntry(mbx, `u${i}`));
    await ledger.record(entries.filter((_, i) => i % 3 === 0));
    const outcomes = await ledgerWith({ concurrency: 7 }).record(entries);
    expect(outcomes.map((o) => o.uidl)).toEqual(entries.map((e) => e.uidl));
    expect(outcomes.map((o) => o.ok)).toEqual(entries.map((_, i) => i % 3 !== 0));
  });

  it('looks up 2,500 UIDLs with BatchGetItem in chunks of 100, ignoring duplicates and unknown UIDLs', async () => {
    const mbx = newMailbox();
    const uidls = Array.from({ length: 2_500 }, (_, i) => `uidl-${i.toString().padStart(5, '0')}`);
    const known = uidls.filter((_, i) => i % 5 !== 0); // 2,000 recorded, 500 unknown
    const outcomes = await ledgerWith({ concurrency: 32 }).record(known.map((u) => storedEntry(mbx, u)));
    expect(outcomes.every((o) => o.ok)).toBe(true);

    const countingClient = db.client();
    const counts = countCommands(countingClient);
    const found = await ledgerWith({}, countingClient).lookup(mbx, [...uidls, ...uidls.slice(0, 300)]);
    expect(counts.get('BatchGetItemCommand')).toBe(25);
    expect(counts.get('QueryCommand')).toBeUndefined();
    expect(found.size).toBe(2_000);
    expect([...found.keys()].sort()).toEqual(known);
    expect(found.get('uidl-01234')).toEqual(storedEntry(mbx, 'uidl-01234'));
  });

  it('retries UnprocessedKeys with backoff, and gives up retryably when they never clear', async () => {
    const mbx = newMailbox();
    const uidls = Array.from({ length: 10 }, (_, i) => `u${i}`);
    await ledger.record(uidls.map((u) => storedEntry(mbx, u)));

    // Turn part of a real BatchGetItem answer into UnprocessedKeys, as DynamoDB does under load.
    const flakyClient = db.client();
    let unprocessOnCalls = 1;
    let calls = 0;
    flakyClient.middlewareStack.add(
      (next, context) => async (args) => {
        const result = await next(args);
        if (context.commandName !== 'BatchGetItemCommand') return result;
        calls += 1;
        if (calls > unprocessOnCalls) return result;
        const output = result.output as BatchGetItemCommandOutput;
        const items = output.Responses?.[TABLE] ?? [];
        const held = items.splice(0, Math.ceil(items.length / 2));
        if (held.length > 0) {
          output.UnprocessedKeys = { [TABLE]: { Keys: held.map((i) => ({ pk: i['pk']!, sk: i['sk']! })), ConsistentRead: true } };
        }
        return result;
      },
      { step: 'initialize', name: 'testUnprocessedKeys' },
    );
    const sleeps: number[] = [];
    const flaky = ledgerWith({ sleep: async (ms) => void sleeps.push(ms) }, flakyClient);

    const found = await flaky.lookup(mbx, uidls);
    expect(found.size).toBe(10);
    expect(calls).toBe(2);
    expect(sleeps).toHaveLength(1);

    calls = 0;
    sleeps.length = 0;
    unprocessOnCalls = Number.POSITIVE_INFINITY;
    const error = await caught(flaky.lookup(mbx, uidls));
    expect(error).toMatchObject({ code: 'LEDGER_FAILED', phase: 'ledger', retryable: true });
    expect(error.message).toContain('unprocessed');
    expect(calls).toBe(MAX_UNPROCESSED_ATTEMPTS);
    expect(sleeps).toHaveLength(MAX_UNPROCESSED_ATTEMPTS - 1);
    expect(sleeps.every((ms, i) => i === 0 || ms >= sleeps[0]! / 2)).toBe(true);
  });

  it('from the threshold on, looks up by a paged Query of the mailbox partition', async () => {
    const mbx = newMailbox();
    // Large events (about 8 KB each) so the partition spans more than one 1 MB page.
    const big = (uidl: string): LedgerEntry => {
      const entry = storedEntry(mbx, uidl);
      if (entry.event.detailType === 'Email Stored') entry.event.detail.metadata.subject = `${uidl} ${'x'.repeat(8_000)}`;
      return entry;
    };
    const recorded = Array.from({ length: 180 }, (_, i) => `q${i}`);
    await ledger.record(recorded.map(big));
    await ledger.acquireLease(mbx, 'owner-a', 60_000, T0);
    await ledger.updateMailboxState(mbx, { backlogSince: T0 });

    const countingClient = db.client();
    const counts = countCommands(countingClient);
    const asked = [...recorded.filter((_, i) => i % 2 === 0), 'unknown-1', 'unknown-2'];
    const found = await ledgerWith({ lookupQueryThreshold: 50 }, countingClient).lookup(mbx, asked);
    expect(counts.get('BatchGetItemCommand')).toBeUndefined();
    expect(counts.get('QueryCommand')).toBeGreaterThanOrEqual(2);
    expect(found.size).toBe(90);
    expect(found.get('q10')).toEqual(big('q10'));
    expect(found.has('q11')).toBe(false);
  });

  it('marks of UIDLs never recorded create no item', async () => {
    const mbx = newMailbox();
    await ledger.markAnnounced(mbx, ['never-recorded'], T0);
    await ledger.markDeleted(mbx, ['never-recorded'], T0, 1);
    expect(await rawItem(mbx, 'm#never-recorded')).toBeUndefined();
  });

  it('marks deleted: the TTL attribute expiresAt holds the latest expiry in epoch seconds', async () => {
    const mbx = newMailbox();
    await ledger.record([storedEntry(mbx, 'd')]);
    const expiresAt = Math.floor((T0 + 30 * 86_400_000) / 1000);
    await ledger.markDeleted(mbx, ['d'], T0 + 5_000, expiresAt);
    await ledger.markDeleted(mbx, ['d'], T0 + 9_000, expiresAt + 60);
    const item = await rawItem(mbx, 'm#d');
    // dynalite never expires items: what can be checked is the attribute DynamoDB's TTL reads.
    expect(item?.['expiresAt']).toEqual({ N: String(expiresAt + 60) });
    expect(item?.['deletedAt']).toEqual({ N: String(T0 + 5_000) });
  });

  it('the lease item carries its end as the TTL attribute (epoch seconds) and is deleted on release', async () => {
    const mbx = newMailbox();
    const ttl = 60_000;
    const a = await ledger.acquireLease(mbx, 'owner-a', ttl, T0);
    const renewed = await ledger.renewLease(a!, ttl, T0 + 30_000);
    expect((await rawItem(mbx, 'lease'))?.['expiresAt']).toEqual({ N: String(Math.ceil((T0 + 30_000 + ttl) / 1000)) });
    expect((await rawItem(mbx, 'lease'))?.['leaseExpiresAt']).toEqual({ N: String(T0 + 30_000 + ttl) });
    await ledger.releaseLease(renewed);
    expect(await rawItem(mbx, 'lease')).toBeUndefined();
    const renewGone = await caught(ledger.renewLease({ mailboxId: newMailbox(), owner: 'x', expiresAt: 0 }, ttl, T0));
    expect(renewGone.code).toBe('LEASE_HELD');
  });

  it('reads the leases of many mailboxes at once for a scheduler', async () => {
    const [m1, m2, m3] = [newMailbox(), newMailbox(), newMailbox()];
    await ledger.acquireLease(m1, 'a', 60_000, T0);
    await ledger.acquireLease(m2, 'b', 1_000, T0);
    await ledger.updateMailboxState(m3, { backlogSince: T0 });
    const holders = await ledger.leaseHolders([m1, m2, m3, m1, 'never-seen'], T0 + 5_000);
    expect([...holders.values()]).toEqual([{ mailboxId: m1, owner: 'a', expiresAt: T0 + 60_000 }]);
    expect((await ledger.leaseHolders([m1, m2], T0)).size).toBe(2);
  });

  it('keeps the mailbox state as one attribute per field in the state item', async () => {
    const mbx = newMailbox();
    const lastRun: RunSummary = {
      runId: 'run-1',
      startedAt: T0,
      finishedAt: T0 + 5_000,
      stopReason: 'complete',
      moreRemaining: false,
      fetched: 3,
      fetchedBytes: 12_345,
      skipped: 1,
      deleted: 0,
      failures: 0,
      knownOnServer: 4,
      serverMessages: 4,
      pendingAnnouncements: 0,
    };
    await ledger.updateMailboxState(mbx, { lastRun, backlogSince: T0, acceptUidlReset: true });
    await ledger.updateMailboxState(mbx, { acceptUidlReset: null });
    const item = await rawItem(mbx, 'state');
    expect(item).toMatchObject({ lastRun: { M: expect.objectContaining({ runId: { S: 'run-1' } }) }, backlogSince: { N: String(T0) } });
    expect(item?.['acceptUidlReset']).toBeUndefined();
  });

  it('maps a missing table to LEDGER_FAILED, not retryable, naming the table', async () => {
    const missing = new DynamoDbLedger({ client, tableName: 'no-such-table' });
    const calls: Array<[string, Promise<unknown>]> = [
      ['ledger', missing.lookup('m', ['a'])],
      ['ledger', missing.record([storedEntry('m', 'a')])],
      ['ledger', missing.getMailboxState('m')],
      ['ledger', missing.updateMailboxState('m', { backlogSince: 1 })],
      ['ledger', missing.markAnnounced('m', ['a'], T0)],
      ['ledger', missing.pending('m')],
      ['lease', missing.acquireLease('m', 'o', 1_000, T0)],
      ['lease', missing.leaseHolder('m', T0)],
    ];
    for (const [phase, call] of calls) {
      const error = await caught(call);
      expect(error).toMatchObject({ code: 'LEDGER_FAILED', phase, retryable: false });
      expect(error.message).toContain('table no-such-table does not exist');
    }
  });

  it('rejects invalid options', () => {
    expect(() => new DynamoDbLedger({ client, tableName: '' })).toThrow(/tableName/);
    expect(() => new DynamoDbLedger({ client, tableName: TABLE, concurrency: 0 })).toThrow(/concurrency/);
  });
});

describe('DynamoDbLedger error mapping (loopback AWS JSON endpoint)', () => {
  let endpoint: AwsJsonEndpoint;
  const clients: DynamoDBClient[] = [];

  beforeAll(async () => {
    endpoint = await startAwsJsonEndpoint();
  });

  afterAll(async () => {
    for (const c of clients) c.destroy();
    await endpoint?.close();
  });

  const ledgerAt = (maxAttempts: number): DynamoDbLedger => {
    const c = new DynamoDBClient({
      region: 'us-east-1',
      endpoint: endpoint.url,
      credentials: { accessKeyId: 'AKIDLEDGERFAKE', secretAccessKey: 'ledger-fake-secret' },
      maxAttempts,
    });
    clients.push(c);
    return new DynamoDbLedger({ client: c, tableName: TABLE });
  };

  it('throttling and 5xx are retryable (after the SDK retried), client errors are not', async () => {
    const cases = [
      { fault: { kind: 'error', type: 'ProvisionedThroughputExceededException' }, retryable: true },
      { fault: { kind: 'throttle' }, retryable: true },
      { fault: { kind: 'status', status: 500, type: 'InternalServerError' }, retryable: true },
      { fault: { kind: 'status', status: 503, type: 'ServiceUnavailable' }, retryable: true },
      { fault: { kind: 'error', type: 'AccessDeniedException' }, retryable: false },
      { fault: { kind: 'error', type: 'ValidationException' }, retryable: false },
    ] as const;
    for (const { fault, retryable } of cases) {
      endpoint.requests.length = 0;
      endpoint.failNext(2, fault);
      const error = await caught(ledgerAt(2).getMailboxState('mbx'));
      expect(error, fault.kind === 'throttle' ? 'ThrottlingException' : fault.type).toMatchObject({ code: 'LEDGER_FAILED', phase: 'ledger', retryable });
      expect(error.message).toContain(`DynamoDB table ${TABLE}`);
      expect(error.message).not.toContain('ledger-fake-secret');
      expect(endpoint.requests).toHaveLength(retryable ? 2 : 1);
      endpoint.failNext(0, fault);
    }
  });

  it('a refused connection is retryable', async () => {
    const closed = await startAwsJsonEndpoint();
    const url = closed.url;
    await closed.close();
    const c = new DynamoDBClient({ region: 'us-east-1', endpoint: url, credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, maxAttempts: 1 });
    clients.push(c);
    const error = await caught(new DynamoDbLedger({ client: c, tableName: TABLE }).acquireLease('m', 'o', 1_000, T0));
    expect(error).toMatchObject({ code: 'LEDGER_FAILED', phase: 'lease', retryable: true });
  });
});
