/**
 * How long a mailbox waits after a failure. Two schedules, for two kinds of failure:
 *
 * - A stop that retrying soon cannot fix (login refused, credentials refused, configuration
 *   invalid, TLS verification failed): the SQS message ends and the mailbox state records
 *   `nextAttemptAt`, which the scheduler honours. 15 min, 30 min, 1 h, 2 h, 4 h, then every 6 h,
 *   until a run succeeds or an operator resets it.
 * - An infrastructure error (throttling, timeouts, 5xx): the message is retried by SQS after a
 *   growing visibility timeout, 1, 2, 4 ... 15 min, and moves to the DLQ after maxReceiveCount.
 */

export const FIRST_FAILURE_BACKOFF_MS = 15 * 60_000;
export const MAX_FAILURE_BACKOFF_MS = 6 * 60 * 60_000;
export const FIRST_REDRIVE_DELAY_SECONDS = 60;
export const MAX_REDRIVE_DELAY_SECONDS = 900;

/** Milliseconds until the next attempt after the `streak`-th failure in a row (1 = the first). */
export function failureBackoffMs(streak: number): number {
  const n = Math.max(1, Math.floor(streak));
  // 2 ** 30 already exceeds any cap: no overflow to Infinity for absurd streaks.
  return Math.min(MAX_FAILURE_BACKOFF_MS, FIRST_FAILURE_BACKOFF_MS * 2 ** Math.min(30, n - 1));
}

/** Seconds a redriven message waits before it is visible again, by its receive count: 1, 2, 4 ... 15 min. */
export function redriveDelaySeconds(receiveCount: number): number {
  return Math.min(MAX_REDRIVE_DELAY_SECONDS, FIRST_REDRIVE_DELAY_SECONDS * 2 ** Math.min(30, Math.max(0, receiveCount - 1)));
}
