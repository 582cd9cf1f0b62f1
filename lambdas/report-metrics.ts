/**
 * Metrics (CloudWatch EMF through Powertools) for one drain run. Every metric carries only
 * aggregate dimensions: `service`, or `service` + `errorCode` for failures; so their number,
 * and their price, does not grow with the mailboxes. The mailbox id travels as an EMF property
 * (searchable in the logs, not a dimension) and in the run's log line, where the Contributor
 * Insights rules of the deployment find the top mailboxes. Per-mailbox series (`service` +
 * `mailbox`) are an opt-in: each (metric, mailbox) pair is a custom metric billed every month.
 */
import { MetricUnit, type Metrics } from '@aws-lambda-powertools/metrics';
import { NORMAL_STOPS, type DrainReport } from '../lib/drain/report.js';

type Unit = (typeof MetricUnit)[keyof typeof MetricUnit];

/** One data point: a name, a unit, a value and the dimensions beyond `service`. */
export interface MetricPoint {
  readonly name: string;
  readonly unit: Unit;
  readonly value: number;
  readonly dimensions?: Readonly<Record<string, string>>;
}

/** What a run publishes: one aggregate blob, single metrics with their own dimensions, EMF properties. */
export interface RunMetrics {
  /** Dimension `service` only, published together. */
  readonly aggregate: readonly MetricPoint[];
  /** Each with its own dimension (`errorCode`, or `mailbox` when opted in). */
  readonly single: readonly MetricPoint[];
  /** EMF properties of the aggregate blob: searchable fields, not dimensions. */
  readonly properties: Readonly<Record<string, string>>;
}

export interface RunMetricsOptions {
  /** Also publish MessagesStored, BytesStored, RunDurationMs, BacklogAgeSeconds per mailbox. @default false */
  readonly perMailbox?: boolean;
}

/** The metric names the opt-in per-mailbox series use (4 custom metrics per mailbox). */
export const PER_MAILBOX_METRICS = ['MessagesStored', 'BytesStored', 'RunDurationMs', 'BacklogAgeSeconds'] as const;

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

/** How a run ended, for logs and Contributor Insights: `failed`, `busy` (retry later) or `ok`. */
export type RunOutcome = 'failed' | 'busy' | 'ok';

export function runOutcome(report: DrainReport): RunOutcome {
  if (report.retryLater) return 'busy';
  return NORMAL_STOPS.has(report.stopReason) ? 'ok' : 'failed';
}

/** Failures by error code: per-message failures and the run's own error, counted once each. */
export function failuresByCode(report: DrainReport): Map<string, number> {
  const byCode = new Map<string, number>();
  for (const f of report.failures) byCode.set(f.code, (byCode.get(f.code) ?? 0) + 1);
  if (report.error !== undefined && !report.failures.includes(report.error)) {
    byCode.set(report.error.code, (byCode.get(report.error.code) ?? 0) + 1);
  }
  return byCode;
}

/** The metrics of one run: a pure decision, unit-tested. */
export function runMetrics(report: DrainReport, options: RunMetricsOptions = {}): RunMetrics {
  const outcome = runOutcome(report);
  const aggregate: MetricPoint[] = [
    { name: 'MessagesStored', unit: MetricUnit.Count, value: report.fetched },
    { name: 'BytesStored', unit: MetricUnit.Bytes, value: report.fetchedBytes },
    { name: 'MessagesSkipped', unit: MetricUnit.Count, value: report.skipped },
    { name: 'RunDurationMs', unit: MetricUnit.Milliseconds, value: report.durationMs },
    { name: 'BacklogAgeSeconds', unit: MetricUnit.Seconds, value: report.backlogAgeSeconds },
    { name: 'RunFailures', unit: MetricUnit.Count, value: outcome === 'failed' ? 1 : 0 },
    { name: 'AuthFailures', unit: MetricUnit.Count, value: isAuthFailure(report) ? 1 : 0 },
    { name: 'BusyMailboxes', unit: MetricUnit.Count, value: outcome === 'busy' ? 1 : 0 },
  ];
  const single: MetricPoint[] = [];
  if (options.perMailbox === true) {
    for (const name of PER_MAILBOX_METRICS) {
      const point = aggregate.find((p) => p.name === name)!;
      single.push({ ...point, dimensions: { mailbox: report.mailboxId } });
    }
  }
  for (const [code, count] of failuresByCode(report)) {
    single.push({ name: 'Failures', unit: MetricUnit.Count, value: count, dimensions: { errorCode: code } });
  }
  const properties: Record<string, string> = { mailboxId: report.mailboxId, runId: report.runId, stopReason: report.stopReason, outcome };
  if (report.error !== undefined) properties.errorCode = report.error.code;
  return { aggregate, single, properties };
}

export function recordReportMetrics(metrics: Metrics, report: DrainReport, options: RunMetricsOptions = {}): void {
  const run = runMetrics(report, options);
  for (const p of run.aggregate) metrics.addMetric(p.name, p.unit, p.value);
  for (const [key, value] of Object.entries(run.properties)) metrics.addMetadata(key, value);
  // Each single metric is published at once with its own dimensions (addMetric on a single
  // metric flushes and clears them): one per data point, or a later point would lose its
  // dimension and land in the aggregate series a second time.
  for (const p of run.single) {
    const m = metrics.singleMetric();
    for (const [name, value] of Object.entries(p.dimensions ?? {})) m.addDimension(name, value);
    m.addMetric(p.name, p.unit, p.value);
  }
}
