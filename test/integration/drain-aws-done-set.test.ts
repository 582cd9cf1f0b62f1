/**
 * The DynamoDB ledger's done set seen from the engine: drainMailbox against a real Dovecot into
 * S3MessageStore (s3rver), DynamoDbLedger (dynalite) and EventBridgeSink (the recording AWS JSON
 * endpoint), with real SDK clients, fake credentials and loopback endpoints.
 *
 * What is counted: the ledger keys each BatchGetItem/GetItem asks for (a middleware on the
 * ledger's own client), the RETR commands Dovecot reports at logout (`retr=N/bytes`), the S3
 * objects, and the `Email Stored` entries the bus received.
 *
 * The done set promises (lib/adapters/aws/dynamodb-done-set.ts, done-set-codec.ts): it answers
 * only for messages the policy keeps; a policy that may delete reads every message's own item;
 * a lagging set only costs per-message reads. It is trusted under `keep`: an entry that no
 * per-message item backs (forged here) hides a message from keep runs, which leave it on the
 * server; it is never deleted unstored.
 */
import { readFile } from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteItemCommand, DynamoDBServiceException, PutItemCommand, QueryCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeShard, encodedBytes, encodeShard, MAX_SHARD_PAYLOAD_BYTES, shardOf, type DoneEntry } from '../../lib/adapters/aws/done-set-codec.js';
import { doneKey, DynamoDbDoneSet } from '../../lib/adapters/aws/dynamodb-done-set.js';
import { DynamoDbLedger } from '../../lib/adapters/aws/dynamodb-ledger.js';
import { DynamoDbReader } from '../../lib/adapters/aws/dynamodb-reader.js';
import { EventBridgeSink } from '../../lib/adapters/aws/eventbridge-sink.js';
import { DEFAULT_S3_PREFIX, S3MessageStore } from '../../lib/adapters/aws/s3-store.js';
import { drainMailbox } from '../../lib/drain/drain-mailbox.js';
import { messageKey } from '../../lib/drain/keys.js';
import type { MailboxConfig } from '../../lib/drain/mailbox.js';
import type { DrainLogger, DrainPorts, LogFields } from '../../lib/drain/ports.js';
import type { DrainReport } from '../../lib/drain/report.js';
import { startAwsJsonEndpoint, type AwsJsonEndpoint, type WireEntry } from '../../testkit/aws/json-endpoint.js';
import { startDynalite, startS3rver, type DynamoDbStandin, type S3Standin } from '../../testkit/aws/standins.js';
import { dovecotMailbox, staticCredentials, testMessage } from '../../testkit/fixtures/drain-fixtures.js';
import { startDovecot, type Dovecot } from '../../testkit/pop3-servers/dovecot.js';

const REGION = 'us-east-1';
const FAKE_CREDENTIALS = { accessKeyId: 'AKIDDONESETTESTFAKE', secretAccessKey: 'done-set-test-fake-secret' };
const BUCKET = 'popdrain-done-set-test';
const TABLE = 'popdrain-done-set-ledger';
const BUS = 'popdrain-done-set-bus';
const PASSWORD = 'done-set-test-password';

let dovecot: Dovecot;
let s3: S3Standin;
let dynamo: DynamoDbStandin;
let aws: AwsJsonEndpoint;
let s3Client: S3Client;
let admin: DynamoDBClient;
let ebClient: EventBridgeClient;
let spoolDir: string;
const passwords: Record<string, string> = {};

beforeAll(async () => {
  [dovecot, s3, dynamo, aws] = await Promise.all([startDovecot(), startS3rver(), startDynalite(), startAwsJsonEndpoint()]);
  await s3.createBucket(BUCKET);
  await dynamo.createLedgerTable(TABLE);
  s3Client = s3.client();
  admin = dynamo.client();
  ebClient = new EventBridgeClient({ region: REGION, endpoint: aws.url, credentials: FAKE_CREDENTIALS });
  spoolDir = await mkdtemp(join(tmpdir(), 'popdrain-done-set-spool-'));
});

afterAll(async () => {
  ebClient?.destroy();
  await Promise.all([dovecot?.stop(), s3?.stop(), dynamo?.stop(), aws?.close()]);
  if (spoolDir !== undefined) await rm(spoolDir, { recursive: true, force: true });
});

// -------------------------------------------------------------------------------------------
// Helpers

/** The ledger keys (sk) a ledger's client read, and an optional fault for its writes. */
interface LedgerProbe {
  ledger: DynamoDbLedger;
  /** Sort keys asked for by BatchGetItem and GetItem, in order. */
  reads: string[];
  /** Sort keys of the PutItems of done-set items that reached the table (or were failed). */
  donePuts: string[];
}

function probedLedger(opts: { logger?: DrainLogger; failDonePut?: (sk: string) => Error | undefined } = {}): LedgerProbe {
  const client = dynamo.client();
  const probe: Omit<LedgerProbe, 'ledger'> = { reads: [], donePuts: [] };
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = (context as { commandName?: string }).commandName;
      const input = args.input as {
        RequestItems?: Record<string, { Keys?: Array<{ sk?: { S?: string } }> }>;
        Key?: { sk?: { S?: string } };
        Item?: { sk?: { S?: string } };
      };
      if (name === 'BatchGetItemCommand') {
        for (const request of Object.values(input.RequestItems ?? {})) for (const key of request.Keys ?? []) probe.reads.push(key.sk?.S ?? '');
      }
      if (name === 'GetItemCommand') probe.reads.push(input.Key?.sk?.S ?? '');
      const sk = input.Item?.sk?.S ?? '';
      if (name === 'PutItemCommand' && sk.startsWith('done#')) {
        probe.donePuts.push(sk);
        const fault = opts.failDonePut?.(sk);
        if (fault !== undefined) throw fault;
      }
      return next(args);
    },
    { step: 'initialize', name: 'doneSetProbe' },
  );
  return { ...probe, ledger: new DynamoDbLedger({ client, tableName: TABLE, logger: opts.logger }) };
}

function portsWith(ledger: DynamoDbLedger): DrainPorts {
  return {
    store: new S3MessageStore({ client: s3Client, bucket: BUCKET, spoolDir }),
    ledger,
    events: new EventBridgeSink({ client: ebClient, eventBusName: BUS, baseDelayMs: 1, maxDelayMs: 10 }),
    credentials: staticCredentials(passwords),
  };
}

async function newUser(name: string, count: number): Promise<MailboxConfig> {
  passwords[name] = PASSWORD;
  await dovecot.addUser(name, PASSWORD);
  await dovecot.deliverMany(name, Array.from({ length: count }, (_, i) => testMessage(i + 1, name)));
  return dovecotMailbox(dovecot, name);
}

function drain(mailbox: MailboxConfig, ledger: DynamoDbLedger): Promise<DrainReport> {
  return drainMailbox(mailbox, portsWith(ledger), {}, { leaseTtlMs: 10_000 });
}

/** RETRs of each of the user's POP3 sessions so far, from Dovecot's logout lines. */
async function retrsPerSession(user: string): Promise<number[]> {
  const log = await readFile(dovecot.logPath, 'utf8');
  return log
    .split('\n')
    .filter((line) => line.includes(`pop3(${user})`) && line.includes('Logged out'))
    .map((line) => Number(/retr=(\d+)\//.exec(line)?.[1] ?? Number.NaN));
}

/** The UIDLs of the `Email Stored` entries the bus received for the mailbox, in order. */
function storedUidls(mailboxId: string): string[] {
  return aws
    .putEventsBatches()
    .flat()
    .filter((e: WireEntry) => e.DetailType === 'Email Stored')
    .map((e) => JSON.parse(e.Detail ?? '{}') as { mailboxId?: string; uidl?: string })
    .filter((d) => d.mailboxId === mailboxId)
    .map((d) => String(d.uidl));
}

async function objectKeys(mailboxId: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3Client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${DEFAULT_S3_PREFIX}${mailboxId}/`, ContinuationToken: token }));
    for (const o of page.Contents ?? []) keys.push(o.Key!);
    token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
  return keys.sort();
}

const keysOf = (mailboxId: string, uidls: readonly string[]): string[] => uidls.map((u) => `${DEFAULT_S3_PREFIX}${messageKey(mailboxId, u)}`).sort();

/** The mailbox's done-set items: sort key and decoded entries. */
async function doneItems(mailboxId: string): Promise<Map<string, DoneEntry[]>> {
  const out = await admin.send(
    new QueryCommand({
      TableName: TABLE,
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :done)',
      ExpressionAttributeValues: { ':pk': { S: mailboxId }, ':done': { S: 'done#' } },
      ConsistentRead: true,
    }),
  );
  return new Map((out.Items ?? []).map((item) => [item['sk']!.S!, decodeShard(item['d']!.B!)]));
}

const messageReads = (reads: readonly string[]): string[] => reads.filter((sk) => sk.startsWith('m#')).map((sk) => sk.slice(2)).sort();
const uidlsIn = (set: Map<string, DoneEntry[]>): string[] => [...set.values()].flat().map((e) => e.uidl).sort();
const doneReads = (reads: readonly string[]): string[] => reads.filter((sk) => sk.startsWith('done#'));

function recordingLogger(): DrainLogger & { warnings: Array<{ message: string; fields?: LogFields }> } {
  const warnings: Array<{ message: string; fields?: LogFields }> = [];
  return { warnings, debug: () => {}, info: () => {}, error: () => {}, warn: (message, fields) => warnings.push({ message, fields }) };
}

// -------------------------------------------------------------------------------------------

describe('the done set through the engine (Dovecot, s3rver, dynalite, recording bus)', () => {
  it('keep: stores each message once, later runs read the done set and fetch nothing again; delete then reads every item and empties the server', async () => {
    const mailbox = await newUser('keep120', 120);

    // Run 1: the mailbox's first run stores and announces all 120.
    const r1 = await drain(mailbox, probedLedger().ledger);
    expect(r1).toMatchObject({ ok: true, stopReason: 'complete', fetched: 120, announced: 120, deleted: 0 });
    const first = storedUidls(mailbox.id);
    expect(new Set(first).size).toBe(120);
    expect(await objectKeys(mailbox.id)).toEqual(keysOf(mailbox.id, first));
    expect(await retrsPerSession('keep120')).toEqual([120]);

    // Run 2: 5 new messages; only they are fetched, stored and announced.
    await dovecot.deliverMany('keep120', Array.from({ length: 5 }, (_, i) => testMessage(1000 + i, 'keep120-new')));
    const p2 = probedLedger();
    const r2 = await drain(mailbox, p2.ledger);
    expect(r2).toMatchObject({ ok: true, fetched: 5, announced: 5, alreadyKnown: 120 });
    const fresh = storedUidls(mailbox.id).slice(120);
    expect(fresh).toHaveLength(5);
    expect(fresh.filter((u) => first.includes(u))).toEqual([]);
    expect(await objectKeys(mailbox.id)).toEqual(keysOf(mailbox.id, [...first, ...fresh]));
    expect(await retrsPerSession('keep120')).toEqual([120, 5]);
    // Its lookup found the done set empty, read every item and wrote the set from them.
    expect(doneReads(p2.reads)).toHaveLength(16);
    expect(messageReads(p2.reads)).toEqual([...first, ...fresh].sort());
    const set = await doneItems(mailbox.id);
    expect(uidlsIn(set)).toEqual([...first].sort());
    expect(set.size).toBeGreaterThan(1);

    // Run 3: nothing new. The done set answers for the 120; only the 5 it does not hold yet
    // are read one by one; nothing is retrieved, stored or announced.
    const p3 = probedLedger();
    const r3 = await drain(mailbox, p3.ledger);
    expect(r3).toMatchObject({ ok: true, fetched: 0, announced: 0, alreadyKnown: 125 });
    expect(doneReads(p3.reads)).toHaveLength(16);
    expect(messageReads(p3.reads)).toEqual([...fresh].sort());
    expect(await retrsPerSession('keep120')).toEqual([120, 5, 0]);
    expect(storedUidls(mailbox.id)).toHaveLength(125);

    // Run 4: the policy becomes delete. The done set never answers a message the policy may
    // delete: every message's own item is read, and each is deleted unseen (UIDL and size as
    // stored), without a RETR.
    const p4 = probedLedger();
    const r4 = await drain({ ...mailbox, deletePolicy: { mode: 'delete' } }, p4.ledger);
    expect(r4).toMatchObject({ ok: true, fetched: 0, announced: 0, deleted: 125 });
    expect(messageReads(p4.reads)).toEqual([...first, ...fresh].sort());
    expect(await retrsPerSession('keep120')).toEqual([120, 5, 0, 0]);
    expect(await dovecot.listMaildir('keep120')).toEqual([]);
    // Every message stored exactly once: one object and one Email Stored event per UIDL.
    const all = storedUidls(mailbox.id);
    expect(new Set(all).size).toBe(all.length);
    expect(all.sort()).toEqual([...first, ...fresh].sort());
    expect(await objectKeys(mailbox.id)).toEqual(keysOf(mailbox.id, all));
  }, 120_000);

  it('a done set that lags or holds an entry no item backs never loses a message', async () => {
    const user = 'stale70';
    const mailbox = await newUser(user, 70);
    await drain(mailbox, probedLedger().ledger); // stores the 70
    await drain(mailbox, probedLedger().ledger); // writes the done set from their items
    const first = storedUidls(mailbox.id);
    const set = await doneItems(mailbox.id);
    expect(uidlsIn(set)).toEqual([...first].sort());

    // Lagging: one done-set item is gone (as if its writes had failed). Its messages are read
    // one by one and stay known; nothing is fetched again.
    const [lostSk, lostEntries] = [...set].find(([, entries]) => entries.length > 0)!;
    await admin.send(new DeleteItemCommand({ TableName: TABLE, Key: { pk: { S: mailbox.id }, sk: { S: lostSk } } }));
    const lag = probedLedger();
    const r3 = await drain(mailbox, lag.ledger);
    expect(r3).toMatchObject({ ok: true, fetched: 0, alreadyKnown: 70 });
    expect(messageReads(lag.reads)).toEqual(lostEntries.map((e) => e.uidl).sort());

    // An entry no per-message item backs: a new message whose UIDL is written into the done
    // set by hand before any run saw it. Dovecot's UIDL is the UID (8 hex digits) and the
    // UIDVALIDITY; the new message gets UID 71.
    await dovecot.deliver(user, testMessage(71, `${user}-new`));
    const forged = `${(71).toString(16).toUpperCase().padStart(8, '0')}${first[0]!.slice(8)}`;
    const index = shardOf(forged);
    const entries = [...((await doneItems(mailbox.id)).get(doneKey(mailbox.id, index)['sk']!.S!) ?? [])];
    entries.push({ uidl: forged, size: 300, firstSeenAt: Math.floor(Date.now() / 1000) * 1000, skipped: false });
    await admin.send(new PutItemCommand({ TableName: TABLE, Item: { ...doneKey(mailbox.id, index), v: { N: '99' }, n: { N: String(entries.length) }, d: { B: encodeShard(entries) } } }));

    // Under keep the done set is trusted: the message counts as kept and stays on the server,
    // neither fetched nor deleted.
    const r4 = await drain(mailbox, probedLedger().ledger);
    expect(r4).toMatchObject({ ok: true, fetched: 0, deleted: 0, alreadyKnown: 71 });
    expect(await dovecot.listMaildir(user)).toHaveLength(71);
    expect(storedUidls(mailbox.id)).not.toContain(forged);

    // A policy that may delete never decides from the done set: the forged UIDL's own item is
    // read, it is absent, so the message is fetched, stored and announced before its deletion.
    const p5 = probedLedger();
    const r5 = await drain({ ...mailbox, deletePolicy: { mode: 'delete' } }, p5.ledger);
    expect(r5).toMatchObject({ ok: true, fetched: 1, announced: 1, deleted: 71 });
    expect(messageReads(p5.reads)).toContain(forged);
    expect(storedUidls(mailbox.id).slice(70)).toEqual([forged]);
    expect(await objectKeys(mailbox.id)).toEqual(keysOf(mailbox.id, [...first, forged]));
    expect(await dovecot.listMaildir(user)).toEqual([]);
  }, 120_000);

  it('a done-set write that fails is one warning (mailbox, shard, code) and the run succeeds', async () => {
    const user = 'warn70';
    const mailbox = await newUser(user, 70);
    await drain(mailbox, probedLedger().ledger);
    const logger = recordingLogger();
    let failed: string | undefined;
    const probe = probedLedger({
      logger,
      failDonePut: (sk) => {
        if (failed !== undefined) return undefined;
        failed = sk;
        return new DynamoDBServiceException({ name: 'ThrottlingException', $fault: 'client', $metadata: { httpStatusCode: 400 }, message: 'Rate exceeded' });
      },
    });
    const report = await drain(mailbox, probe.ledger);
    expect(report).toMatchObject({ ok: true, stopReason: 'complete', fetched: 0, alreadyKnown: 70 });
    expect(failed).toMatch(/^done#\d\d$/);
    expect(logger.warnings).toEqual([
      { message: expect.stringMatching(/^done-set write failed/), fields: { mailboxId: mailbox.id, shard: failed, code: 'ThrottlingException', step: 'put' } },
    ]);
    // The other shards were written; the failed one was not, and was tried once.
    const set = await doneItems(mailbox.id);
    expect(set.has(failed!)).toBe(false);
    expect(set.size).toBe(new Set(probe.donePuts).size - 1);
    expect(probe.donePuts.filter((sk) => sk === failed)).toHaveLength(1);
  }, 120_000);

  it('a full shard is not rewritten when nothing more fits in it (no write per run once a mailbox overflows)', async () => {
    const mbx = 'mbx-full-shard';
    const entry = (uidl: string): DoneEntry => ({ uidl, size: 4096, firstSeenAt: 1_700_000_000_000, skipped: false });
    // UIDLs of shard 0 until the shard is full, then 40 more that cannot fit.
    const full: DoneEntry[] = [];
    const extra: DoneEntry[] = [];
    let bytes = 0;
    for (let n = 0; extra.length < 40; n++) {
      const uidl = `full-${String(n).padStart(10, '0')}`;
      if (shardOf(uidl) !== 0) continue;
      const e = entry(uidl);
      if (bytes + encodedBytes(e) <= MAX_SHARD_PAYLOAD_BYTES && extra.length === 0) {
        full.push(e);
        bytes += encodedBytes(e);
      } else extra.push(e);
    }
    await admin.send(new PutItemCommand({ TableName: TABLE, Item: { ...doneKey(mbx, 0), v: { N: '7' }, n: { N: String(full.length) }, d: { B: encodeShard(full) } } }));
    const client = dynamo.client();
    const puts: string[] = [];
    client.middlewareStack.add(
      (next, context) => async (args) => {
        if ((context as { commandName?: string }).commandName === 'PutItemCommand') puts.push((args.input as { Item?: { sk?: { S?: string } } }).Item?.sk?.S ?? '');
        return next(args);
      },
      { step: 'initialize' },
    );
    const doneSet = new DynamoDbDoneSet(client, TABLE, new DynamoDbReader(client, TABLE, 4, async () => {}));
    const listed = new Set([...full, ...extra].map((e) => e.uidl));
    const shards = await doneSet.read(mbx);
    expect(shards[0]!.entries).toHaveLength(full.length);
    await doneSet.add(mbx, shards, extra, listed);
    expect(puts).toEqual([]);
    // One entry leaves the server: the shard is rewritten without it (and one more fits).
    listed.delete(full[0]!.uidl);
    await doneSet.add(mbx, await doneSet.read(mbx), extra, listed);
    expect(puts).toEqual(['done#00']);
    const after = (await doneItems(mbx)).get('done#00')!.map((e) => e.uidl);
    expect(after).not.toContain(full[0]!.uidl);
    expect(after).toHaveLength(full.length);
  }, 60_000);
});
