import { describe, expect, it } from 'vitest';
import { decideRequestStart } from '../../lambdas/request-start.js';

const NOW = Date.UTC(2026, 0, 5, 10, 0, 0);
const facts = (over: Partial<Parameters<typeof decideRequestStart>[0]> = {}) => ({
  requestToken: 'tick-1' as string | undefined,
  marker: undefined as { token: string; expiresAt: number } | undefined,
  now: NOW,
  receiveCount: 1,
  maxReceiveCount: 5,
  ...over,
});

describe('decideRequestStart', () => {
  it('runs a request whose marker is its own, or gone (expired and removed, or released before a DLQ move)', () => {
    expect(decideRequestStart(facts({ marker: { token: 'tick-1', expiresAt: NOW + 1 } }))).toEqual({ kind: 'run', releaseFirst: false });
    expect(decideRequestStart(facts())).toEqual({ kind: 'run', releaseFirst: false });
  });
  it('ends a request as stale when another token holds an unexpired marker (a newer request was enqueued)', () => {
    expect(decideRequestStart(facts({ marker: { token: 'tick-2', expiresAt: NOW + 1 } }))).toEqual({ kind: 'stale', holder: 'tick-2' });
    // Also on its last receive: the newer marker is not released.
    expect(decideRequestStart(facts({ marker: { token: 'tick-2', expiresAt: NOW + 1 }, receiveCount: 5 }))).toEqual({ kind: 'stale', holder: 'tick-2' });
  });
  it("runs when the other token's marker has expired (nothing newer is outstanding)", () => {
    expect(decideRequestStart(facts({ marker: { token: 'tick-2', expiresAt: NOW } }))).toEqual({ kind: 'run', releaseFirst: false });
  });
  it('runs a request sent without a marker whatever the mailbox holds, and never releases for it', () => {
    expect(decideRequestStart(facts({ requestToken: undefined, marker: { token: 'tick-2', expiresAt: NOW + 1 }, receiveCount: 9 }))).toEqual({ kind: 'run', releaseFirst: false });
  });
  it('releases the marker first on the last allowed receive, not before', () => {
    expect(decideRequestStart(facts({ receiveCount: 4 }))).toEqual({ kind: 'run', releaseFirst: false });
    expect(decideRequestStart(facts({ receiveCount: 5 }))).toEqual({ kind: 'run', releaseFirst: true });
    expect(decideRequestStart(facts({ receiveCount: 6, marker: { token: 'tick-1', expiresAt: NOW + 1 } }))).toEqual({ kind: 'run', releaseFirst: true });
    expect(decideRequestStart(facts({ receiveCount: 1, maxReceiveCount: 1 }))).toEqual({ kind: 'run', releaseFirst: true });
  });
});
