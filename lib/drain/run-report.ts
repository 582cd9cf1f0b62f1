/**
 * The end of a run, as pure functions of its counters: the report the caller gets, the summary
 * kept in the mailbox state, the state update, and the `Mailbox Drained` event.
 */
import { EVENT_SCHEMA_VERSION, type DrainEvent } from './events.js';
import type { MailboxState, MailboxStateUpdate, RunSummary } from './ports.js';
import { NORMAL_STOPS, RETRY_LATER_STOPS, type DrainFailure, type DrainReport, type StopReason } from './report.js';
import type { RunCounters } from './run-context.js';
import { withoutUndefined } from './without-undefined.js';

export interface RunEnd {
  mailboxId: string;
  runId: string;
  /** Epoch ms. */
  startedAt: number;
  finishedAt: number;
  stopReason: StopReason;
  /** The error that ended the run (not for retry-later stops). */
  runError: DrainFailure | undefined;
  counters: RunCounters;
  failures: DrainFailure[];
  /** The mailbox state read at the start (undefined when the run never read it). */
  state: MailboxState | undefined;
  plan: DrainReport['plan'];
  /** A login delay the server asked for (CAPA LOGIN-DELAY, with [LOGIN-DELAY]). */
  retryAfterSeconds?: number | undefined;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/**
 * Since when the mailbox has had undrained messages: kept while a backlog lasts, started by a
 * run that leaves messages behind or fails, cleared by one that drains it.
 */
export function backlogSinceAfter(end: RunEnd): number | undefined {
  const inBacklog = end.counters.remaining > 0 || !NORMAL_STOPS.has(end.stopReason);
  if (!inBacklog) return undefined;
  const since = end.state?.backlogSince;
  if (since === undefined && end.counters.serverMessages.length > 0) return end.startedAt;
  return since;
}

export function buildReport(end: RunEnd): DrainReport {
  const c = end.counters;
  const backlogSince = backlogSinceAfter(end);
  return withoutUndefined<DrainReport>({
    mailboxId: end.mailboxId,
    runId: end.runId,
    startedAt: iso(end.startedAt),
    finishedAt: iso(end.finishedAt),
    durationMs: end.finishedAt - end.startedAt,
    stopReason: end.stopReason,
    moreRemaining: c.remaining > 0,
    retryLater: RETRY_LATER_STOPS.has(end.stopReason),
    ok: NORMAL_STOPS.has(end.stopReason) && end.failures.length === 0,
    serverMessages: c.serverMessages.length,
    serverBytes: c.serverMessages.reduce((n, m) => n + m.size, 0),
    alreadyKnown: c.alreadyKnown,
    fetched: c.fetched,
    fetchedBytes: c.fetchedBytes,
    skipped: c.skipped,
    announced: c.announced,
    reannounced: c.reannounced,
    deleted: c.deleted,
    unconfirmedDeletes: c.unconfirmedDeletes,
    serverDeletesRetrieved: c.serverDeletesRetrieved,
    retryAfterSeconds: end.retryAfterSeconds,
    pendingAnnouncements: c.pendingUidls.size,
    remaining: c.remaining,
    importedLeft: c.importedLeft > 0 ? c.importedLeft : undefined,
    refetch: c.refetch,
    uidlSupported: c.uidlSupported,
    failures: end.failures,
    error: end.runError,
    backlogAgeSeconds: backlogSince === undefined ? 0 : Math.max(0, Math.round((end.finishedAt - backlogSince) / 1000)),
    plan: end.plan,
  });
}

/**
 * The summary the mailbox state keeps. `knownOnServer` feeds the UIDL-reset guard: a run that
 * never listed (busy, connection failure) or that the guard stopped keeps the previous figure.
 */
export function runSummaryOf(end: RunEnd, report: DrainReport): RunSummary {
  const listed = end.counters.serverMessages.length > 0 || NORMAL_STOPS.has(report.stopReason);
  return {
    runId: end.runId,
    startedAt: end.startedAt,
    finishedAt: end.finishedAt,
    stopReason: report.stopReason,
    moreRemaining: report.moreRemaining,
    fetched: report.fetched,
    fetchedBytes: report.fetchedBytes,
    skipped: report.skipped,
    deleted: report.deleted,
    failures: report.failures.length,
    knownOnServer:
      report.stopReason !== 'uidl-reset-suspected' && listed ? end.counters.knownAfterRun.size : (end.state?.lastRun?.knownOnServer ?? 0),
    serverMessages: report.serverMessages,
    pendingAnnouncements: report.pendingAnnouncements,
  };
}

/** What the run writes to the mailbox state at its end. */
export function stateUpdateAfterRun(end: RunEnd, report: DrainReport, pendingDeletesSettled: boolean): MailboxStateUpdate {
  const update: MailboxStateUpdate = { lastRun: runSummaryOf(end, report), backlogSince: backlogSinceAfter(end) ?? null };
  if (pendingDeletesSettled) update.pendingDeletes = null;
  if (NORMAL_STOPS.has(report.stopReason) && report.failures.length === 0) update.lastSuccessAt = end.finishedAt;
  return update;
}

export function mailboxDrainedEvent(report: DrainReport): DrainEvent {
  return {
    id: report.runId,
    detailType: 'Mailbox Drained',
    time: report.finishedAt,
    detail: {
      schemaVersion: EVENT_SCHEMA_VERSION,
      id: report.runId,
      mailboxId: report.mailboxId,
      stopReason: report.stopReason,
      moreRemaining: report.moreRemaining,
      serverMessages: report.serverMessages,
      fetched: report.fetched,
      fetchedBytes: report.fetchedBytes,
      skipped: report.skipped,
      deleted: report.deleted,
      announced: report.announced,
      failures: report.failures.length,
      startedAt: report.startedAt,
      finishedAt: report.finishedAt,
      durationMs: report.durationMs,
    },
  };
}
