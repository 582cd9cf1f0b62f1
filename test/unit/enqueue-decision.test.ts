import { describe, expect, it } from 'vitest';
import { decideEnqueue, isUidlResetBlocked } from '../../lambdas/enqueue-decision.js';
import type { MailboxState } from '../../lib/drain/ports.js';

const NOW = Date.UTC(2026, 0, 5, 10, 0, 0);
const state = (fields: Partial<MailboxState> = {}): MailboxState => ({ mailboxId: 'm', ...fields });
const decide = (fields: Partial<MailboxState> | undefined, leaseHeld = false, due = true) =>
  decideEnqueue({ due, state: fields === undefined ? undefined : state(fields), leaseHeld, now: NOW, token: 'tick-now' });

describe('decideEnqueue', () => {
  it('enqueues a due mailbox with no state, or with nothing holding it', () => {
    expect(decide(undefined)).toEqual({ enqueue: true });
    expect(decide({ lastSuccessAt: NOW - 1 })).toEqual({ enqueue: true });
  });
  it('skips a mailbox that is not due', () => {
    expect(decide(undefined, false, false)).toEqual({ enqueue: false, reason: 'not-due' });
  });
  it('skips while a request is waiting or running, until the marker expires', () => {
    expect(decide({ requestMarker: { token: 't', expiresAt: NOW + 1 } })).toEqual({ enqueue: false, reason: 'queued' });
    expect(decide({ requestMarker: { token: 't', expiresAt: NOW } })).toEqual({ enqueue: true });
  });
  it("enqueues again on a repeated tick whose own marker is there (SQS deduplicates the request)", () => {
    expect(decide({ requestMarker: { token: 'tick-now', expiresAt: NOW + 1 } })).toEqual({ enqueue: true });
  });
  it('skips while the lease is held', () => {
    expect(decide({}, true)).toEqual({ enqueue: false, reason: 'running' });
  });
  it('skips until a failure backoff runs out', () => {
    expect(decide({ nextAttemptAt: NOW + 60_000, failureStreak: 2 })).toEqual({ enqueue: false, reason: 'backing-off' });
    expect(decide({ nextAttemptAt: NOW, failureStreak: 2 })).toEqual({ enqueue: true });
  });
  it('skips a tripped UIDL-reset guard until an operator accepts, and then ignores a backoff', () => {
    expect(decide({ uidlResetTrippedAt: NOW - 1 })).toEqual({ enqueue: false, reason: 'uidl-reset' });
    expect(decide({ uidlResetTrippedAt: NOW - 1, acceptUidlReset: true, nextAttemptAt: NOW + 60_000 })).toEqual({ enqueue: true });
    expect(isUidlResetBlocked(undefined)).toBe(false);
    expect(isUidlResetBlocked(state({ uidlResetTrippedAt: 1, acceptUidlReset: true }))).toBe(false);
  });
  it('names the UIDL reset before a backoff, a backoff before the lease, the lease before the marker', () => {
    const all = { uidlResetTrippedAt: 1, nextAttemptAt: NOW + 1, requestMarker: { token: 't', expiresAt: NOW + 1 } };
    expect(decide(all, true)).toEqual({ enqueue: false, reason: 'uidl-reset' });
    expect(decide({ ...all, uidlResetTrippedAt: undefined }, true)).toEqual({ enqueue: false, reason: 'backing-off' });
    expect(decide({ requestMarker: all.requestMarker }, true)).toEqual({ enqueue: false, reason: 'running' });
  });
});
