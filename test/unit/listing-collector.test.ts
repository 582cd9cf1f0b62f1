/**
 * ListingCollector's line limit, checked a window at a time: the same verdict as looking at
 * every line, for listings cut into chunks anywhere (pop3-client-decisions.test.ts has the
 * error's fields).
 */
import { describe, expect, it } from 'vitest';
import { ListingCollector } from '../../lib/pop3/listing-collector.js';

/** Whether some line (without its LF, across the chunks) is longer than `max`: line by line. */
function tooLong(chunks: readonly Buffer[], max: number): boolean {
  let line = 0;
  for (const chunk of chunks) {
    for (const byte of chunk) {
      if (byte === 0x0a) line = 0;
      else if (++line > max) return true;
    }
  }
  return false;
}

function refused(chunks: readonly Buffer[], max: number): boolean {
  const collector = new ListingCollector({ maxBytes: 1_000_000, maxLineBytes: max }, 'transaction', 'UIDL');
  try {
    for (const chunk of chunks) collector.push(chunk);
  } catch (error) {
    expect((error as { code?: string }).code).toBe('LIMIT_EXCEEDED');
    return true;
  }
  expect(collector.finish()).toEqual(Buffer.concat(chunks));
  return false;
}

describe('ListingCollector line limit', () => {
  it('refuses exactly the listings with a line longer than the limit, however they are cut', () => {
    // A fixed generator (no Math.random): lines of 0..12 bytes (limits 4..15), CRLF or LF, cut at 1..40-byte chunks.
    let seed = 12345;
    const next = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    let refusedCount = 0;
    for (let round = 0; round < 3000; round++) {
      const max = 4 + next(12);
      const lines = Array.from({ length: 1 + next(8) }, () => 'x'.repeat(next(13)) + (next(2) === 0 ? '\r\n' : '\n'));
      const data = Buffer.from(lines.join('') + (next(3) === 0 ? 'y'.repeat(next(15)) : ''), 'latin1');
      const chunks: Buffer[] = [];
      for (let at = 0; at < data.length; ) {
        const size = 1 + next(40);
        chunks.push(data.subarray(at, at + size));
        at += size;
      }
      const expected = tooLong(chunks, max);
      expect(refused(chunks, max), JSON.stringify({ max, chunks: chunks.map((c) => c.toString('latin1')) })).toBe(expected);
      if (expected) refusedCount++;
    }
    // Both verdicts were exercised many times.
    expect(refusedCount).toBeGreaterThan(500);
    expect(refusedCount).toBeLessThan(2500);
  });
});
