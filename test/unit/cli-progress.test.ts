import { describe, expect, it } from 'vitest';
import { etaSeconds } from '../../cli/progress.js';

describe('the ETA', () => {
  it('is shown only after 3 s and 5 % of the bytes, then at the rate so far', () => {
    expect(etaSeconds(2.9, 500, 1000)).toBeUndefined();
    expect(etaSeconds(10, 49, 1000)).toBeUndefined();
    expect(etaSeconds(10, 0, 0)).toBeUndefined();
    expect(etaSeconds(10, 100, 1000)).toBeCloseTo(90);
    expect(etaSeconds(4, 1000, 1000)).toBe(0);
  });
});
