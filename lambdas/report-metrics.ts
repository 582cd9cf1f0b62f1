/**
 * Metrics (CloudWatch EMF through Powertools) for one drain run. Aggregates carry only the
 * `service` dimension (alarms use them: nothing grows per mailbox); a few carry `mailbox`
 * (dashboards) and failures carry `errorCode`.
 */
import { MetricUnit, type Metrics } from '@aws-lambda-powertools/metrics';
import { NORMAL_STOPS, type DrainReport } from '../lib/drain/report.js';

/**
 * A login that a person must fix (what the AuthFailures alarm is for): the POP3 server refused
 * it, or the credentials could not be had for a reason that will not clear by itself — the
 * token endpoint refused the refresh token (expired, revoked: invalid_grant), the secret is
 * malformed or not readable. A Secrets Manager or token endpoint outage (retryable) is not one.
 */
export function isAuthFailure(report: DrainReport): boolean {
  if (report.stopReason === 'auth-failed') return true;
  return report.stopReason === 'credentials-failed' && report.error?.retryable === false;
}

export function recordReportMetrics(metrics: Metrics, report: DrainReport): void {
  const failed = !NORMAL_STOPS.has(report.stopReason) && !report.retryLater;
  metrics.addMetric('MessagesStored', MetricUnit.Count, report.fetched);
  metrics.addMetric('BytesStored', MetricUnit.Bytes, report.fetchedBytes);
  metrics.addMetric('MessagesSkipped', MetricUnit.Count, report.skipped);
  metrics.addMetric('RunDurationMs', MetricUnit.Milliseconds, report.durationMs);
  metrics.addMetric('BacklogAgeSeconds', MetricUnit.Seconds, report.backlogAgeSeconds);
  metrics.addMetric('RunFailures', MetricUnit.Count, failed ? 1 : 0);
  metrics.addMetric('AuthFailures', MetricUnit.Count, isAuthFailure(report) ? 1 : 0);
  metrics.addMetric('BusyMailboxes', MetricUnit.Count, report.retryLater ? 1 : 0);

  // A single metric is published by each addMetric, which also clears its dimensions: one
  // single metric per data point, or every point after the first loses the `mailbox`
  // dimension and lands in the aggregate (service-only) series a second time.
  const perMailbox = (name: string, unit: Parameters<Metrics['addMetric']>[1], value: number): void => {
    const m = metrics.singleMetric();
    m.addDimension('mailbox', report.mailboxId);
    m.addMetric(name, unit, value);
  };
  perMailbox('MessagesStored', MetricUnit.Count, report.fetched);
  perMailbox('BytesStored', MetricUnit.Bytes, report.fetchedBytes);
  perMailbox('RunDurationMs', MetricUnit.Milliseconds, report.durationMs);
  perMailbox('BacklogAgeSeconds', MetricUnit.Seconds, report.backlogAgeSeconds);

  const byCode = new Map<string, number>();
  for (const f of report.failures) byCode.set(f.code, (byCode.get(f.code) ?? 0) + 1);
  if (report.error !== undefined && !report.failures.includes(report.error)) {
    byCode.set(report.error.code, (byCode.get(report.error.code) ?? 0) + 1);
  }
  for (const [code, count] of byCode) {
    const m = metrics.singleMetric();
    m.addDimension('errorCode', code);
    m.addMetric('Failures', MetricUnit.Count, count);
  }
}
