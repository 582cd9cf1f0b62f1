import { describe, expect, it } from 'vitest';
import { failureBackoffMs, redriveDelaySeconds } from '../../lambdas/failure-backoff.js';

const MIN = 60_000;

describe('failureBackoffMs', () => {
  it('doubles from 15 minutes to a 6-hour cap, and stays there', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 50, 10_000].map((n) => failureBackoffMs(n) / MIN)).toEqual([15, 30, 60, 120, 240, 360, 360, 360, 360]);
  });
  it('treats a streak below 1 (or a fraction) as the first failure', () => {
    expect(failureBackoffMs(0)).toBe(15 * MIN);
    expect(failureBackoffMs(-3)).toBe(15 * MIN);
    expect(failureBackoffMs(2.9)).toBe(30 * MIN);
  });
  it('keeps a failing mailbox to well under 2 logins an hour over a day', () => {
    let t = 0;
    let logins = 0;
    for (let streak = 1; t < 24 * 60 * MIN; streak++) {
      logins += 1;
      t += failureBackoffMs(streak);
    }
    expect(logins / 24).toBeLessThan(0.5);
  });
});

describe('redriveDelaySeconds', () => {
  it('is 1, 2, 4, 8 minutes by receive count, at most 15', () => {
    expect([0, 1, 2, 3, 4, 5, 7, 1_000].map(redriveDelaySeconds)).toEqual([60, 60, 120, 240, 480, 900, 900, 900]);
  });
});
