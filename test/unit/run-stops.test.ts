import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { INTERRUPT_GRACE_MS, RunStops } from '../../lib/drain/run-stops.js';

let calls: string[];
const hooks = {
  abort: (why: string) => calls.push(`abort: ${why}`),
  cutOffIfLate: (reason: string) => calls.push(`cut off if late: ${reason}`),
  warn: () => undefined,
};
const clock = { now: () => Date.now() };

function stops(inputs: { deadline?: number; hardDeadline?: number; signal?: AbortSignal; hardSignal?: AbortSignal }): RunStops {
  return new RunStops({ clock, deadline: inputs.deadline, hardDeadline: inputs.hardDeadline, signal: inputs.signal, hardSignal: inputs.hardSignal }, hooks);
}

beforeEach(() => {
  calls = [];
  vi.useFakeTimers();
});
afterEach(() => vi.useRealTimers());

describe('RunStops', () => {
  it('a first signal closes the session only when it has not ended within the grace', () => {
    const signal = new AbortController();
    const s = stops({ signal: signal.signal });
    s.arm();
    signal.abort();
    vi.advanceTimersByTime(INTERRUPT_GRACE_MS - 1);
    expect(calls).toEqual([]);
    expect(s.clientSignal.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(calls).toEqual(['abort: interrupted: connection closed']);
    expect(s.clientSignal.aborted).toBe(true);
  });

  it('a session that ended within the grace (disarmed) is left alone', () => {
    const signal = new AbortController();
    const s = stops({ signal: signal.signal });
    s.arm();
    signal.abort();
    s.disarm();
    vi.advanceTimersByTime(10 * INTERRUPT_GRACE_MS);
    expect(calls).toEqual([]);
  });

  it('the hard signal closes at once, also when it fired before the run began; once only', () => {
    const hard = new AbortController();
    hard.abort();
    const signal = new AbortController();
    const s = stops({ signal: signal.signal, hardSignal: hard.signal });
    s.arm();
    expect(calls).toEqual(['abort: stopped at once: connection closed']);
    signal.abort();
    vi.advanceTimersByTime(10 * INTERRUPT_GRACE_MS);
    expect(calls).toHaveLength(1);
  });

  it('the deadline asks for a cut-off; the hard deadline closes', () => {
    const now = Date.now();
    const s = stops({ deadline: now + 1000, hardDeadline: now + 3000 });
    s.arm();
    vi.advanceTimersByTime(999);
    expect(calls).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(calls).toEqual(['cut off if late: deadline']);
    vi.advanceTimersByTime(2000);
    expect(calls).toEqual(['cut off if late: deadline', 'abort: the deadline passed: connection closed']);
    expect(s.clientSignal.aborted).toBe(true);
  });
});
