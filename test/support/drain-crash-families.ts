// What a drain crash campaign's backends hold, as its checks need it: a Family per adapter set
// (the local adapters, or the AWS adapters on s3rver, dynalite and the recording EventBridge
// endpoint) configures the child and observes the ledger, the store and the events.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { QueryCommand, type AttributeValue, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDbLedger } from '../../lib/adapters/aws/dynamodb-ledger.js';
import { DEFAULT_S3_PREFIX } from '../../lib/adapters/aws/s3-store.js';
import { EVENTS_FILE, FileLedger, LEDGER_SUBDIR, readJsonlEvents } from '../../lib/adapters/local/index.js';
import { decodeLog, LedgerModel } from '../../lib/adapters/local/ledger-log.js';
import type { LedgerEntry, UidlLedger } from '../../lib/drain/ports.js';
import type { AwsJsonEndpoint } from '../../testkit/aws/json-endpoint.js';
import type { DynamoDbStandin, S3Standin } from '../../testkit/aws/standins.js';
import type { CrashChildConfig, StopAt } from './drain-crash-shared.js';
import { dovecotMailbox, sha256 } from '../../testkit/fixtures/drain-fixtures.js';
import { dovecot, PASSWORD } from './drain-crash-world.js';

const LEASE_TTL_MS = 10_000;

export const BUCKET = 'popdrain-crash';
export const TABLE = 'popdrain-crash-ledger';
const BUS = 'popdrain-crash-bus';

const STORE_KEY = /^[A-Za-z0-9._-]+\/[0-9a-f]{64}\.eml$/;

// ---------------------------------------------------------------------------------------------
// What a family's backends hold, as the checks need it

export interface EntryView {
  uidl: string;
  status: string;
  key: string | undefined;
  sha256: string | undefined;
  eventId: string;
  deletedAt: number | undefined;
}

export interface EventView {
  /** How many times an `Email Stored` event with this id was delivered. */
  count: number;
  sha256s: Set<string>;
  uidls: Set<string>;
  /** Where the events say the message is, as store keys. */
  keys: Set<string>;
}

export interface Observation {
  entries: Map<string, EntryView>;
  /** Store key (as the engine names it) -> sha256 of the stored bytes. */
  objects: Map<string, string>;
  /** Anything in the store that is not an object under a valid key. */
  stray: string[];
  events: Map<string, EventView>;
}

export interface Family {
  readonly name: 'local' | 'aws';
  readonly mailboxId: string;
  childConfig(stopAt: StopAt | undefined): CrashChildConfig;
  /** After a kill: what an operator who knows the holder is dead may do. */
  afterKill(): Promise<void>;
  observe(): Promise<Observation>;
  /** A fresh ledger instance, for lookups as a later run would make them. */
  freshLedger(): { ledger: UidlLedger; close(): Promise<void> };
  /** Temp or spool files crashed children left (never named as messages). */
  leftovers(): Promise<string[]>;
}

function entryView(e: Pick<LedgerEntry, 'uidl' | 'status' | 'key' | 'sha256' | 'deletedAt'> & { event?: { id: string } }): EntryView {
  return { uidl: e.uidl, status: e.status, key: e.key, sha256: e.sha256, eventId: e.event?.id ?? '', deletedAt: e.deletedAt };
}

function addEvent(events: Map<string, EventView>, detail: Record<string, unknown>, keyOf: (storage: Record<string, unknown>) => string): void {
  const id = String(detail.id);
  const view = events.get(id) ?? { count: 0, sha256s: new Set<string>(), uidls: new Set<string>(), keys: new Set<string>() };
  view.count += 1;
  view.sha256s.add(String(detail.sha256));
  view.uidls.add(String(detail.uidl));
  view.keys.add(keyOf(detail.storage as Record<string, unknown>));
  events.set(id, view);
}

/** sha256 of files, remembered by path, size and mtime (the checks run after every child). */
const fileHashes = new Map<string, { size: number; mtimeMs: number; sha256: string }>();

async function fileSha256(path: string): Promise<string> {
  const st = await stat(path);
  const known = fileHashes.get(path);
  if (known !== undefined && known.size === st.size && known.mtimeMs === st.mtimeMs) return known.sha256;
  const digest = sha256(await readFile(path));
  fileHashes.set(path, { size: st.size, mtimeMs: st.mtimeMs, sha256: digest });
  return digest;
}

export function localFamily(out: string, user: string): Family {
  const mailbox = dovecotMailbox(dovecot, user, { deletePolicy: { mode: 'delete' } });
  const folder = join(out, mailbox.id);
  const ledgerDir = join(out, LEDGER_SUBDIR);
  return {
    name: 'local',
    mailboxId: mailbox.id,
    childConfig: (stopAt) => ({ family: 'local', mailbox, password: PASSWORD, leaseTtlMs: LEASE_TTL_MS, ...(stopAt ? { stopAt } : {}), local: { out } }),
    // The lease file names the dead child's pid: the next run takes the lease over by itself.
    afterKill: async () => undefined,
    observe: async () => {
      const model = new LedgerModel(mailbox.id);
      const log = await readFile(join(ledgerDir, `${mailbox.id}.ledger`)).catch(() => Buffer.alloc(0));
      const decoded = decodeLog(log);
      decoded.records.forEach((r, i) => model.apply(r, decoded.sizes[i]!));
      const entries = new Map([...model.entries.values()].map((e) => [e.uidl, entryView(e)]));
      const objects = new Map<string, string>();
      const stray: string[] = [];
      for (const name of await readdir(folder).catch(() => [] as string[])) {
        if (/^\.tmp-\d+-[0-9a-f]+-\d+\.part$/.test(name)) continue; // temp files: see leftovers()
        const key = `${mailbox.id}/${name}`;
        if (STORE_KEY.test(key)) objects.set(key, await fileSha256(join(folder, name)));
        else stray.push(name);
      }
      const events = new Map<string, EventView>();
      for (const e of (await readJsonlEvents(join(out, EVENTS_FILE))).events) {
        if (e['detail-type'] === 'Email Stored') {
          addEvent(events, e.detail as unknown as Record<string, unknown>, (storage) =>
            storage.type === 'file' ? relative(out, String(storage.path)) : `not a file: ${JSON.stringify(storage)}`,
          );
        }
      }
      return { entries, objects, stray, events };
    },
    freshLedger: () => {
      const ledger = new FileLedger({ dir: ledgerDir });
      return { ledger, close: () => ledger.close() };
    },
    leftovers: async () => (await readdir(folder).catch(() => [] as string[])).filter((n) => n.startsWith('.tmp-')),
  };
}

export interface AwsBackends {
  s3: S3Standin;
  dynamo: DynamoDbStandin;
  events: AwsJsonEndpoint;
  spoolDir: string;
}

export function awsFamily(b: AwsBackends, user: string): Family {
  const mailbox = dovecotMailbox(dovecot, user, { deletePolicy: { mode: 'delete' } });
  const s3: S3Client = b.s3.client();
  const dynamo: DynamoDBClient = b.dynamo.client();
  const ledger = new DynamoDbLedger({ client: dynamo, tableName: TABLE });
  const objectHashes = new Map<string, { etag: string; sha256: string }>();
  return {
    name: 'aws',
    mailboxId: mailbox.id,
    childConfig: (stopAt) => ({
      family: 'aws',
      mailbox,
      password: PASSWORD,
      leaseTtlMs: LEASE_TTL_MS,
      ...(stopAt ? { stopAt } : {}),
      aws: { s3Endpoint: b.s3.endpoint, bucket: BUCKET, dynamoEndpoint: b.dynamo.endpoint, table: TABLE, eventsEndpoint: b.events.url, bus: BUS, spoolDir: b.spoolDir },
    }),
    // A SIGKILLed child cannot release its lease, which would keep the mailbox busy until it
    // expires (LEASE_TTL_MS). The test knows the holder is dead and releases it, as an operator could.
    afterKill: async () => {
      const holder = await ledger.leaseHolder(mailbox.id, Date.now());
      if (holder !== undefined) await ledger.releaseLease(holder);
    },
    observe: async () => {
      const entries = new Map<string, EntryView>();
      let startKey: Record<string, AttributeValue> | undefined;
      do {
        const page = await dynamo.send(
          new QueryCommand({
            TableName: TABLE,
            KeyConditionExpression: 'pk = :pk AND begins_with(sk, :m)',
            ExpressionAttributeValues: { ':pk': { S: mailbox.id }, ':m': { S: 'm#' } },
            ConsistentRead: true,
            ...(startKey === undefined ? {} : { ExclusiveStartKey: startKey }),
          }),
        );
        for (const item of page.Items ?? []) {
          const uidl = item.uidl!.S!;
          entries.set(uidl, {
            uidl,
            status: item.status!.S!,
            key: item.key?.S,
            sha256: item.sha256?.S,
            eventId: (JSON.parse(item.event!.S!) as { id: string }).id,
            deletedAt: item.deletedAt?.N === undefined ? undefined : Number(item.deletedAt.N),
          });
        }
        startKey = page.LastEvaluatedKey;
      } while (startKey !== undefined);
      // s3rver ignores If-None-Match: *, so a retried upload may replace an object with the same
      // bytes. What it can show is the store's end state: one object per key, with exact bytes.
      const objects = new Map<string, string>();
      const stray: string[] = [];
      let token: string | undefined;
      do {
        const page = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, ...(token === undefined ? {} : { ContinuationToken: token }) }));
        for (const o of page.Contents ?? []) {
          const key = o.Key!;
          const engineKey = key.startsWith(DEFAULT_S3_PREFIX) ? key.slice(DEFAULT_S3_PREFIX.length) : undefined;
          if (engineKey === undefined || !STORE_KEY.test(engineKey)) {
            stray.push(key);
            continue;
          }
          const etag = `${o.ETag ?? ''}/${o.Size ?? ''}/${o.LastModified?.getTime() ?? ''}`;
          let known = objectHashes.get(key);
          if (known?.etag !== etag) {
            const body = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
            known = { etag, sha256: sha256(Buffer.from(await body.Body!.transformToByteArray())) };
            objectHashes.set(key, known);
          }
          objects.set(engineKey, known.sha256);
        }
        token = page.NextContinuationToken;
      } while (token !== undefined);
      const events = new Map<string, EventView>();
      for (const entry of b.events.putEventsBatches().flat()) {
        if (entry.DetailType === 'Email Stored') {
          addEvent(events, JSON.parse(entry.Detail!) as Record<string, unknown>, (storage) =>
            storage.type === 's3' && storage.bucket === BUCKET && String(storage.key).startsWith(DEFAULT_S3_PREFIX)
              ? String(storage.key).slice(DEFAULT_S3_PREFIX.length)
              : `not in ${BUCKET}: ${JSON.stringify(storage)}`,
          );
        }
      }
      return { entries, objects, stray, events };
    },
    freshLedger: () => ({ ledger: new DynamoDbLedger({ client: b.dynamo.client(), tableName: TABLE }), close: async () => undefined }),
    leftovers: async () => readdir(b.spoolDir),
  };
}
