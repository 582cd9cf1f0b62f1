/**
 * The ledger index's format and the decision to use it (ledger-index-codec.ts): what is encoded
 * decodes to the same columns; a torn, damaged or foreign index is refused, never half-read; an
 * index that does not describe the log being loaded is ignored, with the reason.
 */
import { describe, expect, it } from 'vitest';
import type { EntryFacts } from '../../lib/adapters/local/compact-entries.js';
import { crc32 as crc32Of } from '../../lib/adapters/local/crc32.js';
import { UidlTable } from '../../lib/adapters/local/uidl-table.js';
import { CHECK_WINDOW_BYTES, checkWindows, decodeIndex, encodeIndex, indexProblem, type IndexHeader, type IndexRow } from '../../lib/adapters/local/ledger-index-codec.js';

const HEADER: Omit<IndexHeader, 'v' | 'count' | 'tableSize'> = {
  mailboxId: 'box',
  ino: 123456,
  birthtimeMs: 1_796_596_764_425.1852,
  coveredBytes: 90_000,
  headCrc: 0xdeadbeef,
  tailCrc: 0x12345678,
  recordBytes: 80_000,
  recordLines: 7,
  state: { lastSuccessAt: 5, pendingDeletes: ['a'] },
};

function facts(over: Partial<EntryFacts>): EntryFacts {
  return { status: 'stored', size: 4096, firstSeenAt: 1_700_000_000_123, announcedAt: undefined, deletedAt: undefined, expiresAt: undefined, ...over };
}

const ROWS: IndexRow[] = [
  { uidl: '000000016b15bf99', facts: facts({}), lineOffset: 52, lineLength: 1000 },
  { uidl: 'u-announced', facts: facts({ status: 'announced', announcedAt: 1_700_000_001_000 }), lineOffset: 1053, lineLength: 990 },
  { uidl: 'u-deleted', facts: facts({ status: 'announced', announcedAt: 1, deletedAt: 2, expiresAt: 1_800_000_000 }), lineOffset: 2044, lineLength: 980 },
  { uidl: 'u-skipped', facts: facts({ status: 'skipped', size: 50_000_000 }), lineOffset: 3025, lineLength: 700 },
  { uidl: 'u-imported', facts: facts({ status: 'imported', size: 0 }), lineOffset: 3726, lineLength: 120 },
  { uidl: 'ünïcödé-ид', facts: facts({ status: 'announced', announcedAt: 3 }), lineOffset: 3847, lineLength: 500 },
];

describe('ledger index codec', () => {
  it('decodes what it encodes: header, UIDLs (ASCII or not), every column, NaN as none', () => {
    for (const rows of [ROWS, ROWS.slice(0, 5), []]) {
      const decoded = decodeIndex(encodeIndex(HEADER, rows));
      if ('problem' in decoded) throw new Error(decoded.problem);
      expect(decoded.header).toEqual({ v: 3, ...HEADER, count: rows.length, tableSize: 16 });
      expect(decoded.entries.count).toBe(rows.length);
      rows.forEach((row, slot) => {
        expect(decoded.entries.slotOf(row.uidl)).toBe(slot);
        expect({ ...decoded.entries.facts(slot) }).toEqual(row.facts);
        expect([decoded.entries.lineOffset[slot], decoded.entries.lineLength[slot]]).toEqual([row.lineOffset, row.lineLength]);
      });
    }
  });

  it('counts the entries past their expiry from the column, or from the object an entry was read into', () => {
    const decoded = decodeIndex(encodeIndex(HEADER, ROWS));
    if ('problem' in decoded) throw new Error(decoded.problem);
    // u-deleted expires at 1,800,000,000 s.
    expect(decoded.entries.countExpired(1_800_000_000_000 - 1)).toBe(0);
    expect(decoded.entries.countExpired(1_800_000_000_000)).toBe(1);
    decoded.entries.objects.set(2, { mailboxId: 'box', uidl: 'u-deleted', status: 'announced', size: 1, firstSeenAt: 1, expiresAt: 1_900_000_000 });
    decoded.entries.objects.set(3, { mailboxId: 'box', uidl: 'u-skipped', status: 'skipped', size: 1, firstSeenAt: 1, expiresAt: 1_700_000_000 });
    expect(decoded.entries.countExpired(1_800_000_000_000)).toBe(1);
    expect(decoded.entries.countExpired(1_900_000_000_000)).toBe(2);
    expect(decoded.entries.countExpired(1_600_000_000_000)).toBe(0);
  });

  it('refuses every torn prefix and every damaged byte (the checksum), never throwing', () => {
    const data = encodeIndex(HEADER, ROWS);
    for (let n = 0; n < data.length; n++) expect('problem' in decodeIndex(data.subarray(0, n)), `prefix ${n}`).toBe(true);
    for (let i = 0; i < data.length; i++) {
      const damaged = Buffer.from(data);
      damaged[i]! ^= 0x20;
      expect('problem' in decodeIndex(damaged), `byte ${i}`).toBe(true);
    }
    expect('problem' in decodeIndex(Buffer.concat([data, Buffer.from([0])]))).toBe(true);
  });

  it('refuses an index of another format version, or whose header lies about its entries, even with a valid checksum', () => {
    const other = encodeIndex(HEADER, ROWS);
    other.write('PDLIDX01', 0, 'latin1');
    expect(decodeIndex(reseal(other))).toEqual({ problem: 'not a ledger index of this version' });
    for (const older of ['PDLIDX02']) {
      other.write(older, 0, 'latin1');
      expect(decodeIndex(reseal(other))).toEqual({ problem: 'not a ledger index of this version' });
    }
    const text = encodeIndex(HEADER, ROWS).toString('latin1').replace('"count":6', '"count":7');
    expect(decodeIndex(reseal(Buffer.from(text, 'latin1')))).toMatchObject({ problem: expect.stringMatching(/damaged/) });
    expect(() => encodeIndex(HEADER, [ROWS[1]!, { ...ROWS[2]!, uidl: ROWS[1]!.uidl }])).toThrow(RangeError);
  });

  it('refuses a table a lookup could not end in; one out of place otherwise only misses, never finds another UIDL', () => {
    const data = encodeIndex(HEADER, ROWS);
    const headerBytes = data.readUInt32LE(8);
    const startsAt = (((12 + headerBytes + 7) & ~7) + 7 * 8 * ROWS.length + ROWS.length + 3) & ~3;
    const bucketsAt = startsAt + 4 * (ROWS.length + 1);
    const tableSize = 16;
    const refused: Array<[string, (d: Buffer) => void, RegExp]> = [
      ['offsets not ending at the UIDL bytes', (d) => d.writeUInt32LE(9999, startsAt + 4 * ROWS.length), /UIDL bytes/],
      ['no empty bucket', (d) => { for (let b = 0; b < tableSize; b++) if (d.readUInt32LE(bucketsAt + 4 * b) === 0) d.writeUInt32LE(1, bucketsAt + 4 * b); }, /hash table/],
    ];
    for (const [what, damage, problem] of refused) {
      const damaged = Buffer.from(data);
      damage(damaged);
      expect(decodeIndex(reseal(damaged)), what).toMatchObject({ problem: expect.stringMatching(problem) });
    }
    // Buckets naming slots that do not exist or the wrong slot, and an offset out of order:
    // every lookup ends, and finds a UIDL only at its own slot.
    const scrambled = Buffer.from(data);
    for (let b = 0; b < tableSize; b++) {
      const held = scrambled.readUInt32LE(bucketsAt + 4 * b);
      if (held !== 0) scrambled.writeUInt32LE(held === 1 ? 99 : held === 2 ? 3 : held === 3 ? 2 : held, bucketsAt + 4 * b);
    }
    scrambled.writeUInt32LE(9999, startsAt + 4 * 4);
    const decoded = decodeIndex(reseal(scrambled));
    if ('problem' in decoded) throw new Error(decoded.problem);
    for (const uidl of [...ROWS.map((r) => r.uidl), 'nope', '']) {
      const slot = decoded.entries.slotOf(uidl);
      if (slot !== undefined) expect(ROWS[slot]!.uidl).toBe(uidl);
    }
    expect(decoded.entries.slotOf(ROWS[0]!.uidl)).toBeUndefined();
    // The same bytes at an odd offset (not 8-byte aligned) decode the same.
    const odd = Buffer.alloc(data.length + 1);
    data.copy(odd, 1);
    const unaligned = decodeIndex(odd.subarray(1));
    if ('problem' in unaligned) throw new Error(unaligned.problem);
    ROWS.forEach((row, slot) => expect(unaligned.entries.slotOf(row.uidl)).toBe(slot));
  });
});

describe('UidlTable: the index\'s UIDLs looked up without a string each', () => {
  const build = (uidls: string[]): UidlTable => {
    const bytes = uidls.map((u) => Buffer.from(u, 'utf8'));
    const starts = new Uint32Array(uidls.length + 1);
    bytes.forEach((b, i) => (starts[i + 1] = starts[i]! + b.length));
    return UidlTable.build(Buffer.concat(bytes), starts);
  };

  it('finds each of many UIDLs at its slot, and nothing else (prefixes, longer ids, other cases, non-ASCII)', () => {
    const uidls = Array.from({ length: 5000 }, (_, i) => i.toString(16).padStart(8, '0') + 'Ab');
    for (const table of [build(uidls), build([...uidls, 'ü'])]) {
      uidls.forEach((u, slot) => expect(table.slotOf(u)).toBe(slot));
      for (const absent of ['', '00000000A', '00000000Ab0', '00000000AB', '0000000ü', 'x'.repeat(70)]) expect(table.slotOf(absent), absent).toBeUndefined();
      expect(table.uidlAt(4999)).toBe(uidls[4999]);
    }
    expect(build([...uidls, 'ü']).slotOf('ü')).toBe(5000);
  });

  it('finds a UIDL by its bytes anywhere in a buffer, as by its string', () => {
    const uidls = ['a', 'bc', 'ünï', '0000000A6b15e41a', ''];
    const table = build(uidls);
    const listing = Buffer.from(`1 a\r\n2 bc\r\n3 ünï\r\n4 0000000A6b15e41a\r\n5 0000000a6b15e41a\r\n`, 'utf8');
    const found: Array<number | undefined> = [];
    for (let from = 0; from < listing.length; ) {
      const lf = listing.indexOf(0x0a, from);
      found.push(table.slotOfBytes(listing, listing.indexOf(0x20, from) + 1, lf - 1));
      from = lf + 1;
    }
    expect(found).toEqual([0, 1, 2, 3, undefined]);
    expect(table.slotOfBytes(Buffer.alloc(0))).toBe(4);
  });

  it('never takes a string for the UIDL whose UTF-8 bytes its characters spell one per byte', () => {
    // 'é' is stored as the bytes C3 A9; the string 'Ã©' has the characters C3 A9 (and other UTF-8 bytes).
    const table = build(['é', 'x', '\u00c3']);
    expect(table.slotOf('é')).toBe(0);
    expect(table.slotOf('Ã©')).toBeUndefined();
    expect(table.slotOf('\u00c3')).toBe(2);
    expect(build(['Ã©']).slotOf('é')).toBeUndefined();
    expect(build(['Ã©']).slotOf('Ã©')).toBe(0);
    // Every probe passes 'é''s slot (a table with all buckets but one on it): still no false hit.
    const buckets = new Uint32Array(16).fill(1);
    buckets[7] = 0;
    const crowded = new UidlTable(Buffer.from('é', 'utf8'), Uint32Array.from([0, 2]), buckets);
    expect(crowded.slotOf('Ã©')).toBeUndefined();
    expect(crowded.slotOf('é')).toBe(0);
  });

  it('refuses a UIDL twice', () => {
    expect(() => build(['a', 'b', 'a'])).toThrow(RangeError);
    expect(() => build(['ü', 'ü'])).toThrow(RangeError);
  });
});

describe('indexProblem: whether an index describes the log being loaded', () => {
  const header: IndexHeader = { v: 3, ...HEADER, count: 6, tableSize: 16 };
  const log = { mailboxId: 'box', ino: 123456, birthtimeMs: HEADER.birthtimeMs, bytes: 90_000 };
  const windows = { headCrc: 0xdeadbeef, tailCrc: 0x12345678 };

  it('accepts the log it was built from, also grown since (the tail is replayed)', () => {
    expect(indexProblem(header, log)).toBeUndefined();
    expect(indexProblem(header, log, windows)).toBeUndefined();
    expect(indexProblem(header, { ...log, bytes: 95_000 }, windows)).toBeUndefined();
  });

  it('ignores it for another mailbox, another file (inode or birth time), a shorter log, changed ends, or an empty prefix', () => {
    expect(indexProblem(header, { ...log, mailboxId: 'other' })).toMatch(/mailbox "box"/);
    expect(indexProblem(header, { ...log, ino: 99 })).toMatch(/another file/);
    expect(indexProblem(header, { ...log, birthtimeMs: HEADER.birthtimeMs + 0.001 })).toMatch(/another file/);
    expect(indexProblem(header, { ...log, bytes: 89_999 })).toMatch(/covers 90000 bytes and the log has 89999/);
    expect(indexProblem(header, log, { ...windows, headCrc: 0xdeadbeee })).toMatch(/changed/);
    expect(indexProblem(header, log, { ...windows, tailCrc: 0x12345679 })).toMatch(/changed/);
    expect(indexProblem({ ...header, coveredBytes: 0 }, log)).toMatch(/covers 0 bytes/);
  });

  it('checks the first and last CHECK_WINDOW_BYTES of the covered prefix, the whole of a shorter one', () => {
    expect(checkWindows(90_000)).toEqual({ head: [0, CHECK_WINDOW_BYTES], tail: [90_000 - CHECK_WINDOW_BYTES, 90_000] });
    expect(checkWindows(21_900_217)).toEqual({ head: [0, CHECK_WINDOW_BYTES], tail: [21_900_217 - CHECK_WINDOW_BYTES, 21_900_217] });
    expect(checkWindows(1000)).toEqual({ head: [0, 1000], tail: [0, 1000] });
  });
});

/** The same bytes with their checksum recomputed (a well-formed index that says something else). */
function reseal(data: Buffer): Buffer {
  const out = Buffer.from(data);
  const end = out.length - 4;
  out.writeUInt32LE(crc32Of(out.subarray(0, end)), end);
  return out;
}
