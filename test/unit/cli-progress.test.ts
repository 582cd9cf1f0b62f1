import { describe, expect, it } from 'vitest';
import { etaSeconds, formatBytes } from '../../cli/progress.js';

describe('the ETA', () => {
  it('is shown only after 3 s and 5 % of the bytes, then at the rate so far', () => {
    expect(etaSeconds(2.9, 500, 1000)).toBeUndefined();
    expect(etaSeconds(10, 49, 1000)).toBeUndefined();
    expect(etaSeconds(10, 0, 0)).toBeUndefined();
    expect(etaSeconds(10, 100, 1000)).toBeCloseTo(90);
    expect(etaSeconds(4, 1000, 1000)).toBe(0);
  });
});

describe('formatBytes', () => {
  it('shows a rate under 1 kB/s as whole bytes, not a float with 13 decimals', () => {
    expect(formatBytes(914.8936170212766)).toBe('915 B');
    expect(formatBytes(43)).toBe('43 B');
    expect(formatBytes(1_234)).toBe('1.2 kB');
    expect(formatBytes(25_000_000)).toBe('25 MB');
  });
});
