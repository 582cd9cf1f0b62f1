// The entries a ledger recorded itself, once their lines are durable, are kept as columns
// (recorded-entries.ts, LedgerModel.settle) and read from their lines in the log when a caller
// needs them whole: the same entries, announcements and deletions as objects would give.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { LedgerEntry } from '../../lib/drain/ports.js';
import { encodeEntryLine, encodeRecord, entryJson, LEDGER_FORMAT_VERSION, LedgerModel, type LedgerRecord } from '../../lib/adapters/local/ledger-log.js';
import { LogEventSource } from '../../lib/adapters/local/log-event-source.js';
import { storedEntry } from '../../testkit/fixtures/ledger-fixtures.js';
import { dir, ledgerAt, MAILBOX, useTempDirPerTest } from '../support/local-adapters-world.js';

useTempDirPerTest();

/** A log of `records` written to a file, applied to a model as a writer appends them (offsets known). */
async function written(records: LedgerRecord[]): Promise<{ model: LedgerModel; source: LogEventSource; path: string }> {
  const model = new LedgerModel(MAILBOX);
  const lines = records.map((r) => (r.t === 'rec' ? encodeEntryLine(entryJson(r.e)) : encodeRecord(r)));
  let offset = 0;
  records.forEach((r, i) => {
    model.apply(r, lines[i]!.length, offset);
    offset += lines[i]!.length;
  });
  const path = join(dir, `${MAILBOX}.ledger`);
  await writeFile(path, Buffer.concat(lines));
  return { model, source: LogEventSource.open(path), path };
}

const header: LedgerRecord = { t: 'hdr', v: LEDGER_FORMAT_VERSION, mailboxId: MAILBOX };
const entries = ['u1', 'u2', 'u"3}'].map((uidl) => storedEntry(MAILBOX, uidl));

describe('LedgerModel.settle: recorded entries as columns', () => {
  it('reads each entry back whole from its line, as recorded, and keeps no object until then', async () => {
    const { model, source } = await written([header, ...entries.map((e): LedgerRecord => ({ t: 'rec', e: { ...e } }))]);
    const placesBefore = entries.map((e) => model.linePlace(e.uidl));
    model.settle(
      entries.map((e) => e.uidl),
      source,
    );
    expect(model.entries.size).toBe(0);
    expect(model.recorded?.count).toBe(3);
    expect(model.recorded?.objects.size).toBe(0);
    expect(model.size).toBe(3);
    expect(entries.map((e) => model.linePlace(e.uidl))).toEqual(placesBefore);
    expect(model.has('u2')).toBe(true);
    expect(model.has('u4')).toBe(false);
    expect({ ...model.facts('u"3}') }).toEqual({ status: 'stored', size: entries[2]!.size, firstSeenAt: entries[2]!.firstSeenAt, announcedAt: undefined, deletedAt: undefined, expiresAt: undefined });
    for (const e of entries) expect(JSON.parse(JSON.stringify(model.get(e.uidl)))).toEqual(JSON.parse(JSON.stringify(e)));
    expect(model.recorded?.objects.size).toBe(3);
  });

  it('applies announcements and deletions to the columns, and to an entry read whole since', async () => {
    const { model, source } = await written([header, ...entries.map((e): LedgerRecord => ({ t: 'rec', e: { ...e } }))]);
    model.settle(
      entries.map((e) => e.uidl),
      source,
    );
    model.apply({ t: 'ann', u: ['u1', 'u2'], at: 1_000 }, 0);
    model.apply({ t: 'ann', u: ['u1'], at: 2_000 }, 0); // the first time stays
    model.apply({ t: 'del', u: ['u1'], at: 3_000, exp: 4 }, 0);
    expect(model.toAnnounce(['u1', 'u2', 'u"3}'])).toEqual(['u"3}']);
    expect(model.get('u1')).toMatchObject({ status: 'announced', announcedAt: 1_000, deletedAt: 3_000, expiresAt: 4 });
    model.apply({ t: 'del', u: ['u1'], at: 5_000, exp: 6 }, 0); // on the object now
    expect(model.get('u1')).toMatchObject({ deletedAt: 3_000, expiresAt: 6 });
    expect(model.get('u2')?.event).toEqual(entries[1]!.event);
    expect([...model.values((f) => f.status === 'stored')].map((e) => e.uidl)).toEqual(['u"3}']);
    expect(model.countExpired(5_000)).toBe(0);
    expect(model.countExpired(7_000)).toBe(1);
    const rows: string[] = [];
    expect(model.everyOwnEntry((uidl, facts, place) => (rows.push(`${uidl} ${facts.status} ${place?.offset}`), true))).toBe(true);
    expect(rows).toEqual(entries.map((e, i) => `${e.uidl} ${i < 2 ? 'announced' : 'stored'} ${model.linePlace(e.uidl)!.offset}`));
  });

  it('refuses a line that is not the entry its column points at (LEDGER_FAILED), instead of returning another entry', async () => {
    const { model, source, path } = await written([header, ...entries.map((e): LedgerRecord => ({ t: 'rec', e: { ...e } }))]);
    model.settle(['u1', 'u2'], source);
    // The same bytes with u1 and u2 swapped: each place now holds the other's line.
    const other = await written([header, { t: 'rec', e: { ...entries[1]! } }, { t: 'rec', e: { ...entries[0]! } }]);
    expect(other.path).toBe(path);
    expect(() => model.get('u2')).toThrow(/not the entry of UIDL u2/);
  });

  it('leaves imported entries and entries of unwritten lines as objects', async () => {
    const imported: LedgerEntry = { mailboxId: MAILBOX, uidl: 'i1', status: 'imported', size: 0, firstSeenAt: 1 };
    const { model, source } = await written([header, { t: 'rec', e: imported }]);
    model.apply({ t: 'rec', e: { ...entries[0]! } }, 10); // no offset: its line's place is unknown
    model.settle(['i1', 'u1'], source);
    expect(model.recorded).toBeUndefined();
    expect(model.entries.size).toBe(2);
  });
});

describe('FileLedger: entries recorded, then read by another instance through the index and the log', () => {
  it('gives back what was recorded, announced and deleted, after the writer kept them as columns', async () => {
    const writer = ledgerAt({ dir, indexMinBytes: 0 });
    expect((await writer.record(entries.map((e) => ({ ...e })))).every((o) => o.ok)).toBe(true);
    const log = await (writer as unknown as { logs: Map<string, Promise<{ model: LedgerModel }>> }).logs.get(MAILBOX)!;
    expect(log.model.recorded?.count).toBe(3);
    expect(log.model.entries.size).toBe(0);
    await writer.markAnnounced(MAILBOX, ['u1'], 1_000);
    await writer.markDeleted(MAILBOX, ['u1'], 2_000, 3);
    expect((await writer.record([{ ...entries[0]! }]))[0]).toMatchObject({ ok: false, conflict: { uidl: 'u1', status: 'announced' } });
    const seen = await writer.lookup(MAILBOX, ['u1', 'u2']);
    expect(seen.get('u2')?.event).toEqual(entries[1]!.event);
    expect((await writer.pending(MAILBOX)).map((e) => e.uidl)).toEqual(['u2', 'u"3}']);
    await writer.close();
    const reader = ledgerAt({ dir });
    const read = await reader.lookup(MAILBOX, ['u1', 'u2', 'u"3}']);
    expect(read.get('u1')).toMatchObject({ status: 'announced', announcedAt: 1_000, deletedAt: 2_000, expiresAt: 3 });
    expect(JSON.parse(JSON.stringify(read.get('u"3}')))).toEqual(JSON.parse(JSON.stringify(entries[2])));
    expect(await reader.counts(MAILBOX)).toEqual({ stored: 2, announced: 1, skipped: 0, imported: 0, deleted: 1 });
    await reader.close();
  });
});
