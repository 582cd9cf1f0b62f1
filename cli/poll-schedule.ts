/**
 * The decisions of `popdrain poll`: when each mailbox runs first, which are due now, when a
 * mailbox runs next after a run, and how a reloaded config carries the schedule over. Pure:
 * facts (the time, the mailboxes, a run's report) in, times out; cli/poll-command.ts carries
 * them out.
 *
 * The rules after a run are the deployment's (lib/drain/run-verdict.ts, failure-backoff.ts):
 * - a normal end (also a budget stop with more remaining) resets the failure streak and runs
 *   again one interval later;
 * - busy, in use, login delay: not a failure; the next interval, or later when the server asked
 *   for a delay between logins;
 * - a failure retrying soon cannot fix (login refused, TLS, configuration, credentials, and a
 *   suspected UIDL reset, which a run repeats until `popdrain status --accept-uidl-reset`):
 *   one more in the streak, and no attempt for 15 min, 30 min, 1 h ... 6 h (at least the
 *   interval);
 * - a network or server error that retrying may fix: the next interval, the streak unchanged
 *   (the deployment lets SQS redrive it within minutes; a poll loop simply comes round again).
 *
 * Jitter: each mailbox's intervals are stretched or shrunk by a fixed fraction (up to
 * JITTER_FRACTION) derived from its id, and its first run waits a part of JITTER_FRACTION of an
 * interval derived the same way: mailboxes with one schedule do not all start together, and a
 * restart keeps each one's place.
 */
import { createHash } from 'node:crypto';
import { failureBackoffMs } from '../lib/drain/failure-backoff.js';
import type { DrainReport } from '../lib/drain/report.js';
import { decideRunVerdict } from '../lib/drain/run-verdict.js';

/** The largest share of an interval a mailbox's jitter moves its runs by. */
export const JITTER_FRACTION = 0.1;

/** A mailbox in the loop: its schedule and where it stands. */
export interface PollEntry {
  readonly id: string;
  readonly intervalMs: number;
  /** Epoch ms of its next run. */
  readonly nextAt: number;
  /** Failures in a row that back off (0 after a normal end). */
  readonly streak: number;
  readonly running: boolean;
}

/** The mailbox's fixed jitter in [-1, 1), from a digest of its id. */
export function jitterOf(mailboxId: string): number {
  return (createHash('sha256').update(mailboxId).digest().readUInt32BE(0) / 2 ** 32) * 2 - 1;
}

/** The first run after start: within the first JITTER_FRACTION of an interval. */
export function firstRunAt(mailboxId: string, intervalMs: number, now: number): number {
  return now + Math.round(((jitterOf(mailboxId) + 1) / 2) * JITTER_FRACTION * intervalMs);
}

/** One interval after `endedAt`, stretched or shrunk by the mailbox's jitter. */
export function regularNextAt(mailboxId: string, intervalMs: number, endedAt: number): number {
  return endedAt + Math.round(intervalMs * (1 + JITTER_FRACTION * jitterOf(mailboxId)));
}

/** The mailboxes to start now, the longest waiting first; at most `slots`. */
export function dueNow(entries: readonly PollEntry[], now: number, slots: number): PollEntry[] {
  return entries
    .filter((e) => !e.running && e.nextAt <= now)
    .sort((a, b) => a.nextAt - b.nextAt || a.id.localeCompare(b.id))
    .slice(0, Math.max(0, slots));
}

/** When the loop must look again (the earliest next run of a mailbox not running), or undefined. */
export function nextWakeAt(entries: readonly PollEntry[]): number | undefined {
  let at: number | undefined;
  for (const e of entries) if (!e.running && (at === undefined || e.nextAt < at)) at = e.nextAt;
  return at;
}

export type PollOutcome = 'ok' | 'retry-later' | 'back-off' | 'retry';

export interface AfterRun {
  readonly outcome: PollOutcome;
  readonly nextAt: number;
  readonly streak: number;
  /** With back-off: the failure backoff that applied. */
  readonly backoffMs?: number;
}

export interface RunEnd {
  readonly id: string;
  readonly intervalMs: number;
  readonly endedAt: number;
  /** The streak before this run. */
  readonly streak: number;
  readonly report: Pick<DrainReport, 'stopReason' | 'moreRemaining' | 'retryLater' | 'error' | 'retryAfterSeconds'>;
  /** Multiplies the backoff and the server's login delay (1, except in tests: see poll-command.ts). */
  readonly timeScale?: number;
}

export function decideAfterRun({ id, intervalMs, endedAt, streak, report, timeScale = 1 }: RunEnd): AfterRun {
  const regular = regularNextAt(id, intervalMs, endedAt);
  const verdict = decideRunVerdict({ report, depth: 0, maxDepth: 0 });
  switch (verdict.kind) {
    case 'done':
    case 'continue':
    case 'chain-capped':
      return { outcome: 'ok', nextAt: regular, streak: 0 };
    case 'retry-later': {
      const asked = verdict.afterSeconds === undefined ? regular : endedAt + Math.round(verdict.afterSeconds * 1000 * timeScale);
      return { outcome: 'retry-later', nextAt: Math.max(regular, asked), streak };
    }
    case 'needs-operator':
    case 'back-off': {
      const backoffMs = Math.round(failureBackoffMs(streak + 1) * timeScale);
      return { outcome: 'back-off', nextAt: Math.max(regular, endedAt + backoffMs), streak: streak + 1, backoffMs };
    }
    case 'redrive':
      return { outcome: 'retry', nextAt: regular, streak };
  }
}

/**
 * The schedule after the config was read again: a mailbox still listed keeps its place and
 * streak (its next run moves earlier if its new interval is shorter); a new one starts as at
 * start-up; one no longer listed is dropped (a run in progress finishes).
 */
export function reconcile(entries: readonly PollEntry[], mailboxes: ReadonlyArray<{ id: string; intervalMs: number }>, now: number): PollEntry[] {
  const old = new Map(entries.map((e) => [e.id, e]));
  return mailboxes.map(({ id, intervalMs }) => {
    const e = old.get(id);
    if (e === undefined) return { id, intervalMs, nextAt: firstRunAt(id, intervalMs, now), streak: 0, running: false };
    const nextAt = e.streak === 0 ? Math.min(e.nextAt, regularNextAt(id, intervalMs, now)) : e.nextAt;
    return { ...e, intervalMs, nextAt };
  });
}
