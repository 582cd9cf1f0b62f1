/**
 * The drainer's first decision about a drain request, before it logs in: run it, run it after
 * giving the mailbox's request marker back (its last allowed receive), or end it as stale. Pure:
 * the request's marker token, the mailbox's current marker and the SQS receive count in, a
 * verdict out.
 *
 * A request is stale when the mailbox's marker is held, unexpired, by another token: its own
 * marker ran out (or was released before a dead-letter move) and a newer request was enqueued
 * since. Running it would only log in once more; the newer request drains the mailbox.
 */
import type { RequestMarker } from '../lib/drain/ports.js';

export type RequestStart =
  /** Run as usual; `releaseFirst`: this is the last allowed receive, so a failure that moves it to the DLQ leaves the mailbox schedulable. */
  | { kind: 'run'; releaseFirst: boolean }
  /** A newer request holds the mailbox: end this one without a login, leave the newer marker alone. */
  | { kind: 'stale'; holder: string };

export interface RequestStartFacts {
  /** The marker token the request carries (absent on requests sent by hand without one). */
  requestToken: string | undefined;
  /** The mailbox's marker as read now. */
  marker: RequestMarker | undefined;
  /** Epoch ms. */
  now: number;
  /** The SQS record's ApproximateReceiveCount (1 on the first delivery). */
  receiveCount: number;
  /** The drain queue's maxReceiveCount: the receive after which a failed request moves to the DLQ. */
  maxReceiveCount: number;
}

export function decideRequestStart({ requestToken, marker, now, receiveCount, maxReceiveCount }: RequestStartFacts): RequestStart {
  if (requestToken !== undefined && marker !== undefined && marker.token !== requestToken && marker.expiresAt > now) {
    return { kind: 'stale', holder: marker.token };
  }
  return { kind: 'run', releaseFirst: requestToken !== undefined && receiveCount >= maxReceiveCount };
}
