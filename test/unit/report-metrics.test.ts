// Which drain runs count as AuthFailures (the alarm that asks a person to fix a login).
import { describe, expect, it } from 'vitest';
import { isAuthFailure } from '../../lambdas/report-metrics.js';
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
