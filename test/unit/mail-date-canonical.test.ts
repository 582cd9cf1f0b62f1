// The usual Date shape is read character by character (mail-date.ts, parseCanonical): it must
// read every text exactly as the regular expression it replaced did, near misses included.
import { describe, expect, it } from 'vitest';
import { parseMailDate } from '../../lib/drain/mail-date.js';
import { prng } from '../../testkit/fixtures/mail-corpus.js';
import { parseMailDate as oracle } from '../support/mail-date-regex-oracle.js';

const SEEDS = [
  'Thu, 26 Nov 2026 12:00:00 +0000',
  'Thu,26 Nov 2026 12:00:00 +0000',
  '26 Nov 2026 12:00:00 +0000',
  '1 Feb 2024 23:59 -0830',
  'Mon, 29 Feb 2024 00:00:60 +1400',
  'mon, 31 APR 2025 10:10:10 +0060',
  'Sun, 1 Jan 0001 00:00:00 +0000',
  'Fri, 31 Dec 9999 23:59:59 -2359',
  'Thu, 26 Xyz 2026 12:00:00 +0000',
];
const ALPHABET = '0123456789 ,:+-ADFJMNOSadefjmnortuvbgly()\t';

describe('the usual Date shape without a regular expression', () => {
  it('reads the seeds as the regex form did', () => {
    for (const text of SEEDS) expect(parseMailDate(text), text).toBe(oracle(text));
    expect(parseMailDate(SEEDS[0]!)).toBe('2026-11-26T12:00:00.000Z');
  });

  it('reads 50,000 near misses (characters replaced, inserted, removed) as the regex form did', () => {
    const random = prng(15);
    const pick = (n: number): number => Math.floor(random() * n);
    let dates = 0;
    for (let k = 0; k < 50_000; k++) {
      let text = SEEDS[pick(SEEDS.length)]!;
      for (let edits = 1 + pick(3); edits > 0; edits--) {
        const at = pick(text.length + 1);
        const c = ALPHABET[pick(ALPHABET.length)]!;
        const kind = pick(3);
        text = kind === 0 ? text.slice(0, at) + c + text.slice(at + 1) : kind === 1 ? text.slice(0, at) + c + text.slice(at) : text.slice(0, at) + text.slice(at + 1);
      }
      const expected = oracle(text);
      if (expected !== undefined) dates++;
      expect(parseMailDate(text), JSON.stringify(text)).toBe(expected);
    }
    // Both kinds are exercised: near misses that are still dates, and ones that are not.
    expect(dates).toBeGreaterThan(5_000);
    expect(dates).toBeLessThan(45_000);
  });
});
