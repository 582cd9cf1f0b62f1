/**
 * The scheduler's one decision per mailbox and tick: "enqueue this mailbox now?". Pure: the
 * facts (is it due, its state as last read, whether its lease is held) in, a verdict out. The
 * reads behind it are advisory (eventually consistent); the request marker's conditional claim
 * and the lease decide for real.
 */
import type { MailboxState } from '../lib/drain/ports.js';

export type SkipReason =
  /** Not this tick: its schedule says a later one. */
  | 'not-due'
  /** The UIDL-reset guard tripped and no operator has accepted the reset. */
  | 'uidl-reset'
  /** A failure's backoff has not run out (`nextAttemptAt`). */
  | 'backing-off'
  /** A run holds its lease. */
  | 'running'
  /** A request is waiting or running (an unexpired request marker). */
  | 'queued';

export type EnqueueDecision = { enqueue: true } | { enqueue: false; reason: SkipReason };

export interface EnqueueFacts {
  due: boolean;
  state: MailboxState | undefined;
  leaseHeld: boolean;
  /** Epoch ms. */
  now: number;
  /** The marker token this tick claims with: a marker of the same token is this tick's own (a repeated tick). */
  token: string;
}

/**
 * True when the UIDL-reset guard tripped and no operator has accepted the reset yet. Once
 * `acceptUidlReset` is set the mailbox is enqueued again: only a drain run clears the trip (and
 * the acceptance), so skipping it then would leave the mailbox undrained for good.
 */
export function isUidlResetBlocked(state: MailboxState | undefined): boolean {
  return state?.uidlResetTrippedAt !== undefined && state.acceptUidlReset !== true;
}

export function decideEnqueue({ due, state, leaseHeld, now, token }: EnqueueFacts): EnqueueDecision {
  if (!due) return { enqueue: false, reason: 'not-due' };
  if (isUidlResetBlocked(state)) return { enqueue: false, reason: 'uidl-reset' };
  // An accepted UIDL reset waits for no backoff: the operator asked for a run.
  if (state?.nextAttemptAt !== undefined && state.nextAttemptAt > now && state.acceptUidlReset !== true) {
    return { enqueue: false, reason: 'backing-off' };
  }
  if (leaseHeld) return { enqueue: false, reason: 'running' };
  // A repeated tick sends the same request again: SQS deduplicates it (mailbox + tick).
  const marker = state?.requestMarker;
  if (marker !== undefined && marker.expiresAt > now && marker.token !== token) return { enqueue: false, reason: 'queued' };
  return { enqueue: true };
}
