// Reading a ledger log in pieces (log-reader.ts) gives what decodeLog gives for the whole file,
// with entries that keep their events' places in the file (log-event-source.ts), read when needed.
import { mkdtemp, open, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { unparsedEventText } from '../../lib/adapters/local/lazy-event-entry.js';
import { decodeLog, encodeEntryLine, encodeRecord, entryJson, type DecodedLog } from '../../lib/adapters/local/ledger-log.js';
import { LogEventSource } from '../../lib/adapters/local/log-event-source.js';
import { readLog } from '../../lib/adapters/local/log-reader.js';
import type { LedgerEntry } from '../../lib/drain/ports.js';
import { storedEntry } from '../../testkit/fixtures/ledger-fixtures.js';

const MAILBOX = 'reader-box';

function tricky(uidl: string): LedgerEntry {
  const entry = storedEntry(MAILBOX, uidl);
  if (entry.event.detailType === 'Email Stored') entry.event.detail.metadata.subject = `}{ "\\" ,"event":{} ünï ${uidl}\n`;
  return entry;
}

const hdr = encodeRecord({ t: 'hdr', v: 1, mailboxId: MAILBOX });
const recs = [tricky('u1'), tricky('u"2'), tricky('u3')].map((e) => encodeEntryLine(entryJson(e)));
const ann = encodeRecord({ t: 'ann', u: ['u1'], at: 5 });
const bad = Buffer.from(ann);
bad[15] = bad[15]! ^ 1;

/** Logs of every kind decodeLog tells apart: whole, torn, with garbage in the middle and at the end. */
const LOGS: Record<string, Buffer> = {
  whole: Buffer.concat([hdr, ...recs, ann]),
  'torn last line': Buffer.concat([hdr, ...recs, ann.subarray(0, 20)]),
  'NUL tail': Buffer.concat([hdr, ...recs, Buffer.alloc(3000)]),
  'bad line in the middle': Buffer.concat([hdr, recs[0]!, bad, recs[1]!]),
  'two bad lines at the end': Buffer.concat([hdr, recs[0]!, bad, bad]),
  'empty lines': Buffer.concat([hdr, Buffer.from('\n'), recs[0]!]),
  garbage: Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919 + 13) % 256)),
  empty: Buffer.alloc(0),
};

/** What a caller of either sees: the records as JSON (lazy events read), sizes, offsets. */
const seen = (d: DecodedLog): unknown => ({ ...d, records: JSON.parse(JSON.stringify(d.records)) as unknown });

describe('readLog', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'popdrain-log-reader-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function readWith(data: Buffer, chunkBytes: number): Promise<ReturnType<typeof readLog>> {
    const path = join(dir, 'm.ledger');
    await writeFile(path, data);
    const handle = await open(path, 'r');
    try {
      return await readLog(handle, data.length, LogEventSource.open(path), chunkBytes);
    } finally {
      await handle.close();
    }
  }

  it('equals decodeLog of the whole file at every chunk size, lines longer than a chunk included', async () => {
    for (const [name, data] of Object.entries(LOGS)) {
      const expected = seen(decodeLog(data));
      for (const chunk of [1, 7, 64, 333, 1024, 1 << 20]) {
        const read = await readWith(data, chunk);
        expect({ name, chunk, bytes: read.bytes }).toEqual({ name, chunk, bytes: data.length });
        const { bytes: _, ...decoded } = read;
        expect(seen(decoded), `${name} in chunks of ${chunk}`).toEqual(expected);
      }
    }
  });

  it('leaves the events in the file and reads them from the version it loaded, after the log was renamed over', async () => {
    const path = join(dir, 'm.ledger');
    const read = await readWith(LOGS.whole!, 50);
    const first = read.records[1]!;
    if (first.t !== 'rec') throw new Error('expected an entry');
    // As compaction does: another file renamed over the log.
    await writeFile(join(dir, 'other'), Buffer.alloc(LOGS.whole!.length, 0x20));
    await rename(join(dir, 'other'), path);
    expect(unparsedEventText(first.e)!.toString('utf8')).toBe(JSON.stringify(tricky('u1').event));
    expect(first.e.event).toEqual(tricky('u1').event);
    expect(unparsedEventText(first.e)).toBeUndefined();
  });

  it('fails a closed source with LEDGER_FAILED, not with another file\'s bytes', async () => {
    const path = join(dir, 'm.ledger');
    await writeFile(path, LOGS.whole!);
    const source = LogEventSource.open(path);
    const handle = await open(path, 'r');
    const read = await readLog(handle, LOGS.whole!.length, source);
    await handle.close();
    source.close();
    const entry = read.records[2]!;
    if (entry.t !== 'rec') throw new Error('expected an entry');
    expect(() => entry.e.event).toThrow(expect.objectContaining({ code: 'LEDGER_FAILED' }));
  });
});
