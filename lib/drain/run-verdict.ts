/**
 * What the drainer does with a run's report: the one decision between "more to drain", "done",
 * "come back later", "stop retrying and back off" and "let SQS redrive it". Pure: the facts in,
 * a verdict out (lambdas/drainer.ts carries it out; so does `popdrain poll`).
 */
import { NORMAL_STOPS, RETRY_LATER_STOPS, type DrainReport, type StopReason } from './report.js';

/** Stops that retrying within minutes cannot fix, whatever the error's own flag says. */
export const BACK_OFF_STOPS: ReadonlySet<StopReason> = new Set(['auth-failed', 'tls-failed', 'config-invalid']);

export type RunVerdict =
  /** Enqueue a continuation at `depth`; the request stays outstanding. */
  | { kind: 'continue'; depth: number }
  /** Normal end: the request is done; a failure backoff, if any, is reset. */
  | { kind: 'done' }
  /** Normal end with more remaining, but the chain reached its depth cap: done, the cap recorded. */
  | { kind: 'chain-capped'; depth: number }
  /**
   * Busy, in use, login delay, or another run took over: done; the next tick tries again, or not
   * before `afterSeconds` when the server asked for a delay between logins (LOGIN-DELAY).
   */
  | { kind: 'retry-later'; afterSeconds?: number }
  /** The UIDL-reset guard stopped the run: done; the scheduler waits for an operator. */
  | { kind: 'needs-operator' }
  /** A failure retrying soon cannot fix: done, and the mailbox backs off (nextAttemptAt). */
  | { kind: 'back-off' }
  /** An infrastructure error: a batch item failure, retried by SQS, then the DLQ. */
  | { kind: 'redrive' };

export interface RunFacts {
  report: Pick<DrainReport, 'stopReason' | 'moreRemaining' | 'retryLater' | 'error' | 'retryAfterSeconds'>;
  /** Continuations before this run (0 for the scheduler's request). */
  depth: number;
  /** Continuations a chain may have at most. */
  maxDepth: number;
}

export function decideRunVerdict({ report, depth, maxDepth }: RunFacts): RunVerdict {
  const stop = report.stopReason;
  if (report.retryLater || RETRY_LATER_STOPS.has(stop) || stop === 'lease-lost') {
    const after = report.retryAfterSeconds;
    return after !== undefined && after > 0 ? { kind: 'retry-later', afterSeconds: after } : { kind: 'retry-later' };
  }
  if (NORMAL_STOPS.has(stop)) {
    if (!report.moreRemaining || stop === 'cancelled' || stop === 'dry-run') return { kind: 'done' };
    return depth + 1 > maxDepth ? { kind: 'chain-capped', depth } : { kind: 'continue', depth: depth + 1 };
  }
  if (stop === 'uidl-reset-suspected') return { kind: 'needs-operator' };
  if (BACK_OFF_STOPS.has(stop)) return { kind: 'back-off' };
  // Credentials missing or refused by the token endpoint, store conflicts, defects: the error
  // says it is not worth retrying. Throttling, timeouts and 5xx say it is.
  return report.error?.retryable === true ? { kind: 'redrive' } : { kind: 'back-off' };
}
