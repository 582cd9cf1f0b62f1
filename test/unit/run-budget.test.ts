// The run's budget decisions of plan.ts that bound the wire: what is requested, and the hard
// bound on the session.
import { describe, expect, it } from 'vitest';
import { admitRequest, endOfSessionVerdict, hardDeadlineOf, QUIT_GRACE_MS } from '../../lib/drain/plan.js';

describe('hardDeadlineOf: the hard bound on the whole session', () => {
  it("is the caller's when given, else the deadline plus the QUIT grace, else none", () => {
    expect(hardDeadlineOf({ deadline: 10_000, hardDeadline: 15_000 })).toBe(15_000);
    expect(hardDeadlineOf({ deadline: 10_000 })).toBe(10_000 + QUIT_GRACE_MS);
    expect(QUIT_GRACE_MS).toBeLessThanOrEqual(3_000);
    expect(hardDeadlineOf({})).toBeUndefined();
    expect(hardDeadlineOf({ hardDeadline: 7 })).toBe(7);
  });
});

describe('admitRequest: the budget decides what is requested, before the RETR is sent', () => {
  const limits = { deadline: undefined, maxMessages: Infinity, maxBytes: Infinity };
  const facts = {
    cancelled: false,
    leaseLost: false,
    now: 1_000,
    requested: 0,
    requestedBytes: 0,
    bytesInFlight: 0,
    bytesPerMs: undefined,
    nextSize: 26_000_000,
  };

  it('counts requests against --max-messages', () => {
    expect(admitRequest({ ...facts, requested: 1 }, { ...limits, maxMessages: 2 })).toBeUndefined();
    expect(admitRequest({ ...facts, requested: 2 }, { ...limits, maxMessages: 2 })).toBe('max-messages');
  });

  it('counts listed bytes against --max-bytes, but the first message always goes', () => {
    expect(admitRequest(facts, { ...limits, maxBytes: 10_000 })).toBeUndefined();
    const second = { ...facts, requested: 1, requestedBytes: 4_000 };
    expect(admitRequest({ ...second, nextSize: 6_000 }, { ...limits, maxBytes: 10_000 })).toBeUndefined();
    expect(admitRequest({ ...second, nextSize: 6_001 }, { ...limits, maxBytes: 10_000 })).toBe('max-bytes');
  });

  it('requests nothing after the deadline, nor what could not arrive by it at the measured rate', () => {
    const deadline = { ...limits, deadline: 4_000 };
    expect(admitRequest({ ...facts, now: 4_000 }, deadline)).toBe('deadline');
    // 2 MB/s = 2,000 bytes/ms, 3 s left: 6 MB could arrive, 26 MB could not.
    const measured = { ...facts, requested: 5, bytesPerMs: 2_000 };
    expect(admitRequest(measured, deadline)).toBe('deadline');
    expect(admitRequest({ ...measured, nextSize: 4_000_000, bytesInFlight: 1_000_000 }, deadline)).toBeUndefined();
    expect(admitRequest({ ...measured, nextSize: 4_000_000, bytesInFlight: 3_000_000 }, deadline)).toBe('deadline');
    // Before anything arrived there is no rate to judge by.
    expect(admitRequest(facts, deadline)).toBeUndefined();
  });

  it('stops at once when cancelled or the lease is lost', () => {
    expect(admitRequest({ ...facts, cancelled: true }, limits)).toBe('cancelled');
    expect(admitRequest({ ...facts, leaseLost: true }, limits)).toBe('lease-lost');
  });
});

describe('endOfSessionVerdict: QUIT or close when the run stops with responses in flight', () => {
  it('QUITs when nothing is in flight or it can arrive before the hard deadline; closes otherwise', () => {
    const at = { now: 3_000, hardDeadline: 5_000 };
    expect(endOfSessionVerdict({ ...at, bytesInFlight: 0, bytesPerMs: undefined })).toBe('quit');
    expect(endOfSessionVerdict({ ...at, bytesInFlight: 3_000_000, bytesPerMs: 2_000 })).toBe('quit'); // 1.5 s of 2 s
    expect(endOfSessionVerdict({ ...at, bytesInFlight: 4_000_000, bytesPerMs: 2_000 })).toBe('close'); // 2 s: no time for QUIT
    expect(endOfSessionVerdict({ ...at, bytesInFlight: 1, bytesPerMs: undefined })).toBe('close'); // no rate to judge by
    expect(endOfSessionVerdict({ now: 3_000, hardDeadline: undefined, bytesInFlight: 9e9, bytesPerMs: 1 })).toBe('quit');
  });
});
