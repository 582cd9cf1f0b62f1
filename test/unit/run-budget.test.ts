// The run's budget decisions of plan.ts that bound the wire: the hard bound on the session.
import { describe, expect, it } from 'vitest';
import { hardDeadlineOf, QUIT_GRACE_MS } from '../../lib/drain/plan.js';

describe('hardDeadlineOf: the hard bound on the whole session', () => {
  it("is the caller's when given, else the deadline plus the QUIT grace, else none", () => {
    expect(hardDeadlineOf({ deadline: 10_000, hardDeadline: 15_000 })).toBe(15_000);
    expect(hardDeadlineOf({ deadline: 10_000 })).toBe(10_000 + QUIT_GRACE_MS);
    expect(QUIT_GRACE_MS).toBeLessThanOrEqual(3_000);
    expect(hardDeadlineOf({})).toBeUndefined();
    expect(hardDeadlineOf({ hardDeadline: 7 })).toBe(7);
  });
});
