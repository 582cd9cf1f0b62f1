/**
 * drainMailbox end to end into the AWS adapters: a real Dovecot, S3MessageStore on s3rver,
 * DynamoDbLedger on dynalite, EventBridgeSink and SecretsManagerCredentials on the recording
 * AWS JSON endpoint (real SDK clients, explicit fake credentials, region and loopback
 * endpoints; set up by test/support/drain-aws-world.ts). Its faults and the OAuth2 mailbox are
 * in drain-aws-faults.test.ts.
 *
 * What the stand-ins cannot show is not claimed here: s3rver ignores `If-None-Match` (the
 * conditional write is aws-s3-store-scripted.test.ts's) and dynalite never expires items (the TTL
 * attribute's value is asserted, not an expiry).
 */
import { createHash } from 'node:crypto';
import v8 from 'node:v8';
import vm from 'node:vm';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { LEDGER_TTL_ATTRIBUTE } from '../../lib/adapters/aws/dynamodb-ledger.js';
import { s3ObjectArn } from '../../lib/adapters/aws/eventbridge-sink.js';
import { DEFAULT_PART_SIZE_BYTES, DEFAULT_QUEUE_SIZE, DEFAULT_S3_PREFIX, SHA256_METADATA_KEY } from '../../lib/adapters/aws/s3-store.js';
import type { DrainBudget } from '../../lib/drain/drain-mailbox.js';
import { EVENT_SOURCE } from '../../lib/drain/events.js';
import { messageDigest, messageKey, storedEventId } from '../../lib/drain/keys.js';
import type { DrainReport } from '../../lib/drain/report.js';
import { servedForm, sha256, testMessage } from '../../testkit/fixtures/drain-fixtures.js';
import { validateEventEnvelope } from '../support/event-schema.js';
import {
  accepted,
  aws,
  BUCKET,
  BUS,
  clearAccepted,
  DAY_S,
  delivered,
  detailOf,
  dovecot,
  getObject,
  ledger,
  newUser,
  objectDigest,
  objectKeys,
  ports,
  rawMessageItem,
  run,
  s3Client,
  setUpDrainAwsWorld,
  storedEntries,
  uidlsOf,
} from '../support/drain-aws-world.js';

const MiB = 1024 * 1024;
const GC_SAMPLE_INTERVAL_MS = 100;

v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;

setUpDrainAwsWorld();

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
    clearAccepted();
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
