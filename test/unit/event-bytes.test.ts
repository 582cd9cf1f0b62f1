// The bytes a new message's event leaves in the ledger's log and in the event file are exactly
// their definitions, however unusual the message's headers: a `rec` line is `<crc32> ` +
// JSON.stringify({ t: 'rec', e: entry }) + `\n` (the event last), an event line is
// JSON.stringify({ id, source, detail-type, time, detail }) + `\n`. The events go through the
// metadata reader, a real FileLedger and a real JsonlEventSink, in the order a drain uses them
// (record, then publish), and also published without a ledger line before them.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileLedger } from '../../lib/adapters/local/file-ledger.js';
import { JsonlEventSink } from '../../lib/adapters/local/jsonl-event-sink.js';
import { detailJson, eventJson, toEnvelope, type DrainEvent, type MessageMetadata } from '../../lib/drain/events.js';
import { readMetadata } from '../../lib/drain/metadata.js';
import type { LedgerEntry } from '../../lib/drain/ports.js';
import { storedEntry } from '../../testkit/fixtures/ledger-fixtures.js';

const MAILBOX = 'bytes-box';
const LONG = 'x'.repeat(3000) + ' ünï "q" \\b ' + '€'.repeat(2000);

/** Raw messages with headers that stress the JSON text: non-ASCII, quotes, backslashes, control characters, long fields. */
const RAW: string[] = [
  'From: "Zoë \\"Q\\" Ünïcode" <zoe@example.test>\r\nTo: a@example.test\r\nSubject: plain ascii\r\nMessage-ID: <a@b>\r\nDate: Tue, 1 Jul 2025 10:00:00 +0200\r\n\r\nbody\r\n',
  'From: =?UTF-8?B?5pel5pys6Kqe?= <jp@example.test>\r\nSubject: =?UTF-8?Q?caf=C3=A9_=E2=80=9Cquoted=E2=80=9D_=F0=9F=93=A7?=\r\n\r\nbody\r\n',
  'Subject: back\\slash "quote" \x01\x02\x1f\x7f tab\there\r\nTo: "a\\\\b" <ab@example.test>, "" <empty@example.test>\r\n\r\nx\r\n',
  'Subject: raw UTF-8 ünïcödé — “quotes” 😀 \u2028 \u2029\r\nFrom: Ünï <u@example.test>\r\n\r\n',
  `Subject: ${'long '.repeat(4000)}\r\nFrom: ${Array.from({ length: 300 }, (_, i) => `n${i} <n${i}@example.test>`).join(', ')}\r\n\r\n`,
  'Content-Type: multipart/mixed; boundary="b"\r\nSubject: attachment\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/octet-stream; name="we\\"ird \\\\ ünï.bin"\r\nContent-Disposition: attachment; filename="we\\"ird \\\\ ünï.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAwQ=\r\n--b--\r\n',
  'Subject: \r\nDate: garbage\r\n\r\n',
];

/** Metadata no header gives, set by hand: lone surrogates, NUL, every control character. */
const HAND_MADE: MessageMetadata[] = [
  { subject: `lone \ud800 high, lone \udfff low, pair \ud83d\udce7, NUL \u0000`, attachments: [] },
  { subject: Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)).join(''), from: [{ name: '\\"', address: '"@"' }], attachments: [] },
  { subject: LONG, truncated: ['subject'], attachments: [{ filename: LONG, contentType: 'text/plain', size: 1 }] },
];

async function metadataOf(raw: string): Promise<MessageMetadata> {
  return await readMetadata([Buffer.from(raw, 'utf8')]);
}

/** Entries as the recorder makes them (event last), each with a detail object of its own. */
async function entries(): Promise<Array<LedgerEntry & { event: DrainEvent }>> {
  const metadata = [...(await Promise.all(RAW.map(metadataOf))), ...HAND_MADE];
  return metadata.map((m, i) => {
    const entry = storedEntry(MAILBOX, i % 2 === 0 ? `uidl-${i}` : `ü"\\${i}`);
    if (entry.event.detailType !== 'Email Stored') throw new Error('unreachable');
    entry.event.detail.metadata = m;
    if (i === 3) entry.event.detail.metadataError = 'bad "header" \\ ünï \u0001';
    return entry;
  });
}

function recLine(entry: LedgerEntry): Buffer {
  const json = Buffer.from(JSON.stringify({ t: 'rec', e: entry }), 'utf8');
  return Buffer.concat([Buffer.from(`${crc32(json).toString(16).padStart(8, '0')} `), json, Buffer.from('\n')]);
}

function eventLine(event: DrainEvent): Buffer {
  return Buffer.from(`${JSON.stringify({ id: event.id, ...toEnvelope(event) })}\n`, 'utf8');
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'popdrain-event-bytes-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the bytes of an event in the ledger and the event file', () => {
  it('the metadata of the unusual messages is not trivial', async () => {
    const all = await entries();
    const texts = all.map((e) => JSON.stringify(e.event));
    expect(texts.some((t) => t.includes('\\"'))).toBe(true);
    expect(texts.some((t) => t.includes('\\\\'))).toBe(true);
    expect(texts.some((t) => t.includes('\\u0001'))).toBe(true);
    expect(texts.some((t) => t.includes('ü'))).toBe(true);
    expect(texts.some((t) => t.includes('\\ud800'))).toBe(true);
    expect(texts.some((t) => Buffer.byteLength(t) > 16_000)).toBe(true);
  });

  it('recorded, then published: each line is its definition, byte for byte', async () => {
    const all = await entries();
    const expectedLedger = all.map(recLine);
    const expectedEvents = all.map((e) => eventLine(e.event));
    const ledger = new FileLedger({ dir: join(dir, 'ledger') });
    const sink = new JsonlEventSink({ path: join(dir, 'events.jsonl') });
    // Two record calls and two publish calls, as a drain's batches make them.
    const outcomes = [...(await ledger.record(all.slice(0, 4))), ...(await ledger.record(all.slice(4)))];
    expect(outcomes.every((o) => o.ok)).toBe(true);
    const first = await sink.publish(all.slice(0, 5).map((e) => e.event));
    const second = await sink.publish(all.slice(5).map((e) => e.event));
    expect([...first.published, ...second.published]).toEqual(all.map((e) => e.event.id));
    await sink.close();
    await ledger.close();

    const log = await readFile(join(dir, 'ledger', `${MAILBOX}.ledger`));
    const firstNewline = log.indexOf(0x0a);
    expect(log.subarray(firstNewline + 1).equals(Buffer.concat(expectedLedger))).toBe(true);
    expect((await readFile(join(dir, 'events.jsonl'))).equals(Buffer.concat(expectedEvents))).toBe(true);
  });

  it('published with no ledger line made first, and read as text after a ledger line: the same bytes', async () => {
    const all = await entries();
    const sink = new JsonlEventSink({ path: join(dir, 'events.jsonl') });
    await sink.publish(all.map((e) => e.event));
    await sink.close();
    expect((await readFile(join(dir, 'events.jsonl'))).equals(Buffer.concat(all.map((e) => eventLine(e.event))))).toBe(true);
    // The EventBridge sink reads the detail's text (detailJson) after the ledger made the line.
    const again = await entries();
    const ledger = new FileLedger({ dir: join(dir, 'ledger') });
    await ledger.record(again);
    await ledger.close();
    for (const entry of again) {
      expect(detailJson(entry.event.detail)).toBe(JSON.stringify(entry.event.detail));
      expect(detailJson(entry.event.detail)).toBe(JSON.stringify(entry.event.detail)); // taken out once: made again
      expect(eventJson(entry.event)).toBe(JSON.stringify(entry.event));
    }
  });
});
