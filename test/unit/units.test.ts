/** Sizes and durations as the CLI, the config file and the Lambda take them; absurd values refused. */
import { describe, expect, it } from 'vitest';
import { parseDuration, parseSize } from '../../lib/drain/units.js';

describe('parseSize and parseDuration', () => {
  it('read ordinary values', () => {
    expect(parseSize('25MB')).toBeGreaterThan(20_000_000);
    expect(parseSize(4096)).toBe(4096);
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration(2)).toBe(2000);
  });

  it('refuse values past 2^53 - 1 instead of accepting a number that is not exact (or Infinity)', () => {
    expect(parseSize('99999999999999999999999TB')).toBeUndefined();
    expect(parseSize('99999999999999999999')).toBeUndefined();
    expect(parseSize(1e300)).toBeUndefined();
    expect(parseDuration('99999999999999999999d')).toBeUndefined();
    expect(parseDuration(1e300)).toBeUndefined();
  });
});
