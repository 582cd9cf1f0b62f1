/**
 * DynamoDbLedger against dynalite with the real DynamoDBClient: every UidlLedger method,
 * conditional conflicts, lease contention and expiry, chunked and Query lookups, the TTL
 * attribute. dynalite never expires items and ignores ReturnValuesOnConditionCheckFailure, so
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
import { DrainError } from '../../lib/drain/errors.js';
import type { DrainEvent } from '../../lib/drain/events.js';
import { skippedEventId } from '../../lib/drain/keys.js';
import type { LedgerEntry, RunSummary } from '../../lib/drain/ports.js';
import { startAwsJsonEndpoint, type AwsJsonEndpoint } from '../support/aws-json-endpoint.js';
import { startDynalite, type DynamoDbStandin } from '../support/aws-standins.js';
import { storedEntry } from '../support/ledger-fixtures.js';
import { drainErrorOf as caught } from '../support/drain-error.js';

const TABLE = 'popdrain-ledger';
const T0 = Date.UTC(2025, 5, 1, 12, 0, 0);

function skippedEntry(mailboxId: string, uidl: string, size = 50_000_000): LedgerEntry {
  const id = skippedEventId(mailboxId, uidl);
  const event: DrainEvent = {
    id,
    detailType: 'Email Skipped',
    time: new Date(T0).toISOString(),
    detail: { schemaVersion: 1, id, mailboxId, uidl, reason: 'too-large', size, limit: 25_000_000, seenAt: new Date(T0).toISOString() },
  };
  return { mailboxId, uidl, status: 'skipped', size, firstSeenAt: T0, event };
}

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

  it('records entries once; a second record returns what the first run recorded', async () => {
    const mbx = newMailbox();
    const first = [storedEntry(mbx, 'uidl-1'), skippedEntry(mbx, 'uidl-2')];
    expect(await ledger.record(first)).toEqual([
      { uidl: 'uidl-1', ok: true },
      { uidl: 'uidl-2', ok: true },
    ]);

    const countingClient = db.client();
    const counts = countCommands(countingClient);
    const other = ledgerWith({}, countingClient);
    const retry = { ...storedEntry(mbx, 'uidl-1'), sha256: 'f'.repeat(64), firstSeenAt: T0 + 1 };
    const outcomes = await other.record([retry, storedEntry(mbx, 'uidl-3')]);
    expect(outcomes).toEqual([
      { uidl: 'uidl-1', ok: false, conflict: first[0] },
      { uidl: 'uidl-3', ok: true },
    ]);
    // dynalite ignores ReturnValuesOnConditionCheckFailure: the existing item came from a GetItem.
    expect(counts.get('GetItemCommand')).toBe(1);

    const found = await ledger.lookup(mbx, ['uidl-1', 'uidl-2', 'uidl-3', 'uidl-unknown']);
    expect([...found.keys()].sort()).toEqual(['uidl-1', 'uidl-2', 'uidl-3']);
    expect(found.get('uidl-1')).toEqual(first[0]);
    expect(found.get('uidl-2')).toEqual(first[1]);

    const item = await rawItem(mbx, 'm#uidl-1');
    expect(item?.['pk']).toEqual({ S: mbx });
    expect(item?.['status']).toEqual({ S: 'stored' });
    expect(JSON.parse(item?.['event']?.S ?? 'null')).toEqual(first[0]!.event);
    expect(item?.['expiresAt']).toBeUndefined();
  });

  it('records many entries in parallel, keeping the order of outcomes', async () => {
    const mbx = newMailbox();
    const entries = Array.from({ length: 200 }, (_, i) => storedEntry(mbx, `u${i}`));
    await ledger.record(entries.filter((_, i) => i % 3 === 0));
    const outcomes = await ledgerWith({ concurrency: 7 }).record(entries);
    expect(outcomes.map((o) => o.uidl)).toEqual(entries.map((e) => e.uidl));
    expect(outcomes.map((o) => o.ok)).toEqual(entries.map((_, i) => i % 3 !== 0));
  });

  it('refuses entries it must not write, before writing any', async () => {
    const mbx = newMailbox();
    for (const bad of [{ ...storedEntry(mbx, 'x'), uidl: '' }, { ...storedEntry(mbx, 'y'), status: 'announced' as const }]) {
      const error = await caught(ledger.record([storedEntry(mbx, 'ok'), bad]));
      expect(error).toMatchObject({ code: 'LEDGER_FAILED', retryable: false });
    }
    expect((await ledger.lookup(mbx, ['ok'])).size).toBe(0);
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

  it('marks announced: stored becomes announced, skipped stays skipped, the first time is kept, missing entries are left alone', async () => {
    const mbx = newMailbox();
    await ledger.record([storedEntry(mbx, 's'), skippedEntry(mbx, 'k')]);
    await ledger.markAnnounced(mbx, ['s', 'k', 's', 'never-recorded'], T0 + 1_000);
    await ledger.markAnnounced(mbx, ['s', 'k'], T0 + 2_000);
    const found = await ledger.lookup(mbx, ['s', 'k', 'never-recorded']);
    expect(found.get('s')).toMatchObject({ status: 'announced', announcedAt: T0 + 1_000 });
    expect(found.get('k')).toMatchObject({ status: 'skipped', announcedAt: T0 + 1_000 });
    expect(found.has('never-recorded')).toBe(false);
    expect(await rawItem(mbx, 'm#never-recorded')).toBeUndefined();
  });

  it('marks deleted: deletedAt (first kept) and the TTL attribute expiresAt in epoch seconds', async () => {
    const mbx = newMailbox();
    await ledger.record([storedEntry(mbx, 'd')]);
    await ledger.markAnnounced(mbx, ['d'], T0);
    const expiresAt = Math.floor((T0 + 30 * 86_400_000) / 1000);
    await ledger.markDeleted(mbx, ['d', 'gone'], T0 + 5_000, expiresAt);
    await ledger.markDeleted(mbx, ['d'], T0 + 9_000, expiresAt + 60);

    const item = await rawItem(mbx, 'm#d');
    // dynalite never expires items: what can be checked is the attribute DynamoDB's TTL reads.
    expect(item?.['expiresAt']).toEqual({ N: String(expiresAt + 60) });
    expect(item?.['deletedAt']).toEqual({ N: String(T0 + 5_000) });
    const entry = (await ledger.lookup(mbx, ['d'])).get('d');
    expect(entry).toMatchObject({ status: 'announced', deletedAt: T0 + 5_000, expiresAt: expiresAt + 60 });
    expect(await rawItem(mbx, 'm#gone')).toBeUndefined();
  });

  it('lists pending (stored, not announced) entries', async () => {
    const mbx = newMailbox();
    await ledger.record([storedEntry(mbx, 'p1'), storedEntry(mbx, 'p2'), storedEntry(mbx, 'p3'), skippedEntry(mbx, 'p4')]);
    await ledger.markAnnounced(mbx, ['p2'], T0);
    await ledger.updateMailboxState(mbx, { backlogSince: T0 });
    const pending = await ledger.pending(mbx);
    expect(pending.map((e) => e.uidl).sort()).toEqual(['p1', 'p3']);
    expect(pending.find((e) => e.uidl === 'p1')).toEqual(storedEntry(mbx, 'p1'));
    expect(await ledger.pending(newMailbox())).toEqual([]);
  });

  it('leases: one owner at a time, renewal by the owner only, expiry, release', async () => {
    const mbx = newMailbox();
    const ttl = 60_000;
    const a = await ledger.acquireLease(mbx, 'owner-a', ttl, T0);
    expect(a).toEqual({ mailboxId: mbx, owner: 'owner-a', expiresAt: T0 + ttl });
    expect(await ledger.acquireLease(mbx, 'owner-b', ttl, T0 + 1_000)).toBeUndefined();
    expect(await ledger.leaseHolder(mbx, T0 + 1_000)).toEqual(a);
    // The holder may take it again (a restarted run with the same owner id).
    expect(await ledger.acquireLease(mbx, 'owner-a', ttl, T0 + 2_000)).toEqual({ mailboxId: mbx, owner: 'owner-a', expiresAt: T0 + 2_000 + ttl });

    const renewed = await ledger.renewLease(a!, ttl, T0 + 30_000);
    expect(renewed.expiresAt).toBe(T0 + 30_000 + ttl);
    expect(await ledger.acquireLease(mbx, 'owner-b', ttl, T0 + ttl + 1_000)).toBeUndefined();
    const leaseItem = await rawItem(mbx, 'lease');
    expect(leaseItem?.['expiresAt']).toEqual({ N: String(Math.ceil((T0 + 30_000 + ttl) / 1000)) });

    // Expired: another owner takes it; the first one's renewal and release fail quietly or loudly.
    const expiredAt = renewed.expiresAt;
    expect(await ledger.leaseHolder(mbx, expiredAt)).toBeUndefined();
    const b = await ledger.acquireLease(mbx, 'owner-b', ttl, expiredAt);
    expect(b).toEqual({ mailboxId: mbx, owner: 'owner-b', expiresAt: expiredAt + ttl });
    const lost = await caught(ledger.renewLease(renewed, ttl, expiredAt + 1));
    expect(lost).toMatchObject({ code: 'LEASE_HELD', phase: 'lease', retryable: false });
    expect(lost.message).toContain(mbx);
    await ledger.releaseLease(renewed); // not ours any more: ignored
    expect(await ledger.leaseHolder(mbx, expiredAt + 1)).toEqual(b);

    await ledger.releaseLease(b!);
    expect(await ledger.leaseHolder(mbx, expiredAt + 1)).toBeUndefined();
    expect(await rawItem(mbx, 'lease')).toBeUndefined();
    await ledger.releaseLease(b!); // already gone: ignored
    const c = await ledger.acquireLease(mbx, 'owner-c', ttl, expiredAt + 2);
    expect(c?.owner).toBe('owner-c');
    const renewGone = await caught(ledger.renewLease({ mailboxId: newMailbox(), owner: 'x', expiresAt: 0 }, ttl, T0));
    expect(renewGone.code).toBe('LEASE_HELD');
  });

  it('lets exactly one of many simultaneous owners take a lease', async () => {
    const mbx = newMailbox();
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => ledgerWith({}).acquireLease(mbx, `owner-${i}`, 60_000, T0)),
    );
    const winners = results.filter((r) => r !== undefined);
    expect(winners).toHaveLength(1);
    expect(await ledger.leaseHolder(mbx, T0)).toEqual(winners[0]);
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

  it('keeps the mailbox state: set fields, null removes, undefined keeps', async () => {
    const mbx = newMailbox();
    expect(await ledger.getMailboxState(mbx)).toEqual({ mailboxId: mbx });
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
    await ledger.updateMailboxState(mbx, { lastRun, lastSuccessAt: T0 + 5_000, backlogSince: T0, uidlResetTrippedAt: T0, acceptUidlReset: true });
    expect(await ledger.getMailboxState(mbx)).toEqual({
      mailboxId: mbx,
      lastRun,
      lastSuccessAt: T0 + 5_000,
      backlogSince: T0,
      uidlResetTrippedAt: T0,
      acceptUidlReset: true,
    });
    await ledger.updateMailboxState(mbx, { backlogSince: null, uidlResetTrippedAt: null, acceptUidlReset: null });
    await ledger.updateMailboxState(mbx, {});
    expect(await ledger.getMailboxState(mbx)).toEqual({ mailboxId: mbx, lastRun, lastSuccessAt: T0 + 5_000 });
    expect(await rawItem(mbx, 'state')).toMatchObject({ lastRun: { M: expect.objectContaining({ runId: { S: 'run-1' } }) } });
    // State, lease and messages share the partition without showing up in each other's reads.
    expect(await ledger.pending(mbx)).toEqual([]);
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
