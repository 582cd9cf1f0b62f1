/**
 * drainMailbox end to end into the AWS adapters: a real Dovecot, S3MessageStore on s3rver,
 * DynamoDbLedger on dynalite, EventBridgeSink and SecretsManagerCredentials on the recording
 * AWS JSON endpoint (real SDK clients, explicit fake credentials, region and loopback
 * endpoints), and for the faults s3rver cannot produce the scripted S3 endpoint.
 *
 * What the stand-ins cannot show is not claimed here: s3rver ignores `If-None-Match` (the
 * conditional write is aws-s3-store.test.ts's) and dynalite never expires items (the TTL
 * attribute's value is asserted, not an expiry).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { GetItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DynamoDbLedger, LEDGER_TTL_ATTRIBUTE, MESSAGE_SORT_KEY_PREFIX } from '../../lib/adapters/aws/dynamodb-ledger.js';
import { EventBridgeSink, s3ObjectArn } from '../../lib/adapters/aws/eventbridge-sink.js';
import { DEFAULT_PART_SIZE_BYTES, DEFAULT_QUEUE_SIZE, DEFAULT_S3_PREFIX, S3MessageStore, SHA256_METADATA_KEY } from '../../lib/adapters/aws/s3-store.js';
import { SecretsManagerCredentials } from '../../lib/adapters/aws/secrets-manager-credentials.js';
import { drainMailbox, type DrainBudget, type DrainOptions } from '../../lib/drain/drain-mailbox.js';
import { EVENT_SOURCE } from '../../lib/drain/events.js';
import { messageDigest, messageKey, storedEventId } from '../../lib/drain/keys.js';
import type { MailboxConfig } from '../../lib/drain/mailbox.js';
import type { DrainLogger, DrainPorts, LedgerEntry, LookupOptions, UidlLedger } from '../../lib/drain/ports.js';
import type { DrainReport } from '../../lib/drain/report.js';
import {
  GET_SECRET_VALUE,
  PUT_EVENTS,
  startAwsJsonEndpoint,
  type AwsJsonEndpoint,
  type EntryFault,
  type WireEntry,
} from '../../testkit/aws/json-endpoint.js';
import { startDynalite, startS3rver, type DynamoDbStandin, type S3Standin } from '../../testkit/aws/standins.js';
import { startDovecot, type Dovecot } from '../../testkit/pop3-servers/dovecot.js';
import { dovecotMailbox, servedForm, sha256, testMessage } from '../../testkit/fixtures/drain-fixtures.js';
import { validateEventEnvelope } from '../support/event-schema.js';
import { startTokenServer, type OAuth2TokenServer } from '../../testkit/oauth2/token-server.js';
import { s3ErrorReply, startS3ScriptedEndpoint, type S3ScriptedEndpoint } from '../../testkit/aws/s3-scripted-endpoint.js';

const REGION = 'us-east-1';
/** Fake credentials for the clients the stand-ins don't check (s3rver's come from aws-standins). */
const FAKE_CREDENTIALS = { accessKeyId: 'AKIDDRAINAWSTESTFAKE', secretAccessKey: 'drain-aws-test-fake-secret' };
const BUCKET = 'popdrain-drain-test';
const TABLE = 'popdrain-drain-ledger';
const BUS = 'popdrain-drain-bus';
const ACCOUNT = '123456789012';
const DAY_S = 86_400;
const MiB = 1024 * 1024;
const GC_SAMPLE_INTERVAL_MS = 100;

v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;

let dovecot: Dovecot;
let s3: S3Standin;
let dynamo: DynamoDbStandin;
let aws: AwsJsonEndpoint;
let s3Client: S3Client;
let ddbClient: DynamoDBClient;
let ebClient: EventBridgeClient;
let smClient: SecretsManagerClient;
let spoolDir: string;
let userCounter = 0;
const cleanups: Array<() => Promise<void>> = [];

/** PutEvents entries the endpoint accepted (and those it reported failed), in order. */
let accepted: WireEntry[] = [];
let refused: WireEntry[] = [];
/** Entries for which this returns a fault are reported failed by the bus, on every attempt. */
let entryFault: ((entry: WireEntry, detail: Record<string, unknown>) => EntryFault | undefined) | undefined;

beforeAll(async () => {
  [dovecot, s3, dynamo, aws] = await Promise.all([startDovecot(), startS3rver(), startDynalite(), startAwsJsonEndpoint()]);
  await s3.createBucket(BUCKET);
  await dynamo.createLedgerTable(TABLE);
  s3Client = s3.client();
  ddbClient = dynamo.client();
  ebClient = new EventBridgeClient({ region: REGION, endpoint: aws.url, credentials: FAKE_CREDENTIALS });
  smClient = new SecretsManagerClient({ region: REGION, endpoint: aws.url, credentials: FAKE_CREDENTIALS });
  spoolDir = await mkdtemp(join(tmpdir(), 'popdrain-drain-aws-spool-'));
  aws.setEntryFaults((entry) => {
    const detail = JSON.parse(entry.Detail ?? '{}') as Record<string, unknown>;
    const fault = entryFault?.(entry, detail);
    (fault === undefined ? accepted : refused).push(entry);
    return fault;
  });
});

afterAll(async () => {
  ebClient?.destroy();
  smClient?.destroy();
  await Promise.all([dovecot?.stop(), s3?.stop(), dynamo?.stop(), aws?.close()]);
  if (spoolDir !== undefined) await rm(spoolDir, { recursive: true, force: true });
});

beforeEach(() => {
  accepted = [];
  refused = [];
  entryFault = undefined;
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  // Every writer removes its spool file, committed or not.
  expect(await readdir(spoolDir)).toEqual([]);
});

// -------------------------------------------------------------------------------------------
// Helpers

interface TestUser {
  user: string;
  mailbox: MailboxConfig;
  messages: Buffer[];
}

/** A Dovecot user whose password is a `{"password": ...}` secret in Secrets Manager. */
async function newUser(messages: Buffer[], extra: Partial<MailboxConfig> = {}): Promise<TestUser> {
  userCounter += 1;
  const user = `aws${userCounter}`;
  const password = `pw-${randomBytes(6).toString('hex')}`;
  await dovecot.addUser(user, password);
  const secretId = `popdrain/${user}`;
  aws.putSecret(secretId, JSON.stringify({ password }));
  await dovecot.deliverMany(user, messages);
  const mailbox = dovecotMailbox(dovecot, user, { secret: { type: 'secrets-manager', secretId }, ...extra });
  return { user, mailbox, messages };
}

function ledger(): DynamoDbLedger {
  return new DynamoDbLedger({ client: ddbClient, tableName: TABLE });
}

function ports(override: Partial<DrainPorts> = {}): DrainPorts {
  return {
    store: new S3MessageStore({ client: s3Client, bucket: BUCKET, spoolDir }),
    ledger: ledger(),
    // Short backoff: the bus's retries are the sink's own tests' subject; here they only cost time.
    events: new EventBridgeSink({ client: ebClient, eventBusName: BUS, baseDelayMs: 1, maxDelayMs: 10 }),
    credentials: new SecretsManagerCredentials({ client: smClient }),
    ...override,
  };
}

function run(mailbox: MailboxConfig, p: DrainPorts, budget: DrainBudget = {}, options: DrainOptions = {}): Promise<DrainReport> {
  return drainMailbox(mailbox, p, budget, { leaseTtlMs: 10_000, ...options });
}

async function objectKeys(mailboxId: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3Client.send(
      new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${DEFAULT_S3_PREFIX}${mailboxId}/`, ContinuationToken: token }),
    );
    for (const o of page.Contents ?? []) keys.push(o.Key!);
    token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
  return keys.sort();
}

async function getObject(key: string): Promise<{ bytes: Buffer; contentType?: string; metadata: Record<string, string> }> {
  const out = await s3Client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  const chunks: Buffer[] = [];
  for await (const chunk of out.Body as AsyncIterable<Buffer>) chunks.push(chunk);
  return { bytes: Buffer.concat(chunks), contentType: out.ContentType, metadata: out.Metadata ?? {} };
}

/** sha256 and size of an object, streamed (for the large one). */
async function objectDigest(key: string): Promise<{ sha256: string; size: number }> {
  const out = await s3Client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of out.Body as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { sha256: hash.digest('hex'), size };
}

function detailOf(entry: WireEntry): Record<string, unknown> {
  return JSON.parse(entry.Detail ?? '{}') as Record<string, unknown>;
}

/** Accepted `Email Stored` entries of a mailbox. */
function storedEntries(mailboxId: string, from: WireEntry[] = accepted): WireEntry[] {
  return from.filter((e) => e.DetailType === 'Email Stored' && detailOf(e).mailboxId === mailboxId);
}

/** The event as an EventBridge target receives it, built from what the client sent. */
function delivered(entry: WireEntry): Record<string, unknown> {
  return {
    version: '0',
    id: randomBytes(16).toString('hex'),
    'detail-type': entry.DetailType,
    source: entry.Source,
    account: ACCOUNT,
    // JSON 1.1 sends Time as epoch seconds; EventBridge delivers it without the fraction.
    time: new Date(Math.floor(Number(entry.Time)) * 1000).toISOString().replace('.000Z', 'Z'),
    region: REGION,
    resources: entry.Resources ?? [],
    detail: detailOf(entry),
  };
}

async function rawMessageItem(mailboxId: string, uidl: string) {
  const out = await ddbClient.send(
    new GetItemCommand({ TableName: TABLE, Key: { pk: { S: mailboxId }, sk: { S: `${MESSAGE_SORT_KEY_PREFIX}${uidl}` } }, ConsistentRead: true }),
  );
  return out.Item;
}

function uidlsOf(entries: WireEntry[]): string[] {
  return entries.map((e) => String(detailOf(e).uidl)).sort();
}

function recordingLogger(): DrainLogger & { messages: string[] } {
  const messages: string[] = [];
  const log = (message: string): void => {
    messages.push(message);
  };
  return { messages, debug: log, info: log, warn: log, error: log };
}

/** The UIDLs the server reports, by message number (from a dry run, which changes nothing). */
async function serverUidls(mailbox: MailboxConfig): Promise<string[]> {
  const report = await run(mailbox, ports(), {}, { dryRun: true });
  return report.plan!.fetch.sort((a, b) => a.number - b.number).map((m) => m.uidl);
}

// -------------------------------------------------------------------------------------------

describe('drain into S3, DynamoDB and EventBridge', () => {
  it('stores each message byte for byte under one key, records and announces it; a rerun fetches nothing', async () => {
    const messages = Array.from({ length: 23 }, (_, i) => testMessage(i, 'aws', 100 + i * 37));
    const { mailbox, user } = await newUser(messages);
    const report = await run(mailbox, ports());
    expect(report).toMatchObject({ stopReason: 'complete', ok: true, fetched: 23, announced: 23, deleted: 0, pendingAnnouncements: 0, failures: [] });
    expect(report.fetchedBytes).toBe(messages.reduce((n, m) => n + servedForm(m).length, 0));

    // One Email Stored event per message (plus the run's summary), in batches of at most 10.
    const stored = storedEntries(mailbox.id);
    expect(stored).toHaveLength(23);
    expect(new Set(stored.map((e) => detailOf(e).id)).size).toBe(23);
    const batches = aws.putEventsBatches();
    expect(batches.length).toBeGreaterThanOrEqual(3);
    for (const batch of batches) expect(batch.length).toBeLessThanOrEqual(10);
    const drained = accepted.filter((e) => e.DetailType === 'Mailbox Drained' && detailOf(e).mailboxId === mailbox.id);
    expect(drained).toHaveLength(1);
    expect(detailOf(drained[0]!)).toMatchObject({ id: report.runId, stopReason: 'complete', fetched: 23, announced: 23 });

    // One object per message, under a key derived from (mailbox, UIDL) that never holds the UIDL.
    const keys = await objectKeys(mailbox.id);
    expect(keys).toHaveLength(23);
    const bySubject = new Map(messages.map((m) => [/^Subject: (.*)$/m.exec(m.toString('latin1'))![1]!, m]));
    for (const entry of stored) {
      expect(entry.Source).toBe(EVENT_SOURCE);
      expect(entry.EventBusName).toBe(BUS);
      const detail = detailOf(entry) as {
        id: string;
        uidl: string;
        sha256: string;
        size: number;
        storage: { type: string; bucket: string; key: string };
        metadata: { subject: string };
      };
      const key = `${DEFAULT_S3_PREFIX}${messageKey(mailbox.id, detail.uidl)}`;
      expect(detail.storage).toEqual({ type: 's3', bucket: BUCKET, key });
      expect(key).not.toContain(detail.uidl);
      expect(detail.id).toBe(storedEventId(mailbox.id, detail.uidl));
      expect(entry.Resources).toEqual([s3ObjectArn(BUCKET, key)]);
      expect(validateEventEnvelope(delivered(entry))).toEqual([]);

      const original = bySubject.get(detail.metadata.subject)!;
      const served = servedForm(original);
      const object = await getObject(key);
      expect(object.bytes.equals(served)).toBe(true);
      expect(sha256(object.bytes)).toBe(detail.sha256);
      expect(object.bytes.length).toBe(detail.size);
      expect(object.contentType).toBe('message/rfc822');
      expect(object.metadata).toEqual({
        [SHA256_METADATA_KEY]: detail.sha256,
        'popdrain-mailbox': mailbox.id,
        'popdrain-uidl-digest': messageDigest(mailbox.id, detail.uidl),
      });

      // The ledger: announced, not deleted (keep policy), no expiry yet.
      const item = await rawMessageItem(mailbox.id, detail.uidl);
      expect(item?.['status']?.S).toBe('announced');
      expect(item?.['sha256']?.S).toBe(detail.sha256);
      expect(item?.['key']?.S).toBe(messageKey(mailbox.id, detail.uidl));
      expect(item?.['announcedAt']?.N).toBeDefined();
      expect(item?.[LEDGER_TTL_ATTRIBUTE]).toBeUndefined();
      expect(JSON.parse(item!['event']!.S!)).toMatchObject({ id: detail.id, detailType: 'Email Stored' });
    }
    for (const e of accepted) expect(validateEventEnvelope(delivered(e))).toEqual([]);

    // A rerun fetches, stores and announces nothing; the mailbox is untouched (keep policy).
    accepted = [];
    const again = await run(mailbox, ports());
    expect(again).toMatchObject({ stopReason: 'complete', ok: true, fetched: 0, alreadyKnown: 23, announced: 0, deleted: 0 });
    expect(storedEntries(mailbox.id)).toEqual([]);
    expect(await objectKeys(mailbox.id)).toEqual(keys);
    expect((await dovecot.listMaildir(user)).length).toBe(23);
  });

  it('delete policy: deletes what was stored and announced, and gives its ledger entries an expiry (expiresAt)', async () => {
    const { mailbox, user } = await newUser(Array.from({ length: 6 }, (_, i) => testMessage(i, 'aws-del')), { deletePolicy: { mode: 'delete' } });
    const before = Math.floor(Date.now() / 1000);
    const report = await run(mailbox, ports(), {}, { retentionDays: 30 });
    const after = Math.ceil(Date.now() / 1000);
    expect(report).toMatchObject({ stopReason: 'complete', ok: true, fetched: 6, announced: 6, deleted: 6 });
    expect(await dovecot.listMaildir(user)).toEqual([]);
    expect(await objectKeys(mailbox.id)).toHaveLength(6);
    for (const uidl of uidlsOf(storedEntries(mailbox.id))) {
      const item = await rawMessageItem(mailbox.id, uidl);
      expect(item?.['status']?.S).toBe('announced');
      expect(Number(item?.['deletedAt']?.N)).toBeGreaterThanOrEqual(before * 1000);
      const expiresAt = Number(item?.[LEDGER_TTL_ATTRIBUTE]?.N);
      expect(expiresAt).toBeGreaterThanOrEqual(before + 30 * DAY_S - 1);
      expect(expiresAt).toBeLessThanOrEqual(after + 30 * DAY_S);
    }
    expect(await ledger().pending(mailbox.id)).toEqual([]);
  });

  it('streams a 60 MB message into S3 (multipart from the spool file) with bounded memory', async () => {
    // Larger than what the store may hold by design ((queueSize + 2) parts, see s3-store.ts)
    // plus the client's read-ahead, so that holding the message and streaming it differ.
    const size = 60 * 1000 * 1000;
    let big: Buffer | undefined = largeMessage(size);
    const { mailbox, user } = await newUser([big, testMessage(1, 'after-big')], { deletePolicy: { mode: 'delete' } });
    const served = servedDigest(big);
    // Delivered: the test's own copy goes before the baseline, so no sample counts its release.
    big = undefined;

    // Buffers are released over more than one collection (external memory): settle first.
    for (let i = 0; i < 4; i++) {
      collectGarbage();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const baseline = process.memoryUsage();
    const live: number[] = [];
    let peakRss = baseline.rss;
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, process.memoryUsage.rss());
      collectGarbage();
      live.push((process.memoryUsage().arrayBuffers - baseline.arrayBuffers) / MiB);
    }, GC_SAMPLE_INTERVAL_MS);
    let report: DrainReport;
    try {
      report = await run(mailbox, ports());
    } finally {
      clearInterval(sampler);
    }
    expect(report).toMatchObject({ stopReason: 'complete', ok: true, fetched: 2, deleted: 2 });
    expect(report.fetchedBytes).toBe(served.size + servedForm(testMessage(1, 'after-big')).length);

    const entry = storedEntries(mailbox.id).find((e) => (detailOf(e) as { size: number }).size === served.size)!;
    const detail = detailOf(entry) as { sha256: string; storage: { key: string } };
    expect(detail.sha256).toBe(served.sha256);
    expect(await objectDigest(detail.storage.key)).toEqual(served);
    const head = await s3Client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: detail.storage.key }));
    expect(head.Metadata?.[SHA256_METADATA_KEY]).toBe(served.sha256);
    expect(await dovecot.listMaildir(user)).toEqual([]);

    // Holding the message (57.2 MiB) would keep the samples above that while it is uploaded;
    // streaming holds at most the parts the store may have in flight, (queueSize + 2) x
    // partSize (20 MiB with the defaults), plus the POP3 read-ahead and the spool's write
    // batches (measured: the largest sample 15-29 MiB, the median under 9 MiB).
    const storeBoundMiB = ((DEFAULT_QUEUE_SIZE + 2) * DEFAULT_PART_SIZE_BYTES) / MiB;
    expect(live.length).toBeGreaterThanOrEqual(3);
    // A settled baseline: no sample counts memory released that was held before the run.
    expect(Math.min(...live)).toBeGreaterThan(-4);
    const sorted = [...live].sort((a, b) => a - b);
    expect(sorted[Math.floor(sorted.length / 2)]!).toBeLessThan(12);
    expect(Math.max(...live)).toBeLessThan(storeBoundMiB + 12);
    expect((peakRss - baseline.rss) / MiB).toBeLessThan(56);
  });

  it('stops at the deadline mid-run: the messages in flight finish, QUIT deletes what was announced, more remains', async () => {
    const { mailbox, user } = await newUser(Array.from({ length: 30 }, (_, i) => testMessage(i, 'aws-dl', 500)), { deletePolicy: { mode: 'delete' } });
    let jumped = false;
    // The clock jumps just past the deadline once five messages are in: a deadline reached
    // mid-run, with the 2 s the session then has to QUIT still ahead (a jump past that too is
    // the hard deadline: the session is closed and nothing deleted, see drain-local).
    const clock = { now: () => Date.now() + (jumped ? 600_050 : 0) };
    const budget: DrainBudget = { deadline: Date.now() + 600_000 };
    const report = await run(mailbox, ports({ clock }), budget, {
      onProgress: (p) => {
        if (p.fetched >= 5) jumped = true;
      },
    });
    expect(report.stopReason).toBe('deadline');
    expect(report.ok).toBe(true);
    expect(report.error).toBeUndefined();
    expect(report.moreRemaining).toBe(true);
    expect(report.fetched).toBeGreaterThanOrEqual(5);
    expect(report.fetched).toBeLessThan(30);
    expect(report.remaining).toBe(30 - report.fetched);
    // Everything fetched was stored and announced, then deleted by a clean QUIT.
    expect(report.announced).toBe(report.fetched);
    expect(report.deleted).toBe(report.fetched);
    expect((await dovecot.listMaildir(user)).length).toBe(30 - report.fetched);
    expect(await objectKeys(mailbox.id)).toHaveLength(report.fetched);

    const rest = await run(mailbox, ports());
    expect(rest).toMatchObject({ stopReason: 'complete', ok: true, moreRemaining: false, fetched: 30 - report.fetched, deleted: 30 - report.fetched });
    expect(await objectKeys(mailbox.id)).toHaveLength(30);
    expect(await dovecot.listMaildir(user)).toEqual([]);
  });
});

describe('faults lose nothing', () => {
  it('a bucket that does not exist: nothing recorded, announced or deleted, the failure reported; the next run stores it all', async () => {
    const messages = Array.from({ length: 5 }, (_, i) => testMessage(i, 'aws-nobucket'));
    const { mailbox, user } = await newUser(messages, { deletePolicy: { mode: 'delete' } });
    const missing = new S3MessageStore({ client: s3Client, bucket: 'popdrain-no-such-bucket', spoolDir });
    const r1 = await run(mailbox, ports({ store: missing }));
    expect(r1.stopReason).toBe('store-failed');
    expect(r1.ok).toBe(false);
    expect(r1.error?.code).toBe('STORE_FAILED');
    expect(r1.failures.length).toBeGreaterThanOrEqual(3);
    for (const f of r1.failures) {
      expect(f).toMatchObject({ code: 'STORE_FAILED', phase: 'store', retryable: false });
      expect(f.message).toMatch(/bucket popdrain-no-such-bucket does not exist/);
    }
    expect(r1).toMatchObject({ announced: 0, deleted: 0 });
    expect(storedEntries(mailbox.id)).toEqual([]);
    expect((await dovecot.listMaildir(user)).length).toBe(5);
    const uidls = await serverUidls(mailbox);
    expect((await ledger().lookup(mailbox.id, uidls)).size).toBe(0);

    const r2 = await run(mailbox, ports());
    expect(r2).toMatchObject({ stopReason: 'complete', ok: true, fetched: 5, announced: 5, deleted: 5 });
    const stored = await Promise.all((await objectKeys(mailbox.id)).map(async (k) => sha256((await getObject(k)).bytes)));
    expect(new Set(stored)).toEqual(new Set(messages.map((m) => sha256(servedForm(m)))));
    expect(await dovecot.listMaildir(user)).toEqual([]);
  });

  describe('S3 answering 500', () => {
    let scripted: S3ScriptedEndpoint;
    beforeEach(async () => {
      scripted = await startS3ScriptedEndpoint();
    });
    afterEach(async () => {
      await scripted.close();
    });

    it('one message whose upload keeps failing stays on the server, unrecorded and unannounced; the next run stores it', async () => {
      const messages = Array.from({ length: 5 }, (_, i) => testMessage(i, 'aws-500'));
      const { mailbox, user } = await newUser(messages, { deletePolicy: { mode: 'delete' } });
      const uidls = await serverUidls(mailbox);
      const target = uidls[1]!;
      const targetKey = `${DEFAULT_S3_PREFIX}${messageKey(mailbox.id, target)}`;
      scripted.setHandler((request) =>
        request.operation === 'PutObject' && request.key === targetKey
          ? s3ErrorReply(500, 'InternalError', 'We encountered an internal error. Please try again.')
          : undefined,
      );
      const flaky = new S3MessageStore({ client: scripted.client({ maxAttempts: 2 }), bucket: BUCKET, spoolDir });
      const r1 = await run(mailbox, ports({ store: flaky }));
      expect(r1).toMatchObject({ stopReason: 'complete', fetched: 5, announced: 4, deleted: 4, ok: false });
      expect(r1.failures).toHaveLength(1);
      expect(r1.failures[0]).toMatchObject({ uidl: target, code: 'STORE_FAILED', phase: 'store', retryable: true });
      expect(r1.failures[0]!.message).toMatch(/InternalError/);
      // The SDK tried twice; the message is neither recorded, nor announced, nor deleted.
      expect(scripted.requestsFor('PutObject').filter((r) => r.key === targetKey)).toHaveLength(2);
      expect(uidlsOf(storedEntries(mailbox.id))).toEqual(uidls.filter((u) => u !== target).sort());
      const known = await ledger().lookup(mailbox.id, uidls);
      expect(known.has(target)).toBe(false);
      expect([...known.values()].every((e) => e.status === 'announced')).toBe(true);
      expect((await dovecot.listMaildir(user)).length).toBe(1);

      accepted = [];
      const r2 = await run(mailbox, ports());
      expect(r2).toMatchObject({ stopReason: 'complete', ok: true, fetched: 1, alreadyKnown: 0, announced: 1, deleted: 1 });
      expect(uidlsOf(storedEntries(mailbox.id))).toEqual([target]);
      expect(await objectKeys(mailbox.id)).toEqual([targetKey]);
      expect((await getObject(targetKey)).bytes.equals(servedForm(messages[1]!))).toBe(true);
      expect(await dovecot.listMaildir(user)).toEqual([]);
    });
  });

  it('a conditional ledger write lost to another run: LEDGER_CONFLICT, and that message is neither announced nor deleted', async () => {
    const { mailbox, user } = await newUser(Array.from({ length: 4 }, (_, i) => testMessage(i, 'aws-race')), { deletePolicy: { mode: 'delete' } });
    const real = ledger();
    let target: string | undefined;
    let theirs: LedgerEntry | undefined;
    // Another run (its lease lost or bypassed) records one UIDL, with other content, between
    // this run's lookup (or triage: the question the engine asks) and its own conditional write.
    const racing = new Proxy(real, {
      get(obj, prop) {
        if (prop === 'lookup' || prop === 'triage') {
          return async (mailboxId: string, uidls: readonly string[], options: LookupOptions) => {
            const found = prop === 'lookup' ? await obj.lookup(mailboxId, uidls) : await obj.triage(mailboxId, uidls, options);
            target = uidls[1]!;
            theirs = { ...otherRunsEntry(mailboxId, target), firstSeenAt: Date.now() };
            expect(await obj.record([theirs])).toEqual([{ uidl: target, ok: true }]);
            return found;
          };
        }
        const value: unknown = Reflect.get(obj, prop, obj);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(obj) : value;
      },
    }) as UidlLedger;
    const report = await run(mailbox, ports({ ledger: racing }));
    expect(target).toBeDefined();
    expect(report).toMatchObject({ stopReason: 'complete', fetched: 4, announced: 3, deleted: 3, ok: false, pendingAnnouncements: 0 });
    expect(report.failures).toEqual([
      { uidl: target, code: 'LEDGER_CONFLICT', phase: 'ledger', message: 'already recorded by another run with different content', retryable: false },
    ]);
    // Not announced by this run, not deleted: it is the other run's to announce.
    expect(uidlsOf(storedEntries(mailbox.id))).not.toContain(target);
    expect(uidlsOf(storedEntries(mailbox.id))).toHaveLength(3);
    expect((await dovecot.listMaildir(user)).length).toBe(1);
    // The other run's entry is kept as it wrote it.
    const item = await rawMessageItem(mailbox.id, target!);
    expect(item?.['status']?.S).toBe('stored');
    expect(item?.['sha256']?.S).toBe(theirs!.sha256);
  });

  it('EventBridge failing some entries on every attempt: those stay stored-not-announced and undeleted; the next run announces them with the same ids', async () => {
    const { mailbox, user } = await newUser(Array.from({ length: 7 }, (_, i) => testMessage(i, 'aws-partial')), { deletePolicy: { mode: 'delete' } });
    const uidls = await serverUidls(mailbox);
    const failing = new Set([uidls[1]!, uidls[4]!]);
    entryFault = (_entry, detail) =>
      detail.mailboxId === mailbox.id && failing.has(String(detail.uidl)) ? { ErrorCode: 'InternalFailure', ErrorMessage: 'Internal failure (scripted).' } : undefined;
    const r1 = await run(mailbox, ports());
    expect(r1).toMatchObject({ stopReason: 'complete', fetched: 7, announced: 5, deleted: 5, pendingAnnouncements: 2, ok: false });
    expect(r1.failures.map((f) => [f.uidl, f.code]).sort()).toEqual([...failing].sort().map((u) => [u, 'EVENTS_FAILED']));
    expect(r1.failures.every((f) => f.retryable && /InternalFailure/.test(f.message))).toBe(true);
    // The sink tried each failing entry more than once (its own retries), always with the same id.
    const refusedIds = new Map<string, Set<string>>();
    for (const e of storedEntries(mailbox.id, refused)) {
      const d = detailOf(e);
      refusedIds.set(String(d.uidl), (refusedIds.get(String(d.uidl)) ?? new Set()).add(String(d.id)));
    }
    expect([...refusedIds.keys()].sort()).toEqual([...failing].sort());
    for (const u of failing) expect(storedEntries(mailbox.id, refused).filter((e) => detailOf(e).uidl === u).length).toBeGreaterThan(1);
    for (const ids of refusedIds.values()) expect(ids.size).toBe(1);
    const pending = await ledger().pending(mailbox.id);
    expect(pending.map((e) => e.uidl).sort()).toEqual([...failing].sort());
    expect(pending.every((e) => e.status === 'stored')).toBe(true);
    expect((await dovecot.listMaildir(user)).length).toBe(2);
    // Stored, though: both objects are in S3.
    expect(await objectKeys(mailbox.id)).toHaveLength(7);

    entryFault = undefined;
    accepted = [];
    const r2 = await run(mailbox, ports());
    expect(r2).toMatchObject({ stopReason: 'complete', ok: true, fetched: 0, alreadyKnown: 2, reannounced: 2, announced: 2, deleted: 2, pendingAnnouncements: 0 });
    const again = storedEntries(mailbox.id);
    expect(uidlsOf(again)).toEqual([...failing].sort());
    for (const e of again) {
      const d = detailOf(e);
      expect(refusedIds.get(String(d.uidl))).toEqual(new Set([String(d.id)]));
      expect(validateEventEnvelope(delivered(e))).toEqual([]);
    }
    expect(await ledger().pending(mailbox.id)).toEqual([]);
    expect(await dovecot.listMaildir(user)).toEqual([]);
  });

  it('EventBridge throttling: the requests are retried and every message is announced', async () => {
    const { mailbox, user } = await newUser(Array.from({ length: 12 }, (_, i) => testMessage(i, 'aws-throttle')), { deletePolicy: { mode: 'delete' } });
    const before = aws.requestsFor(PUT_EVENTS).length;
    aws.failNext(3, { kind: 'throttle' }, PUT_EVENTS);
    const report = await run(mailbox, ports());
    expect(report).toMatchObject({ stopReason: 'complete', ok: true, fetched: 12, announced: 12, deleted: 12, pendingAnnouncements: 0 });
    // Two batches of events and the summary, plus the three throttled requests.
    expect(aws.requestsFor(PUT_EVENTS).length - before).toBeGreaterThanOrEqual(3 + 3);
    const stored = storedEntries(mailbox.id);
    expect(stored).toHaveLength(12);
    expect(new Set(stored.map((e) => detailOf(e).id)).size).toBe(12);
    expect(await dovecot.listMaildir(user)).toEqual([]);
  });
});

describe('OAuth2 mailbox (XOAUTH2 against Dovecot, tokens from the loopback token server)', () => {
  const CLIENT = { clientId: 'drain-aws-client', clientSecret: 'drain-aws-client-secret' };
  const REFRESH_TOKEN = 'drain-aws-refresh-token';
  let tokens: OAuth2TokenServer;
  beforeAll(async () => {
    tokens = await startTokenServer({ clients: [CLIENT], refreshTokens: [REFRESH_TOKEN] });
  });
  afterAll(async () => {
    await tokens?.close();
  });

  it('a cached token the server refuses is refreshed once (forceRefresh) and the login retried; a second refusal ends the run', async () => {
    userCounter += 1;
    const user = `aws${userCounter}`;
    await dovecot.addUser(user, `unused-${randomBytes(6).toString('hex')}`);
    await dovecot.deliverMany(user, [testMessage(1, 'oauth'), testMessage(2, 'oauth')]);
    const secretId = `popdrain/${user}-oauth`;
    aws.putSecret(secretId, JSON.stringify({ oauth2: { tokenEndpoint: tokens.url, ...CLIENT, refreshToken: REFRESH_TOKEN } }));
    const mailbox = dovecotMailbox(dovecot, user, { secret: { type: 'secrets-manager', secretId }, mechanism: 'XOAUTH2' });
    // Dovecot's introspection learns each token the token server issues (as a real IdP would).
    let register = true;
    const issuing: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      const token = tokens.issued.at(-1);
      if (register && token !== undefined) dovecot.addOAuthToken(user, token);
      return response;
    };
    const credentials = new SecretsManagerCredentials({ client: smClient, fetch: issuing });
    const secretReads = (): number => aws.requestsFor(GET_SECRET_VALUE).filter((r) => r.body.SecretId === secretId).length;

    const first = await run(mailbox, ports({ credentials }));
    expect(first).toMatchObject({ stopReason: 'complete', ok: true, fetched: 2 });
    expect(tokens.issued).toHaveLength(1);
    expect(secretReads()).toBe(1);

    // The server stops accepting the cached token (revoked, or expired early).
    dovecot.revokeOAuthToken(tokens.issued[0]!);
    await dovecot.deliver(user, testMessage(3, 'oauth'));
    const logger = recordingLogger();
    const second = await run(mailbox, ports({ credentials, logger }));
    expect(second).toMatchObject({ stopReason: 'complete', ok: true, fetched: 1, alreadyKnown: 2 });
    expect(logger.messages).toContain('token refused; refreshing it once');
    expect(tokens.issued).toHaveLength(2);
    // forceRefresh read the secret again (an operator may have replaced it) and got a new token.
    expect(secretReads()).toBe(2);

    // Refused again after the refresh: the run ends as auth-failed, after exactly one refresh.
    dovecot.revokeOAuthToken(tokens.issued[1]!);
    register = false;
    const third = await run(mailbox, ports({ credentials }));
    expect(third).toMatchObject({ stopReason: 'auth-failed', ok: false, fetched: 0 });
    expect(third.error?.code).toBe('AUTH_FAILED');
    expect(tokens.issued).toHaveLength(3);
    expect(JSON.stringify(third)).not.toContain(tokens.issued[2]!);
  });
});

// -------------------------------------------------------------------------------------------

/** What another run recorded for `uidl`: a stored entry with other content. */
function otherRunsEntry(mailboxId: string, uidl: string): LedgerEntry {
  const id = storedEventId(mailboxId, uidl);
  const theirSha = 'f'.repeat(64);
  const time = new Date().toISOString();
  return {
    mailboxId,
    uidl,
    status: 'stored',
    key: messageKey(mailboxId, uidl),
    sha256: theirSha,
    size: 99,
    firstSeenAt: Date.now(),
    event: {
      id,
      detailType: 'Email Stored',
      time,
      detail: {
        schemaVersion: 1,
        id,
        mailboxId,
        uidl,
        storage: { type: 's3', bucket: BUCKET, key: `${DEFAULT_S3_PREFIX}${messageKey(mailboxId, uidl)}` },
        size: 99,
        sha256: theirSha,
        storedAt: time,
        metadata: { attachments: [] },
      },
    },
  };
}

const LINE = 76;

/** A plain message of about `size` bytes: headers and lines of base64-looking text, LF line ends. */
function largeMessage(size: number): Buffer {
  const header = Buffer.from('From: Big <big@example.com>\nTo: r@example.com\nSubject: big one\nMessage-ID: <big@example.com>\nDate: Thu, 26 Nov 2026 10:00:00 +0000\n\n');
  const lines = Math.floor((size - header.length) / (LINE + 1));
  const body = Buffer.alloc(lines * (LINE + 1));
  const block = Buffer.from(
    Array.from({ length: 64 }, (_, i) => `${createHash('sha256').update(`line ${i}`).digest('base64').repeat(2).slice(0, LINE)}\n`).join(''),
  );
  for (let off = 0; off < body.length; off += block.length) block.copy(body, off, 0, Math.min(block.length, body.length - off));
  body.write('.', 5 * (LINE + 1)); // a line that starts with a dot
  return Buffer.concat([header, body]);
}

/** sha256 and size of the CRLF form Dovecot serves, computed without a second copy. */
function servedDigest(stored: Buffer): { sha256: string; size: number } {
  const hash = createHash('sha256');
  let size = 0;
  const crlf = Buffer.from('\r\n');
  let start = 0;
  for (let lf = stored.indexOf(0x0a); lf !== -1; lf = stored.indexOf(0x0a, start)) {
    const end = lf > start && stored[lf - 1] === 0x0d ? lf - 1 : lf;
    hash.update(stored.subarray(start, end)).update(crlf);
    size += end - start + 2;
    start = lf + 1;
  }
  if (start < stored.length) {
    hash.update(stored.subarray(start)).update(crlf);
    size += stored.length - start + 2;
  }
  return { sha256: hash.digest('hex'), size };
}
