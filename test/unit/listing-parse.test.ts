// parseListListing / parseUidlListing read the usual lines from the bytes; every listing must
// give what splitting it and parsing each line with parseListLine / parseUidlLine gives
// (entries, or the same error).
import { describe, expect, it } from 'vitest';
import { checkListingNumbers, parseListLine, parseListListing, parseUidlLine, parseUidlListing, splitListing } from '../../lib/pop3/response.js';
import { identifyListing, leaveSharedUidlsAlone, strictlyIncreasing } from '../../lib/drain/listing.js';

const MAX_UID = 70;

function outcome(f: () => unknown): unknown {
  try {
    return { ok: f() };
  } catch (error) {
    return { error: (error as Error).message, name: (error as Error).name };
  }
}

const slow = {
  list: (data: Buffer) => {
    const entries = splitListing(data).map(parseListLine);
    checkListingNumbers(entries, 'LIST');
    return entries;
  },
  uidl: (data: Buffer) => {
    const entries = splitListing(data).map((l) => parseUidlLine(l, MAX_UID));
    checkListingNumbers(entries, 'UIDL');
    return entries;
  },
};

const LIST_LINES = ['1 100', '9999999999 9999999999', '3 0', '1 2 \n', '2 5', ' 3 7', '4 8 ', '5\t9', '6 10 extra', '7  11', '8', '', 'x 1', '9 -1', '10 12345678901', '12345678901 1', '0012 0034', '11 2\r', '2 5'];
const UIDL_LINES = ['1 abc', '2 0000000a5b', ' 3 x', '4 y ', '5\tz', '6 a b', '7 ' + 'u'.repeat(MAX_UID), '8 ' + 'u'.repeat(MAX_UID + 1), '9 caf\xe9', '10', '', '11 ~!', '12345678901 q', '13 \x7f', '2 dup', '14 cr\r', '15 a\rb'];

describe('listing parse', () => {
  it('gives what the line parsers give, for every pair of lines and line ending', () => {
    for (const [lines, fast, reference] of [
      [LIST_LINES, parseListListing, slow.list],
      [UIDL_LINES, (d: Buffer) => parseUidlListing(d, MAX_UID), slow.uidl],
    ] as const) {
      for (const a of lines) {
        for (const b of lines) {
          for (const eol of ['\r\n', '\n']) {
            for (const last of [eol, '']) {
              const data = Buffer.from(`${a}${eol}${b}${last}`, 'latin1');
              expect(outcome(() => fast(data)), JSON.stringify(data.toString('latin1'))).toEqual(outcome(() => reference(data)));
            }
          }
        }
      }
    }
  });

  it('reads a 1..n listing and tells numbers out of order or repeated', () => {
    const data = Buffer.from(Array.from({ length: 500 }, (_, i) => `${i + 1} ${1000 + i}\r\n`).join(''));
    expect(parseListListing(data)).toEqual(slow.list(data));
    expect(parseListListing(data)[499]).toEqual({ number: 500, size: 1499 });
    expect(() => parseListListing(Buffer.from('1 5\r\n1 6\r\n'))).toThrow(/listed message number 1 twice/);
    expect(parseListListing(Buffer.from('2 5\r\n1 6\r\n'))).toEqual([{ number: 2, size: 5 }, { number: 1, size: 6 }]);
    expect(parseListListing(Buffer.alloc(0))).toEqual([]);
  });

  it('pairs LIST with UIDL in order or not, and leaves shared UIDLs alone either way', () => {
    const list = [{ number: 1, size: 10 }, { number: 2, size: 20 }, { number: 3, size: 30 }];
    const inOrder = identifyListing(list, [{ number: 1, uid: 'a' }, { number: 2, uid: 'b' }, { number: 3, uid: 'c' }]);
    const shuffled = identifyListing(list, [{ number: 3, uid: 'c' }, { number: 1, uid: 'a' }, { number: 2, uid: 'b' }]);
    expect(inOrder).toEqual(shuffled);
    expect(inOrder.messages.map((m) => m.uidl)).toEqual(['a', 'b', 'c']);
    const missing = identifyListing(list, [{ number: 1, uid: 'a' }, { number: 3, uid: 'c' }]);
    expect(missing.leftAlone.map((l) => l.number)).toEqual([2]);
    expect(leaveSharedUidlsAlone(inOrder.messages)).toEqual({ messages: inOrder.messages, leftAlone: [] });
    const shared = leaveSharedUidlsAlone([...inOrder.messages, { number: 4, size: 1, uidl: 'b' }]);
    expect(shared.messages.map((m) => m.uidl)).toEqual(['a', 'c']);
    expect(shared.leftAlone.map((l) => l.number)).toEqual([2, 4]);
  });

  it('tells shared UIDLs the same whether the UIDLs grow (no set) or not', () => {
    const m = (uidls: string[]) => uidls.map((uidl, i) => ({ number: i + 1, size: 10, uidl }));
    expect(strictlyIncreasing(m(['000000016b1603ad', '000000026b1603ad', '0000000a6b1603ad']))).toBe(true);
    expect(strictlyIncreasing(m([]))).toBe(true);
    expect(strictlyIncreasing(m(['b', 'a']))).toBe(false);
    expect(strictlyIncreasing(m(['a', 'a']))).toBe(false);
    for (const uidls of [['a', 'b', 'c'], ['a', 'b', 'b', 'c'], ['c', 'a', 'b'], ['b', 'a', 'b'], ['a', 'c', 'a', 'd'], ['z']]) {
      const got = leaveSharedUidlsAlone(m(uidls));
      const shared = uidls.filter((u) => uidls.indexOf(u) !== uidls.lastIndexOf(u));
      expect(got.messages.map((x) => x.uidl), uidls.join()).toEqual(uidls.filter((u) => !shared.includes(u)));
      expect(got.leftAlone.map((l) => l.uidl), uidls.join()).toEqual(uidls.filter((u) => shared.includes(u)));
    }
  });
});
