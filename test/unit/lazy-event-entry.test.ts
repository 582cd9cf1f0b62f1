import { describe, expect, it } from 'vitest';
import { copyEntry, decodeEntryBody, entryJsonInOrder, entryKeptWith, unparsedEventText } from '../../lib/adapters/local/lazy-event-entry.js';
import { encodeEntryLine, entryJson } from '../../lib/adapters/local/ledger-log.js';
import type { LedgerEntry } from '../../lib/drain/ports.js';
import { storedEntry } from '../../testkit/fixtures/ledger-fixtures.js';

const MAILBOX = 'lazy-box';

/** The body of a `rec` line as the ledger writes it: JSON.stringify of the record. */
const bodyOf = (entry: LedgerEntry): Buffer => Buffer.from(JSON.stringify({ t: 'rec', e: entry }), 'utf8');

/** An entry whose strings hold everything that could fool a scanner. */
function trickyEntry(uidl: string): LedgerEntry {
  const entry = storedEntry(MAILBOX, uidl);
  if (entry.event.detailType !== 'Email Stored') throw new Error('unreachable');
  entry.event.detail.metadata.subject = 'braces } { ] [ quotes " \\" \\\\ ,"event":{"x":1}} ünï “✓”';
  return entry;
}

describe('lazy ledger entries', () => {
  it('decodes an entry with its event last, parsing the event only when read', () => {
    const entry = trickyEntry('u"1}');
    const decoded = decodeEntryBody(bodyOf(entry))!;
    expect(decoded).toBeDefined();
    expect(unparsedEventText(decoded)).toBeDefined();
    expect(decoded.status).toBe('stored');
    expect(unparsedEventText(decoded)).toBeDefined(); // reading fields leaves the event alone
    expect(decoded.event).toEqual(entry.event);
    expect(unparsedEventText(decoded)).toBeUndefined();
    expect(JSON.stringify(decoded)).toBe(JSON.stringify(entry));
  });

  it('keeps fields written after the event, in their order', () => {
    const entry: LedgerEntry = { ...trickyEntry('u2'), status: 'announced', announcedAt: 5, deletedAt: 6, expiresAt: 7 };
    // As a snapshot of a changed entry writes it: the event before the later fields.
    const { announcedAt, deletedAt, expiresAt, ...rest } = entry;
    const snapshotOrder = { ...rest, announcedAt, deletedAt, expiresAt } as LedgerEntry;
    const decoded = decodeEntryBody(bodyOf(snapshotOrder))!;
    expect(Object.keys(decoded)).toEqual(Object.keys(snapshotOrder));
    expect(entryJsonInOrder(decoded)).toBe(JSON.stringify(snapshotOrder));
    expect(unparsedEventText(decoded)).toBeDefined();
    expect(JSON.stringify(decoded)).toBe(JSON.stringify(snapshotOrder));
  });

  it('keeps a new entry with its event as a view of the line written (entryKeptWith), equal to the entry and to its replay', () => {
    const entry = trickyEntry('u"5}');
    const line = encodeEntryLine(entryJson(entry));
    const kept = entryKeptWith(entry, line);
    const text = unparsedEventText(kept)!;
    expect(kept === entry).toBe(false);
    expect(Object.keys(kept)).toEqual(Object.keys(entry));
    expect(text.buffer === line.buffer).toBe(false); // a copy: the line's pool is not kept alive
    expect(text.toString('utf8')).toBe(JSON.stringify(entry.event));
    expect(entryJsonInOrder(kept)).toBe(JSON.stringify(entry));
    const replayed = decodeEntryBody(line.subarray(9, line.length - 1))!;
    expect(kept.event).toEqual(entry.event);
    expect(kept).toEqual(replayed);
    // Changing the kept entry (as marking it announced does) leaves the caller's alone.
    kept.status = 'announced';
    expect(entry.status).toBe('stored');
  });

  it('entryKeptWith copies an entry of another shape as it is', () => {
    const entry = storedEntry(MAILBOX, 'u6');
    const withObject = { ...entry, extra: { event: 1 } } as unknown as LedgerEntry;
    const line = encodeEntryLine(entryJson(withObject));
    const kept = entryKeptWith(withObject, line);
    expect(unparsedEventText(kept)).toBeUndefined();
    expect(kept).toEqual(withObject);
    expect(kept.event).toBe(entry.event);
    // A line that does not end in the event (not what entryJson writes) is not trusted either.
    const other = entryKeptWith(entry, Buffer.from('00000000 {"t":"rec","e":{"uidl":"u6"}}\n'));
    expect(unparsedEventText(other)).toBeUndefined();
    expect(other.event).toBe(entry.event);
  });

  it('leaves lines of any other shape to the whole-line parse', () => {
    const entry = storedEntry(MAILBOX, 'u3');
    const { event, ...fields } = entry;
    const shapes = [
      { t: 'rec', e: fields }, // no event
      { t: 'rec', e: { ...fields, nested: { a: 1 }, event } }, // an object field
      { t: 'rec', e: { ...fields, event, later: [1] } }, // an array after the event
      { t: 'ann', u: ['u3'], at: 1 },
    ];
    for (const shape of shapes) expect(decodeEntryBody(Buffer.from(JSON.stringify(shape)))).toBeUndefined();
  });

  it('copies stay lazy, share the parse, keep the key order, and take a new event when assigned', () => {
    const entry: LedgerEntry = { ...storedEntry(MAILBOX, 'u4'), announcedAt: 9 };
    const { announcedAt, ...rest } = entry;
    const decoded = decodeEntryBody(bodyOf({ ...rest, announcedAt } as LedgerEntry))!;
    const copy = copyEntry(decoded);
    expect(Object.keys(copy)).toEqual(Object.keys(decoded));
    expect(unparsedEventText(copy)).toBeDefined();
    const event = copy.event;
    expect(unparsedEventText(decoded)).toBeUndefined();
    expect(decoded.event).toBe(event);
    expect({ ...copy }).toEqual({ ...entry });
    const other = storedEntry(MAILBOX, 'u5').event;
    copy.event = other;
    expect(copy.event).toBe(other);
    expect(decoded.event).toBe(event);
  });
});
