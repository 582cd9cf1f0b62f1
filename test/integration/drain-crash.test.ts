// Crash safety of a whole drain, end to end: a child process drains a Dovecot mailbox (delete
// policy) into the local adapters or into the AWS adapters (s3rver, dynalite and the recording
// EventBridge endpoint, all owned by this process so they outlive the child), and is SIGKILLed
// at every step boundary of a message (mid-RETR, after the store commit, the ledger record, the
// event, markAnnounced, a DELE answered before QUIT, QUIT sent) and at random instants. The next
// child is the rerun. New mail arrives between some runs. After every child this test checks
// the promise that matters most: a message gone from the server is stored (byte for byte) and
// announced. At the end, for each family: every delivered message is stored exactly once under
// the key of its mailbox and UIDL, the ledger and the store agree, every message was announced
// with one stable event id per message, and nothing half-written looks like a message.
//
// s3rver ignores `If-None-Match: *` (docs/testing.md), so it cannot show that a retried upload
// never replaces an object: what it can show, and what is asserted, is one object per key with
// exactly the message's bytes, and no object that is not a message's.
//
// The kill schedule is random but seeded; a failure prints the seed (set CRASH_SEED to replay
// the same schedule; the instants of kills still vary).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { QueryCommand, type AttributeValue, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoDbLedger } from '../../lib/adapters/aws/dynamodb-ledger.js';
import { DEFAULT_S3_PREFIX } from '../../lib/adapters/aws/s3-store.js';
import { EVENTS_FILE, FileLedger, FileMessageStore, LEDGER_SUBDIR, readJsonlEvents } from '../../lib/adapters/local/index.js';
import { decodeLog, LedgerModel } from '../../lib/adapters/local/ledger-log.js';
import { messageKey, storedEventId } from '../../lib/drain/keys.js';
import type { LedgerEntry, UidlLedger } from '../../lib/drain/ports.js';
import { startAwsJsonEndpoint, type AwsJsonEndpoint } from '../../testkit/aws/json-endpoint.js';
import { startDynalite, startS3rver, type DynamoDbStandin, type S3Standin } from '../../testkit/aws/standins.js';
import {
  BOUNDARIES,
  CRASH_CONFIG_ENV,
  FREEZE_LIMIT_MS,
  parseChildLine,
  type Boundary,
  type CrashChildConfig,
  type StopAt,
} from '../support/drain-crash-shared.js';
import { startDovecot, type Dovecot } from '../../testkit/pop3-servers/dovecot.js';
import { dovecotMailbox, servedForm, sha256, testMessage } from '../../testkit/fixtures/drain-fixtures.js';

const KILLS_PER_FAMILY = 50;
/** Every kind of kill (each boundary, a large message mid-RETR, a random instant) lands at least this often. */
const MIN_KILLS_PER_KIND = 4;
/** Children per family before the test gives up reaching the kill counts. */
const MAX_CHILDREN_PER_FAMILY = 160;
const INITIAL_SMALL = 30;
const INITIAL_LARGE = 2;
const MiB = 1024 * 1024;
/** Large messages are 1-3 MB: spooled to a file by the S3 store, many RETR chunks long. */
const LARGE_MIN_BYTES = 1 * MiB;
const LARGE_MAX_BYTES = 3 * MiB;
const SMALL_MAX_BODY_BYTES = 6_000;
/** Below this many messages on the server, a batch of new ones is delivered before the next run. */
const REFILL_BELOW = 10;
const REFILL_COUNT = 8;
/** Every this many runs, a few new messages arrive regardless. */
const TRICKLE_EVERY_RUNS = 3;
/**
 * Random kills: a third land this long after the spawn (the child loads in about 150-250 ms,
 * then connects, logs in, lists and looks up), the others this long after its first boundary
 * (while messages stream, commit, record, announce and get deleted).
 */
const RANDOM_KILL_AFTER_SPAWN_MAX_MS = 500;
const RANDOM_KILL_AFTER_FIRST_BOUNDARY_MAX_MS = 300;
const LEASE_TTL_MS = 10_000;
/** A child that neither stops, finishes nor gets killed in this long is a hung test. */
const CHILD_TIMEOUT_MS = FREEZE_LIMIT_MS + 5_000;
const IN_USE_RETRY_DELAY_MS = 200;
const MAX_FINAL_ATTEMPTS = 20;
const PASSWORD = 'crash-test-password';
const BUCKET = 'popdrain-crash';
const TABLE = 'popdrain-crash-ledger';
const BUS = 'popdrain-crash-bus';
/** Dovecot's `pop3_uidl_format = %08Xu%08Xv`: UID, then UIDVALIDITY, each 8 hex digits (it prints them in lower case). */
const DOVECOT_UIDL = /^([0-9a-f]{8})([0-9a-f]{8})$/i;
const STORE_KEY = /^[A-Za-z0-9._-]+\/[0-9a-f]{64}\.eml$/;

const seed = process.env.CRASH_SEED === undefined ? randomBytes(4).readUInt32BE(0) : Number(process.env.CRASH_SEED);

/** mulberry32: a small seeded PRNG, so a failing schedule can be replayed. */
function prng(s: number): () => number {
  let a = s >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

let dovecot: Dovecot;
let work: string;
let childScript: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'popdrain-drain-crash-'));
  const outdir = join(work, 'child');
  childScript = join(outdir, 'drain-crash-child.mjs');
  // Bundled once, so each of the 100+ children starts as fast as plain node; split, so only
  // the AWS children load the SDK.
  const bundling = build({
    entryPoints: [new URL('../support/drain-crash-child.ts', import.meta.url).pathname],
    outdir,
    outExtension: { '.js': '.mjs' },
    splitting: true,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'error',
    // Bundled CommonJS dependencies (the SDK) call require() for node's own modules.
    banner: { js: "import { createRequire as __crashRequire } from 'node:module'; const require = __crashRequire(import.meta.url);" },
  });
  [dovecot] = await Promise.all([startDovecot(), bundling]);
});

afterAll(async () => {
  await dovecot?.stop();
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// The mail

interface Source {
  /** Delivery order, from 0: Dovecot gives it UID index + 1. */
  index: number;
  /** The maildir file's base name (Dovecot may move it to cur/ and add flags after a ':'). */
  name: string;
  /** sha256 and size of what Dovecot serves for it (CRLF). */
  sha256: string;
  size: number;
  large: boolean;
}

/** A large message: base64 lines of random bytes, with a line that needs dot-stuffing. */
function largeMessage(i: number, tag: string, bytes: number): Buffer {
  const lines = randomBytes(Math.ceil((bytes * 3) / 4)).toString('base64').match(/.{1,76}/g)!;
  lines.splice(1, 0, '.a line that starts with a dot');
  return Buffer.from(
    `From: Big ${i} <big${i}@example.com>\nTo: r@example.com\nSubject: ${tag} large ${i}\nMessage-ID: <${tag}-large-${i}@example.com>\n` +
      `Date: Thu, 26 Nov 2026 10:00:00 +0000\nMIME-Version: 1.0\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n${lines.join('\n')}\n`,
  );
}

const baseName = (path: string): string => basename(path).split(':')[0]!;

class Mailbox {
  readonly sources: Source[] = [];
  private readonly random: () => number;

  constructor(
    readonly user: string,
    readonly tag: string,
    random: () => number,
  ) {
    this.random = random;
  }

  async deliver(small: number, large: number): Promise<void> {
    const messages: Array<{ bytes: Buffer; large: boolean }> = [];
    for (let k = 0; k < small; k++) {
      const i = this.sources.length + messages.length;
      messages.push({ bytes: testMessage(i, this.tag, 100 + Math.floor(this.random() * SMALL_MAX_BODY_BYTES)), large: false });
    }
    for (let k = 0; k < large; k++) {
      const i = this.sources.length + messages.length;
      const size = LARGE_MIN_BYTES + Math.floor(this.random() * (LARGE_MAX_BYTES - LARGE_MIN_BYTES));
      messages.push({ bytes: largeMessage(i, this.tag, size), large: true });
    }
    const paths = await dovecot.deliverMany(this.user, messages.map((m) => m.bytes));
    messages.forEach((m, k) => {
      const served = servedForm(m.bytes);
      this.sources.push({ index: this.sources.length, name: baseName(paths[k]!), sha256: sha256(served), size: served.length, large: m.large });
    });
  }

  /** The sources still in the maildir. */
  async onServer(): Promise<Source[]> {
    const present = new Set((await dovecot.listMaildir(this.user)).map(baseName));
    return this.sources.filter((s) => present.has(s.name));
  }
}

// ---------------------------------------------------------------------------------------------
// What a family's backends hold, as the checks need it

interface EntryView {
  uidl: string;
  status: string;
  key: string | undefined;
  sha256: string | undefined;
  eventId: string;
  deletedAt: number | undefined;
}

interface EventView {
  /** How many times an `Email Stored` event with this id was delivered. */
  count: number;
  sha256s: Set<string>;
  uidls: Set<string>;
  /** Where the events say the message is, as store keys. */
  keys: Set<string>;
}

interface Observation {
  entries: Map<string, EntryView>;
  /** Store key (as the engine names it) -> sha256 of the stored bytes. */
  objects: Map<string, string>;
  /** Anything in the store that is not an object under a valid key. */
  stray: string[];
  events: Map<string, EventView>;
}

interface Family {
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

function localFamily(out: string, user: string): Family {
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

interface AwsBackends {
  s3: S3Standin;
  dynamo: DynamoDbStandin;
  events: AwsJsonEndpoint;
  spoolDir: string;
}

function awsFamily(b: AwsBackends, user: string): Family {
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

// ---------------------------------------------------------------------------------------------
// One child

type KillKind = Boundary | 'retr-chunk-large' | 'random';
const KILL_KINDS: readonly KillKind[] = [...BOUNDARIES, 'retr-chunk-large', 'random'];

interface ChildOutcome {
  /** Where it was SIGKILLed, or undefined when it ended by itself. */
  killedAt: KillKind | undefined;
  report: Record<string, unknown> | undefined;
  crossed: Boundary[];
  stderr: string;
  durationMs: number;
}

interface RandomKill {
  from: 'spawn' | 'first-boundary';
  delayMs: number;
}

function runChild(config: CrashChildConfig, randomKill: RandomKill | undefined): Promise<ChildOutcome> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(process.execPath, [childScript], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, [CRASH_CONFIG_ENV]: JSON.stringify(config), AWS_EC2_METADATA_DISABLED: 'true' },
    });
    let killedAt: KillKind | undefined;
    let report: Record<string, unknown> | undefined;
    const crossed: Boundary[] = [];
    let stderr = '';
    let pending = '';
    const kill = (at: KillKind): void => {
      if (killedAt !== undefined || child.exitCode !== null || child.signalCode !== null) return;
      killedAt = at;
      child.kill('SIGKILL');
    };
    let randomTimer: NodeJS.Timeout | undefined;
    const armRandomKill = (): void => {
      if (randomTimer === undefined && randomKill !== undefined) randomTimer = setTimeout(() => kill('random'), randomKill.delayMs);
    };
    if (randomKill?.from === 'spawn') armRandomKill();
    const hungTimer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child hung for ${CHILD_TIMEOUT_MS} ms; stderr: ${stderr.slice(-2000)}`));
    }, CHILD_TIMEOUT_MS);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      pending += chunk;
      for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
        const parsed = parseChildLine(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
        if (parsed.kind === 'boundary') {
          crossed.push(parsed.boundary);
          armRandomKill();
        } else if (parsed.kind === 'report') {
          report = parsed.report;
        } else if (parsed.kind === 'stop') {
          kill(config.stopAt?.minSize === undefined ? parsed.boundary : 'retr-chunk-large');
        }
      }
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(randomTimer);
      clearTimeout(hungTimer);
      // A random kill that raced with the child's own exit did not happen.
      if (killedAt !== undefined && signal !== 'SIGKILL') killedAt = undefined;
      if (killedAt === undefined && code !== 0) {
        reject(new Error(`child exited with ${code ?? signal}; stderr: ${stderr.slice(-2000)}`));
        return;
      }
      resolve({ killedAt, report, crossed, stderr, durationMs: Date.now() - started });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// The checks

/**
 * The key invariant, after every child: each delivered message that is no longer in the
 * maildir is in the store (exact bytes, under its key), recorded as announced, and its
 * `Email Stored` event went out. Returns the problems found.
 */
function deletionProblems(mailbox: Mailbox, family: Family, present: Set<string>, seen: Observation, gone: Set<number>, when: string): string[] {
  const problems: string[] = [];
  const bySha = new Map([...seen.entries.values()].filter((e) => e.sha256 !== undefined).map((e) => [e.sha256!, e]));
  for (const s of mailbox.sources) {
    if (present.has(s.name)) {
      if (gone.has(s.index)) problems.push(`${when}: message ${s.index} came back to the server`);
      continue;
    }
    gone.add(s.index);
    const entry = bySha.get(s.sha256);
    if (entry === undefined) {
      problems.push(`${when}: message ${s.index} (${s.size} bytes) left the server but the ledger has no entry with its sha256`);
      continue;
    }
    if (entry.status !== 'announced') problems.push(`${when}: message ${s.index} left the server while its entry is '${entry.status}'`);
    if (entry.key === undefined || seen.objects.get(entry.key) !== s.sha256) {
      problems.push(`${when}: message ${s.index} left the server but ${entry.key ?? '(no key)'} holds ${seen.objects.get(entry.key ?? '') ?? 'nothing'}`);
    }
    if (entry.eventId !== storedEventId(family.mailboxId, entry.uidl) || !seen.events.get(entry.eventId)?.sha256s.has(s.sha256)) {
      problems.push(`${when}: message ${s.index} left the server but its Email Stored event ${entry.eventId} was never published`);
    }
  }
  return problems;
}

interface CampaignResult {
  kills: Map<KillKind, number>;
  children: number;
  completedRuns: number;
  inUse: number;
  busy: number;
  unexpectedReports: string[];
  deliveredSmall: number;
  deliveredLarge: number;
  maxGone: number;
  /** For random kills: the last boundary the child crossed before it died ('start-up' if none). */
  randomKillPoints: Map<string, number>;
  finalReports: Array<Record<string, unknown>>;
  durationMs: number;
  /** Of durationMs: in children (spawn to exit), in the checks after them. */
  childMs: number;
  checkMs: number;
}

async function runCampaign(family: Family, mailbox: Mailbox, random: () => number): Promise<CampaignResult> {
  const started = Date.now();
  const kills = new Map<KillKind, number>(KILL_KINDS.map((k) => [k, 0]));
  const gone = new Set<number>();
  const result: CampaignResult = {
    kills,
    children: 0,
    completedRuns: 0,
    inUse: 0,
    busy: 0,
    unexpectedReports: [],
    deliveredSmall: 0,
    deliveredLarge: 0,
    maxGone: 0,
    randomKillPoints: new Map(),
    finalReports: [],
    durationMs: 0,
    childMs: 0,
    checkMs: 0,
  };
  const deliver = async (small: number, large: number): Promise<void> => {
    await mailbox.deliver(small, large);
    result.deliveredSmall += small;
    result.deliveredLarge += large;
  };
  const totalKills = (): number => [...kills.values()].reduce((a, b) => a + b, 0);
  const done = (): boolean => totalKills() >= KILLS_PER_FAMILY && [...kills.values()].every((n) => n >= MIN_KILLS_PER_KIND);

  const check = async (when: string): Promise<void> => {
    const checkStarted = Date.now();
    const present = new Set((await dovecot.listMaildir(mailbox.user)).map(baseName));
    const problems = deletionProblems(mailbox, family, present, await family.observe(), gone, when);
    result.maxGone = Math.max(result.maxGone, gone.size);
    result.checkMs += Date.now() - checkStarted;
    expect(problems, `seed ${seed}`).toEqual([]);
  };

  const noteReport = (outcome: ChildOutcome, when: string): void => {
    const report = outcome.report!;
    if (report.stopReason === 'in-use') result.inUse += 1;
    else if (report.stopReason === 'busy') result.busy += 1;
    else if (report.ok !== true || report.stopReason !== 'complete') {
      result.unexpectedReports.push(`${when}: ${JSON.stringify({ stopReason: report.stopReason, error: report.error, failures: report.failures })}`);
    }
  };

  await deliver(INITIAL_SMALL, INITIAL_LARGE);
  let kind = 0;
  while (!done()) {
    expect(result.children, `seed ${seed}: kills so far ${JSON.stringify(Object.fromEntries(kills))}`).toBeLessThan(MAX_CHILDREN_PER_FAMILY);
    // Pick the next kind that still needs kills (cycling), so every one gets its share.
    let next = KILL_KINDS[kind % KILL_KINDS.length]!;
    for (let k = 0; k < KILL_KINDS.length && totalKills() >= KILLS_PER_FAMILY && kills.get(next)! >= MIN_KILLS_PER_KIND; k++) {
      kind += 1;
      next = KILL_KINDS[kind % KILL_KINDS.length]!;
    }
    kind += 1;

    const onServer = await mailbox.onServer();
    if (result.children % TRICKLE_EVERY_RUNS === TRICKLE_EVERY_RUNS - 1) await deliver(1 + Math.floor(random() * 3), 0);
    if (onServer.length < REFILL_BELOW) await deliver(REFILL_COUNT, 0);
    if (next === 'retr-chunk-large' && !onServer.some((s) => s.large)) await deliver(0, 1);

    let stopAt: StopAt | undefined;
    let randomKill: RandomKill | undefined;
    const pick = (max: number): number => 1 + Math.floor(random() * max);
    switch (next) {
      case 'random':
        randomKill =
          random() < 1 / 3
            ? { from: 'spawn', delayMs: Math.floor(random() * RANDOM_KILL_AFTER_SPAWN_MAX_MS) }
            : { from: 'first-boundary', delayMs: Math.floor(random() * RANDOM_KILL_AFTER_FIRST_BOUNDARY_MAX_MS) };
        break;
      case 'retr-chunk-large':
        stopAt = { boundary: 'retr-chunk', occurrence: 1, minSize: LARGE_MIN_BYTES };
        break;
      case 'retr-chunk':
      case 'store-commit':
        stopAt = { boundary: next, occurrence: pick(8) };
        break;
      case 'dele-acked':
        stopAt = { boundary: next, occurrence: pick(4) };
        break;
      case 'quit-sent':
        stopAt = { boundary: next, occurrence: 1 };
        break;
      default: // batched steps: a run has a few batches
        stopAt = { boundary: next, occurrence: pick(2) };
    }
    const outcome = await runChild(family.childConfig(stopAt), randomKill);
    result.children += 1;
    result.childMs += outcome.durationMs;
    const when = `${family.name} child ${result.children} (planned: ${next}${stopAt ? ` #${stopAt.occurrence}` : ` ${randomKill!.delayMs} ms after the ${randomKill!.from}`})`;
    if (outcome.killedAt !== undefined) {
      kills.set(outcome.killedAt, kills.get(outcome.killedAt)! + 1);
      if (outcome.killedAt === 'random') {
        const point = outcome.crossed.at(-1) ?? 'start-up';
        result.randomKillPoints.set(point, (result.randomKillPoints.get(point) ?? 0) + 1);
      }
      await family.afterKill();
    } else {
      result.completedRuns += 1;
      noteReport(outcome, when);
    }
    await check(when);
  }

  // The last runs: no kill, until one completes (a Dovecot session a kill left behind may hold
  // the mailbox for a moment: [IN-USE] is counted and retried, not a failure). New mail, a
  // large message among it, arrives first, so the last run also writes (and spools) messages.
  await deliver(1, 1);
  for (let attempt = 1; ; attempt++) {
    expect(attempt, `seed ${seed}: no clean final run`).toBeLessThanOrEqual(MAX_FINAL_ATTEMPTS);
    const outcome = await runChild(family.childConfig(undefined), undefined);
    result.children += 1;
    result.childMs += outcome.durationMs;
    result.finalReports.push(outcome.report!);
    noteReport(outcome, `${family.name} final run ${attempt}`);
    await check(`${family.name} final run ${attempt}`);
    if (outcome.report!.stopReason === 'complete') break;
    await sleep(IN_USE_RETRY_DELAY_MS);
  }
  result.durationMs = Date.now() - started;
  return result;
}

/** Everything a family must hold once the last run completed. */
async function checkFinalState(family: Family, mailbox: Mailbox, result: CampaignResult): Promise<void> {
  const where = `seed ${seed}, ${family.name}`;
  expect(await dovecot.listMaildir(mailbox.user), `${where}: the mailbox is drained`).toEqual([]);
  expect(result.unexpectedReports, where).toEqual([]);
  const seen = await family.observe();
  const sources = mailbox.sources;

  // Store: one object per message, exact bytes, nothing else.
  expect(seen.stray, `${where}: stray objects`).toEqual([]);
  expect(seen.objects.size, `${where}: objects`).toBe(sources.length);
  expect([...seen.objects.values()].sort(), `${where}: stored bytes`).toEqual(sources.map((s) => s.sha256).sort());

  // Ledger: one announced entry per object and per message, under the key of its UIDL.
  expect(seen.entries.size, `${where}: ledger entries`).toBe(sources.length);
  const uidValidities = new Set<string>();
  const bySha = new Map([...seen.entries.values()].map((e) => [e.sha256, e]));
  for (const s of sources) {
    const entry = bySha.get(s.sha256);
    expect(entry, `${where}: message ${s.index} has a ledger entry`).toBeDefined();
    expect(entry!.status, `${where}: message ${s.index}`).toBe('announced');
    expect(entry!.key, `${where}: message ${s.index}`).toBe(messageKey(family.mailboxId, entry!.uidl));
    expect(seen.objects.get(entry!.key!), `${where}: message ${s.index}`).toBe(s.sha256);
    // The UIDL is this message's: Dovecot numbers messages in delivery order from UID 1.
    const uidl = DOVECOT_UIDL.exec(entry!.uidl);
    expect(uidl, `${where}: UIDL ${entry!.uidl}`).not.toBeNull();
    expect(parseInt(uidl![1]!, 16), `${where}: UID of message ${s.index}`).toBe(s.index + 1);
    uidValidities.add(uidl![2]!);
  }
  expect(uidValidities.size, where).toBe(1);
  for (const key of seen.objects.keys()) {
    expect([...seen.entries.values()].some((e) => e.key === key), `${where}: object ${key} has an entry`).toBe(true);
  }
  const { ledger, close } = family.freshLedger();
  const looked = await ledger.lookup(family.mailboxId, [...seen.entries.keys()]);
  expect(looked.size, where).toBe(sources.length);
  for (const [uidl, e] of looked) {
    expect({ status: e.status, sha256: e.sha256, key: e.key }, `${where}: lookup ${uidl}`).toEqual({
      status: 'announced',
      sha256: seen.entries.get(uidl)!.sha256,
      key: seen.entries.get(uidl)!.key,
    });
  }
  expect(await ledger.pending(family.mailboxId), where).toEqual([]);
  await close();

  // Events: every message announced; all copies of an event carry its one id and sha256.
  expect(seen.events.size, `${where}: distinct Email Stored events`).toBe(sources.length);
  for (const e of seen.entries.values()) {
    const view = seen.events.get(e.eventId);
    expect(view, `${where}: event of ${e.uidl}`).toBeDefined();
    expect([...view!.sha256s], `${where}: event ${e.eventId}`).toEqual([e.sha256]);
    expect([...view!.uidls], `${where}: event ${e.eventId}`).toEqual([e.uidl]);
    expect([...view!.keys], `${where}: event ${e.eventId} names the object`).toEqual([e.key]);
  }
}

function summary(family: Family, r: CampaignResult, seen: Observation, leftovers: string[]): string {
  const counts = [...seen.events.values()].map((v) => v.count);
  const duplicated = counts.filter((c) => c > 1).length;
  const deletedUnmarked = [...seen.entries.values()].filter((e) => e.deletedAt === undefined).length;
  return (
    `[drain-crash ${family.name}] seed ${seed}: ${r.children} children in ${(r.durationMs / 1000).toFixed(1)} s ` +
    `(${(r.childMs / 1000).toFixed(1)} s in children, ${(r.checkMs / 1000).toFixed(1)} s in checks); ` +
    `kills ${JSON.stringify(Object.fromEntries(r.kills))} (random ones after ${JSON.stringify(Object.fromEntries(r.randomKillPoints))}); runs that ended by themselves ${r.completedRuns}; ` +
    `in-use ${r.inUse}, busy ${r.busy}; delivered ${r.deliveredSmall} small + ${r.deliveredLarge} large; ` +
    `events: ${counts.length} ids, ${duplicated} published more than once (max ${Math.max(0, ...counts)}); ` +
    `entries without deletedAt ${deletedUnmarked}; leftover temp/spool files ${leftovers.length}`
  );
}

// ---------------------------------------------------------------------------------------------

/** The whole file runs both campaigns one after the other: about 20-35 s each on two cores. */
const CAMPAIGN_TIMEOUT_MS = 240_000;

describe('SIGKILL at every step of a drain, then a rerun', () => {
  it('local adapters: nothing lost, nothing stored twice, nothing deleted before it was stored and announced', async () => {
    const random = prng(seed);
    const out = await mkdtemp(join(work, 'out-'));
    const user = 'crash-local';
    await dovecot.addUser(user, PASSWORD);
    const mailbox = new Mailbox(user, 'local', random);
    const family = localFamily(out, user);
    const result = await runCampaign(family, mailbox, random);
    await checkFinalState(family, mailbox, result);

    // Temp files of killed children are never named as messages, and the store's cleanup
    // (which runs before a run's first write to the folder) can remove every one of them.
    const leftovers = await family.leftovers();
    expect(leftovers.filter((n) => n.endsWith('.eml'))).toEqual([]);
    console.log(summary(family, result, await family.observe(), leftovers));
    await new FileMessageStore({ root: out }).cleanupTemp(family.mailboxId);
    expect(await family.leftovers()).toEqual([]);
    // The lease file names its holder's pid: a dead holder never makes the next run wait.
    expect(result.busy).toBe(0);
  }, CAMPAIGN_TIMEOUT_MS);

  describe('AWS adapters (s3rver, dynalite, recording EventBridge endpoint)', () => {
    let backends: AwsBackends | undefined;
    /** Spool files left in the S3 store's spool folder once the campaign's last run completed. */
    let spoolLeftovers: Array<{ name: string; bytes: number; completeCopyOfMessage: number | undefined }> | undefined;

    beforeAll(async () => {
      const [s3, dynamo, events] = await Promise.all([startS3rver(), startDynalite(), startAwsJsonEndpoint()]);
      backends = { s3, dynamo, events, spoolDir: await mkdtemp(join(work, 'spool-')) };
      await Promise.all([s3.createBucket(BUCKET), dynamo.createLedgerTable(TABLE)]);
    });

    afterAll(async () => {
      await Promise.all([backends?.s3.stop(), backends?.dynamo.stop(), backends?.events.close()]);
    });

    it('nothing lost, nothing stored twice, nothing deleted before it was stored and announced', async () => {
      const random = prng(seed ^ 0x5eed);
      const user = 'crash-aws';
      await dovecot.addUser(user, PASSWORD);
      const mailbox = new Mailbox(user, 'aws', random);
      const family = awsFamily(backends!, user);
      const result = await runCampaign(family, mailbox, random);
      const leftovers = await family.leftovers();
      spoolLeftovers = await Promise.all(
        leftovers.map(async (name) => {
          const data = await readFile(join(backends!.spoolDir, name));
          const copyOf = mailbox.sources.find((m) => m.sha256 === sha256(data))?.index;
          return { name, bytes: data.length, completeCopyOfMessage: copyOf };
        }),
      );
      console.log(summary(family, result, await family.observe(), leftovers));
      await checkFinalState(family, mailbox, result);
      expect(result.busy).toBe(0);
    }, CAMPAIGN_TIMEOUT_MS);

    // S3MessageStore (lib/adapters/aws/s3-store.ts) spools a message over `memorySpoolBytes` to a
    // `popdrain-spool-<uuid>.part` file that it unlinks as soon as it is open, so a killed process
    // leaves no copy of mail behind. That matters in a Lambda, where /tmp outlives a timed-out
    // invocation in the same execution environment.
    it('killed runs leave no spool file behind, and none is named like a message', () => {
      expect(spoolLeftovers, 'the campaign above ran').toBeDefined();
      expect(spoolLeftovers!.filter((f) => f.name.endsWith('.eml')), 'spool files named .eml').toEqual([]);
      expect(spoolLeftovers, 'spool files of killed runs, after a later run completed').toEqual([]);
    });
  });
});
