/**
 * The shared set-up of the drainMailbox-into-AWS tests (drain-aws*.test.ts): a real Dovecot,
 * s3rver, dynalite and the recording AWS JSON endpoint, started once per file, with real SDK
 * clients (explicit fake credentials, region and loopback endpoints); the PutEvents entries the
 * bus accepted or refused, reset before each test; users, ports and readers of what the
 * backends hold.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, afterEach, beforeAll, beforeEach, expect } from 'vitest';
import { DynamoDbLedger, MESSAGE_SORT_KEY_PREFIX } from '../../lib/adapters/aws/dynamodb-ledger.js';
import { EventBridgeSink } from '../../lib/adapters/aws/eventbridge-sink.js';
import { DEFAULT_S3_PREFIX, S3MessageStore } from '../../lib/adapters/aws/s3-store.js';
import { SecretsManagerCredentials } from '../../lib/adapters/aws/secrets-manager-credentials.js';
import { drainMailbox, type DrainBudget, type DrainOptions } from '../../lib/drain/drain-mailbox.js';
import type { MailboxConfig } from '../../lib/drain/mailbox.js';
import type { DrainLogger, DrainPorts } from '../../lib/drain/ports.js';
import type { DrainReport } from '../../lib/drain/report.js';
import { startAwsJsonEndpoint, type AwsJsonEndpoint, type EntryFault, type WireEntry } from '../../testkit/aws/json-endpoint.js';
import { startDynalite, startS3rver, type DynamoDbStandin, type S3Standin } from '../../testkit/aws/standins.js';
import { startDovecot, type Dovecot } from '../../testkit/pop3-servers/dovecot.js';
import { dovecotMailbox } from '../../testkit/fixtures/drain-fixtures.js';
import { s3ObjectDigest } from './s3-object-digest.js';

export const REGION = 'us-east-1';
/** Fake credentials for the clients the stand-ins don't check (s3rver's come from aws-standins). */
const FAKE_CREDENTIALS = { accessKeyId: 'AKIDDRAINAWSTESTFAKE', secretAccessKey: 'drain-aws-test-fake-secret' };
export const BUCKET = 'popdrain-drain-test';
export const TABLE = 'popdrain-drain-ledger';
export const BUS = 'popdrain-drain-bus';
export const ACCOUNT = '123456789012';
export const DAY_S = 86_400;

// Live bindings: they hold the file's servers and clients once beforeAll ran.
export let dovecot: Dovecot;
export let s3: S3Standin;
export let dynamo: DynamoDbStandin;
export let aws: AwsJsonEndpoint;
export let s3Client: S3Client;
export let ddbClient: DynamoDBClient;
export let ebClient: EventBridgeClient;
export let smClient: SecretsManagerClient;
export let spoolDir: string;
let userCounter = 0;
const cleanups: Array<() => Promise<void>> = [];

/** PutEvents entries the endpoint accepted (and those it reported failed), in order. */
export let accepted: WireEntry[] = [];
export let refused: WireEntry[] = [];
/** Entries for which this returns a fault are reported failed by the bus, on every attempt. */
let entryFault: ((entry: WireEntry, detail: Record<string, unknown>) => EntryFault | undefined) | undefined;

/** The next test user's name (aws1, aws2, ...). */
export function nextUserName(): string {
  userCounter += 1;
  return `aws${userCounter}`;
}

/** Forgets the entries the bus accepted so far. */
export function clearAccepted(): void {
  accepted = [];
}

/** Makes the bus report the entries for which `fault` returns one failed, on every attempt. */
export function setEntryFault(fault: typeof entryFault): void {
  entryFault = fault;
}

/** Registers the hooks: the servers and clients for the file, a clean slate for each test. */
export function setUpDrainAwsWorld(): void {
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
}

export interface TestUser {
  user: string;
  mailbox: MailboxConfig;
  messages: Buffer[];
}

/** A Dovecot user whose password is a `{"password": ...}` secret in Secrets Manager. */
export async function newUser(messages: Buffer[], extra: Partial<MailboxConfig> = {}): Promise<TestUser> {
  const user = nextUserName();
  const password = `pw-${randomBytes(6).toString('hex')}`;
  await dovecot.addUser(user, password);
  const secretId = `popdrain/${user}`;
  aws.putSecret(secretId, JSON.stringify({ password }));
  await dovecot.deliverMany(user, messages);
  const mailbox = dovecotMailbox(dovecot, user, { secret: { type: 'secrets-manager', secretId }, ...extra });
  return { user, mailbox, messages };
}

export function ledger(): DynamoDbLedger {
  return new DynamoDbLedger({ client: ddbClient, tableName: TABLE });
}

export function ports(override: Partial<DrainPorts> = {}): DrainPorts {
  return {
    store: new S3MessageStore({ client: s3Client, bucket: BUCKET, spoolDir }),
    ledger: ledger(),
    // Short backoff: the bus's retries are the sink's own tests' subject; here they only cost time.
    events: new EventBridgeSink({ client: ebClient, eventBusName: BUS, baseDelayMs: 1, maxDelayMs: 10 }),
    credentials: new SecretsManagerCredentials({ client: smClient }),
    ...override,
  };
}

export function run(mailbox: MailboxConfig, p: DrainPorts, budget: DrainBudget = {}, options: DrainOptions = {}): Promise<DrainReport> {
  return drainMailbox(mailbox, p, budget, { leaseTtlMs: 10_000, ...options });
}

export async function objectKeys(mailboxId: string): Promise<string[]> {
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

export async function getObject(key: string): Promise<{ bytes: Buffer; contentType?: string; metadata: Record<string, string> }> {
  const out = await s3Client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  const chunks: Buffer[] = [];
  for await (const chunk of out.Body as AsyncIterable<Buffer>) chunks.push(chunk);
  return { bytes: Buffer.concat(chunks), contentType: out.ContentType, metadata: out.Metadata ?? {} };
}

/** sha256 and size of an object, streamed (for the large one). */
export function objectDigest(key: string): Promise<{ sha256: string; size: number }> {
  return s3ObjectDigest(s3Client, BUCKET, key);
}

export function detailOf(entry: WireEntry): Record<string, unknown> {
  return JSON.parse(entry.Detail ?? '{}') as Record<string, unknown>;
}

/** Accepted `Email Stored` entries of a mailbox. */
export function storedEntries(mailboxId: string, from: WireEntry[] = accepted): WireEntry[] {
  return from.filter((e) => e.DetailType === 'Email Stored' && detailOf(e).mailboxId === mailboxId);
}

/** The event as an EventBridge target receives it, built from what the client sent. */
export function delivered(entry: WireEntry): Record<string, unknown> {
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

export async function rawMessageItem(mailboxId: string, uidl: string) {
  const out = await ddbClient.send(
    new GetItemCommand({ TableName: TABLE, Key: { pk: { S: mailboxId }, sk: { S: `${MESSAGE_SORT_KEY_PREFIX}${uidl}` } }, ConsistentRead: true }),
  );
  return out.Item;
}

export function uidlsOf(entries: WireEntry[]): string[] {
  return entries.map((e) => String(detailOf(e).uidl)).sort();
}

export function recordingLogger(): DrainLogger & { messages: string[] } {
  const messages: string[] = [];
  const log = (message: string): void => {
    messages.push(message);
  };
  return { messages, debug: log, info: log, warn: log, error: log };
}

/** The UIDLs the server reports, by message number (from a dry run, which changes nothing). */
export async function serverUidls(mailbox: MailboxConfig): Promise<string[]> {
  const report = await run(mailbox, ports(), {}, { dryRun: true });
  return report.plan!.fetch.sort((a, b) => a.number - b.number).map((m) => m.uidl);
}
