/**
 * Reading what a Lambda instance printed: Powertools' EMF blobs (CloudWatch embedded metric
 * format, one JSON object per line on stdout) and its JSON log records.
 */
import type { DrainReport } from '../../lib/drain/report.js';
import type { OutputLine } from './instance.js';

export interface EmfBlob {
  namespace: string;
  /** The dimension set (EMF allows several; Powertools writes one). */
  dimensions: string[];
  /** Metric name -> value. */
  metrics: Map<string, number>;
  /** Dimension name -> value. */
  dimensionValues: Record<string, string>;
  raw: Record<string, unknown>;
}

interface EmfDirective {
  Namespace: string;
  Dimensions: string[][];
  Metrics: Array<{ Name: string; Unit?: string }>;
}

export function emfBlobs(lines: readonly OutputLine[]): EmfBlob[] {
  const out: EmfBlob[] = [];
  for (const line of lines) {
    const aws = line.json?._aws as { CloudWatchMetrics?: EmfDirective[] } | undefined;
    if (aws?.CloudWatchMetrics === undefined) continue;
    for (const d of aws.CloudWatchMetrics) {
      if (d.Dimensions.length !== 1) throw new Error(`expected one dimension set per blob: ${line.text}`);
      const dimensions = d.Dimensions[0]!;
      const metrics = new Map<string, number>();
      for (const m of d.Metrics) metrics.set(m.Name, Number(line.json![m.Name]));
      const dimensionValues: Record<string, string> = {};
      for (const name of dimensions) dimensionValues[name] = String(line.json![name]);
      out.push({ namespace: d.Namespace, dimensions, metrics, dimensionValues, raw: line.json! });
    }
  }
  return out;
}

/** The blobs whose dimension set is exactly these names (any order). */
export function blobsWithDimensions(blobs: readonly EmfBlob[], names: readonly string[]): EmfBlob[] {
  const want = [...names].sort().join(',');
  return blobs.filter((b) => [...b.dimensions].sort().join(',') === want);
}

/** Sum of one metric over blobs. */
export function metricSum(blobs: readonly EmfBlob[], name: string): number {
  return blobs.reduce((n, b) => n + (b.metrics.get(name) ?? 0), 0);
}

export interface LogRecord {
  level: string;
  message: string;
  service?: string;
  mailboxId?: string;
  [field: string]: unknown;
}

/** Powertools log records (JSON objects with `level` and `message`). */
export function logRecords(lines: readonly OutputLine[]): LogRecord[] {
  return lines.flatMap((l) =>
    l.json !== undefined && typeof l.json.level === 'string' && typeof l.json.message === 'string' ? [l.json as LogRecord] : [],
  );
}

/** The drain reports the drainer logged (`drain report` records). */
export function drainReports(lines: readonly OutputLine[]): DrainReport[] {
  return logRecords(lines)
    .filter((r) => r.message === 'drain report')
    .map((r) => r.report as DrainReport);
}
