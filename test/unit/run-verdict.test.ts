import { describe, expect, it } from 'vitest';
import { decideRunVerdict, type RunFacts } from '../../lambdas/run-verdict.js';
import type { DrainFailure, FailureCode, StopReason } from '../../lib/drain/report.js';

const facts = (stopReason: StopReason, more: Partial<RunFacts['report']> = {}, depth = 0, maxDepth = 5): RunFacts => ({
  report: { stopReason, moreRemaining: false, retryLater: false, ...more },
  depth,
  maxDepth,
});
const failure = (code: FailureCode, retryable: boolean): { error: DrainFailure } => ({ error: { code, phase: 'fetch', message: code, retryable } });

describe('decideRunVerdict', () => {
  it('continues a normal stop with more remaining one level deeper', () => {
    expect(decideRunVerdict(facts('deadline', { moreRemaining: true }))).toEqual({ kind: 'continue', depth: 1 });
    expect(decideRunVerdict(facts('max-messages', { moreRemaining: true }, 4))).toEqual({ kind: 'continue', depth: 5 });
  });
  it('ends the chain at the depth cap', () => {
    expect(decideRunVerdict(facts('deadline', { moreRemaining: true }, 5))).toEqual({ kind: 'chain-capped', depth: 5 });
    expect(decideRunVerdict(facts('deadline', { moreRemaining: true }, 0, 0))).toEqual({ kind: 'chain-capped', depth: 0 });
  });
  it('is done after a complete run, a cancelled one, or a dry run', () => {
    expect(decideRunVerdict(facts('complete'))).toEqual({ kind: 'done' });
    expect(decideRunVerdict(facts('cancelled', { moreRemaining: true }))).toEqual({ kind: 'done' });
    expect(decideRunVerdict(facts('dry-run', { moreRemaining: true }))).toEqual({ kind: 'done' });
  });
  it('retries busy, in-use, login-delay and a lost lease later, never as failures', () => {
    for (const stop of ['busy', 'in-use', 'login-delay'] as const) {
      expect(decideRunVerdict(facts(stop, { retryLater: true }))).toEqual({ kind: 'retry-later' });
    }
    expect(decideRunVerdict(facts('lease-lost', failure('LEASE_HELD', false)))).toEqual({ kind: 'retry-later' });
  });
  it('honours a login delay the server asked for: retry later, not before it has passed', () => {
    expect(decideRunVerdict(facts('login-delay', { retryLater: true, retryAfterSeconds: 900 }))).toEqual({ kind: 'retry-later', afterSeconds: 900 });
    expect(decideRunVerdict(facts('login-delay', { retryLater: true, retryAfterSeconds: 0 }))).toEqual({ kind: 'retry-later' });
  });
  it('leaves a suspected UIDL reset to an operator', () => {
    expect(decideRunVerdict(facts('uidl-reset-suspected', { moreRemaining: true }))).toEqual({ kind: 'needs-operator' });
  });
  it('backs off a refused login, TLS and configuration failures even when flagged retryable', () => {
    expect(decideRunVerdict(facts('auth-failed', failure('AUTH_FAILED', false)))).toEqual({ kind: 'back-off' });
    expect(decideRunVerdict(facts('tls-failed', failure('TLS_FAILED', true)))).toEqual({ kind: 'back-off' });
    expect(decideRunVerdict(facts('config-invalid', failure('CONFIG_INVALID', true)))).toEqual({ kind: 'back-off' });
  });
  it('follows the error flag otherwise: retryable is redriven, the rest backs off', () => {
    expect(decideRunVerdict(facts('credentials-failed', failure('CREDENTIALS_FAILED', false)))).toEqual({ kind: 'back-off' });
    expect(decideRunVerdict(facts('credentials-failed', failure('CREDENTIALS_FAILED', true)))).toEqual({ kind: 'redrive' });
    expect(decideRunVerdict(facts('store-failed', failure('STORE_FAILED', true)))).toEqual({ kind: 'redrive' });
    expect(decideRunVerdict(facts('connection-failed', failure('CONNECT_TIMEOUT', true)))).toEqual({ kind: 'redrive' });
    expect(decideRunVerdict(facts('error', failure('INTERNAL_ERROR', false)))).toEqual({ kind: 'back-off' });
    expect(decideRunVerdict(facts('error'))).toEqual({ kind: 'back-off' });
  });
});
