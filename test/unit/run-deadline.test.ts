import { describe, expect, it } from 'vitest';
import { runDeadlines } from '../../lambdas/run-deadline.js';

const base = { now: 1_000_000, remainingMs: 900_000, marginMs: 60_000, batchRunCapMs: 120_000 };

describe('a drainer run deadline', () => {
  it('alone in its invocation, a run may take the Lambda time up to the margin', () => {
    expect(runDeadlines({ ...base, groupsInBatch: 1 })).toEqual({ deadline: 1_000_000 + 840_000, hardDeadline: 1_000_000 + 890_000 });
  });

  it('sharing its invocation, a run stops taking messages after the batch cap', () => {
    expect(runDeadlines({ ...base, groupsInBatch: 2 })).toEqual({ deadline: 1_000_000 + 120_000, hardDeadline: 1_000_000 + 890_000 });
  });

  it('the Lambda deadline wins when it comes before the cap', () => {
    expect(runDeadlines({ ...base, groupsInBatch: 10, remainingMs: 150_000 }).deadline).toBe(1_000_000 + 90_000);
  });

  it('a small margin keeps its half before the timeout for the session', () => {
    expect(runDeadlines({ ...base, groupsInBatch: 1, marginMs: 4_000 }).hardDeadline).toBe(1_000_000 + 898_000);
  });
});
