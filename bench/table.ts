/**
 * The bench's rows: medians of a tool's runs on one workload, latency and medium, with ratios to
 * mpop on the same medium and to the `node-floor` row; printed as a table or as JSON lines.
 */
import { median, round } from './measure.js';
import type { ToolResult } from './tools.js';

export interface Measurement extends ToolResult {
  seconds: number;
  peakRssMb: number;
  userCpuSeconds: number;
  sysCpuSeconds: number;
}

export interface Row {
  /** The workload id, or `<id>-rerun` for a rerun with nothing new. */
  workload: string;
  latencyMs: number;
  /** Where the tool stored: `tmpfs`, `disk`, or `none` for the tools that store nothing locally. */
  medium: string;
  tool: string;
  /** Messages in the mailbox (all drained; in a rerun row, all listed and found known). */
  messages: number;
  bytes: number;
  seconds: number;
  msgsPerSec: number;
  mbPerSec: number;
  peakRssMb: number;
  userCpuSeconds: number;
  sysCpuSeconds: number;
  transferMbPerSec?: number;
  runs: number;
  ratioToMpop?: { msgsPerSec: number; mbPerSec: number; transferMbPerSec?: number };
  /** seconds / mpop's seconds on the same medium (`none` rows: mpop on tmpfs, else on disk). */
  timeToMpop?: number;
  /** seconds / the node-floor row's seconds. */
  timeToFloor?: number;
  [extra: string]: unknown;
}

export interface ToolRuns {
  tool: string;
  medium: string;
  runs: Measurement[];
}

export interface RowKey {
  label: string;
  latencyMs: number;
  messages: number;
  bytes: number;
  reportTransfer: boolean;
}

export function summarise(key: RowKey, all: ToolRuns[]): Row[] {
  const rows = all.map(({ tool, medium, runs }): Row => {
    const seconds = median(runs.map((m) => m.seconds));
    const row: Row = {
      workload: key.label,
      latencyMs: key.latencyMs,
      medium,
      tool,
      messages: key.messages,
      bytes: key.bytes,
      seconds: round(seconds, 3),
      msgsPerSec: round(key.messages / seconds, 1),
      mbPerSec: round(key.bytes / 1e6 / seconds, 1),
      peakRssMb: round(median(runs.map((m) => m.peakRssMb)), 1),
      userCpuSeconds: round(median(runs.map((m) => m.userCpuSeconds)), 2),
      sysCpuSeconds: round(median(runs.map((m) => m.sysCpuSeconds)), 2),
      runs: runs.length,
    };
    const transfers = runs.map((m) => m.transferSeconds).filter((t): t is number => t !== undefined);
    if (transfers.length === runs.length && key.reportTransfer) row.transferMbPerSec = round(key.bytes / 1e6 / median(transfers), 1);
    return row;
  });
  const mpopOn = (medium: string): Row | undefined => rows.find((r) => r.tool === 'mpop' && r.medium === medium);
  const floor = rows.find((r) => r.tool === 'node-floor');
  for (const row of rows) {
    const mpop = row.medium === 'none' ? (mpopOn('tmpfs') ?? mpopOn('disk')) : mpopOn(row.medium);
    if (mpop !== undefined && row !== mpop) {
      row.ratioToMpop = { msgsPerSec: round(row.msgsPerSec / mpop.msgsPerSec, 2), mbPerSec: round(row.mbPerSec / mpop.mbPerSec, 2) };
      if (row.transferMbPerSec !== undefined) row.ratioToMpop.transferMbPerSec = round(row.transferMbPerSec / mpop.mbPerSec, 2);
      row.timeToMpop = round(row.seconds / mpop.seconds, 2);
    }
    if (floor !== undefined && row !== floor) row.timeToFloor = round(row.seconds / floor.seconds, 2);
  }
  return rows;
}

export const TABLE_HEADER =
  `${'workload'.padEnd(11)} ${'medium'.padEnd(6)} ${'tool'.padEnd(26)} ${'msgs'.padStart(6)} ${'seconds'.padStart(8)} ` +
  `${'msg/s'.padStart(8)} ${'MB/s'.padStart(7)} ${'RSS MB'.padStart(7)} ${'user s'.padStart(6)} ${'sys s'.padStart(6)} ${'xfer MB/s'.padStart(9)}  time vs mpop, floor`;

export function formatRow(row: Row): string {
  const ratios = [
    row.timeToMpop === undefined ? '' : `x${row.timeToMpop.toFixed(2)} mpop`,
    row.timeToFloor === undefined ? '' : `x${row.timeToFloor.toFixed(2)} floor`,
  ].filter((s) => s !== '');
  return [
    `${row.workload}${row.latencyMs > 0 ? `+${row.latencyMs}ms` : ''}`.padEnd(11),
    row.medium.padEnd(6),
    row.tool.padEnd(26),
    String(row.messages).padStart(6),
    row.seconds.toFixed(3).padStart(8),
    row.msgsPerSec.toFixed(0).padStart(8),
    row.mbPerSec.toFixed(1).padStart(7),
    row.peakRssMb.toFixed(1).padStart(7),
    row.userCpuSeconds.toFixed(2).padStart(6),
    row.sysCpuSeconds.toFixed(2).padStart(6),
    (row.transferMbPerSec === undefined ? '' : row.transferMbPerSec.toFixed(1)).padStart(9),
    ` ${ratios.join(', ')}`,
  ].join(' ');
}
