// Which drain runs count as AuthFailures (the alarm that asks a person to fix a login).
import { describe, expect, it } from 'vitest';
import { isAuthFailure, runMetrics, runOutcome } from '../../lambdas/report-metrics.js';
import type { DrainFailure, DrainReport, StopReason } from '../../lib/drain/report.js';

function report(stopReason: StopReason, error?: DrainFailure): DrainReport {
  return { stopReason, ...(error === undefined ? {} : { error }) } as DrainReport;
}

const credentials = (retryable: boolean): DrainFailure => ({
  code: 'CREDENTIALS_FAILED',
  phase: 'credentials',
  message: retryable ? 'token endpoint answered 503' : 'token endpoint refused the refresh token: invalid_grant',
  retryable,
});

describe('isAuthFailure', () => {
  it('counts a refused POP3 login and credentials that cannot be had without a person', () => {
    expect(isAuthFailure(report('auth-failed', { code: 'AUTH_FAILED', phase: 'auth', message: '-ERR', retryable: false }))).toBe(true);
    expect(isAuthFailure(report('credentials-failed', credentials(false)))).toBe(true);
  });

  it('does not count an outage of Secrets Manager or the token endpoint, or runs that ended otherwise', () => {
    expect(isAuthFailure(report('credentials-failed', credentials(true)))).toBe(false);
    for (const stop of ['complete', 'deadline', 'in-use', 'network', 'store-failed'] as StopReason[]) {
      expect(isAuthFailure(report(stop)), stop).toBe(false);
    }
  });
});

function fullReport(overrides: Partial<DrainReport> = {}): DrainReport {
  return {
    mailboxId: 'mbx-7',
    runId: 'run-1',
    stopReason: 'complete',
    retryLater: false,
    fetched: 3,
    fetchedBytes: 4096,
    skipped: 1,
    durationMs: 1200,
    backlogAgeSeconds: 42,
    failures: [],
    ...overrides,
  } as DrainReport;
}

describe('runMetrics', () => {
  it('publishes aggregates with no mailbox dimension; the mailbox id is an EMF property', () => {
    const run = runMetrics(fullReport());
    expect(run.aggregate.every((p) => p.dimensions === undefined)).toBe(true);
    expect(Object.fromEntries(run.aggregate.map((p) => [p.name, p.value]))).toEqual({
      MessagesStored: 3,
      BytesStored: 4096,
      MessagesSkipped: 1,
      RunDurationMs: 1200,
      BacklogAgeSeconds: 42,
      RunFailures: 0,
      AuthFailures: 0,
      BusyMailboxes: 0,
    });
    expect(run.single).toEqual([]);
    expect(run.properties).toEqual({ mailboxId: 'mbx-7', runId: 'run-1', stopReason: 'complete', outcome: 'ok' });
  });

  it('per-mailbox series only when opted in: four, each with the mailbox dimension', () => {
    const run = runMetrics(fullReport(), { perMailbox: true });
    expect(run.single.map((p) => [p.name, p.value, p.dimensions])).toEqual([
      ['MessagesStored', 3, { mailbox: 'mbx-7' }],
      ['BytesStored', 4096, { mailbox: 'mbx-7' }],
      ['RunDurationMs', 1200, { mailbox: 'mbx-7' }],
      ['BacklogAgeSeconds', 42, { mailbox: 'mbx-7' }],
    ]);
  });

  it('counts failures by error code (the run error once), and marks the run failed or busy', () => {
    const auth: DrainFailure = { code: 'AUTH_FAILED', phase: 'auth', message: '-ERR', retryable: false };
    const perMessage: DrainFailure = { code: 'STORE_FAILED', phase: 'store', message: 'S3 503', retryable: true, uidl: 'u1' };
    const run = runMetrics(fullReport({ stopReason: 'auth-failed', error: auth, failures: [perMessage, perMessage] }));
    expect(run.single.map((p) => [p.name, p.value, p.dimensions])).toEqual([
      ['Failures', 2, { errorCode: 'STORE_FAILED' }],
      ['Failures', 1, { errorCode: 'AUTH_FAILED' }],
    ]);
    expect(run.aggregate.find((p) => p.name === 'RunFailures')?.value).toBe(1);
    expect(run.properties).toMatchObject({ outcome: 'failed', errorCode: 'AUTH_FAILED' });
    expect(runOutcome(fullReport({ stopReason: 'in-use', retryLater: true }))).toBe('busy');
    expect(runMetrics(fullReport({ stopReason: 'in-use', retryLater: true })).aggregate.find((p) => p.name === 'BusyMailboxes')?.value).toBe(1);
  });
});
