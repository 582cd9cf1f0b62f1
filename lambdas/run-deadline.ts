/**
 * When a drainer run stops taking new messages (`deadline`) and when its session must end
 * (`hardDeadline`). A pure decision, unit-tested (test/unit/run-deadline.test.ts).
 *
 * Alone in its invocation, a run may use the Lambda's time up to the margin. In a batch with
 * other mailboxes it stops taking new messages after `batchRunCapMs` and continues in a new
 * request (a continuation): SQS deletes the batch's records only when the whole invocation
 * returns, and until then each of those mailboxes' FIFO groups holds its next request back, so
 * one long backlog run would hold the other mailboxes of its batch for up to the Lambda timeout.
 */

/** The default cap of a run that shares its invocation (POPDRAIN_BATCH_RUN_SECONDS). */
export const DEFAULT_BATCH_RUN_SECONDS = 120;

export interface RunDeadlineFacts {
  /** Epoch ms the run starts. */
  now: number;
  /** The invocation's remaining time (context.getRemainingTimeInMillis()). */
  remainingMs: number;
  /** POPDRAIN_DEADLINE_MARGIN_MS: kept free before the Lambda timeout. */
  marginMs: number;
  /** Message groups (mailboxes) in the batch. */
  groupsInBatch: number;
  batchRunCapMs: number;
}

export function runDeadlines(f: RunDeadlineFacts): { deadline: number; hardDeadline: number } {
  const lambdaDeadline = f.now + f.remainingMs - f.marginMs;
  const deadline = f.groupsInBatch > 1 ? Math.min(lambdaDeadline, f.now + f.batchRunCapMs) : lambdaDeadline;
  return { deadline, hardDeadline: f.now + f.remainingMs - Math.min(10_000, f.marginMs / 2) };
}
