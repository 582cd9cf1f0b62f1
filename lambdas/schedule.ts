/**
 * Which mailboxes a scheduler tick enqueues. The scheduler runs every `tickMinutes`; a mailbox
 * drained every N minutes is due on one tick out of N / tickMinutes, offset by a digest of its
 * id so a thousand mailboxes with the same schedule do not all start on the same tick.
 */
import { createHash } from 'node:crypto';

export function tickStart(time: Date, tickMinutes: number): Date {
  const minutes = Math.floor(time.getTime() / 60_000);
  return new Date(Math.floor(minutes / tickMinutes) * tickMinutes * 60_000);
}

export function isDue(mailboxId: string, everyMinutes: number, tick: Date, tickMinutes: number): boolean {
  const intervalTicks = Math.max(1, Math.round(everyMinutes / tickMinutes));
  if (intervalTicks === 1) return true;
  const tickIndex = Math.floor(tick.getTime() / 60_000 / tickMinutes);
  const offset = createHash('sha256').update(mailboxId).digest().readUInt32BE(0) % intervalTicks;
  return tickIndex % intervalTicks === offset;
}

/**
 * How long a request marker holds a mailbox once its request is in the queue: as long as the
 * request can wait there (the queue's retention) plus one visibility timeout (a run of it), so
 * the scheduler never enqueues a second request beside a waiting one. The construct sets
 * POPDRAIN_REQUEST_MARKER_TTL_SECONDS from the queue; this default is 4 days + 90 minutes.
 */
export const DEFAULT_REQUEST_MARKER_TTL_SECONDS = 4 * 24 * 60 * 60 + 90 * 60;

/**
 * How long the scheduler's claim holds a mailbox before its request is sent (then it is
 * extended to the marker TTL): covers a scheduler that stops between the claim and the send.
 */
export const DEFAULT_REQUEST_CLAIM_TTL_SECONDS = 15 * 60;

/** The SQS message body for one drain. */
export interface DrainRequest {
  mailboxId: string;
  /** ISO time of the tick, or of the continuation. */
  tick: string;
  /** Set on a continuation: the run that left more to drain. */
  continuationOf?: string;
  /** The request marker's token this request holds (absent on requests sent by hand). */
  marker?: string;
  /** Continuations before this request: 0 (or absent) for the scheduler's, n for the n-th continuation. */
  depth?: number;
}

export function parseDrainRequest(body: string): DrainRequest | undefined {
  try {
    const value = JSON.parse(body) as Partial<DrainRequest>;
    if (typeof value.mailboxId !== 'string' || typeof value.tick !== 'string') return undefined;
    return {
      mailboxId: value.mailboxId,
      tick: value.tick,
      ...(typeof value.continuationOf === 'string' ? { continuationOf: value.continuationOf } : {}),
      ...(typeof value.marker === 'string' && value.marker !== '' ? { marker: value.marker } : {}),
      ...(Number.isSafeInteger(value.depth) && value.depth! >= 0 ? { depth: value.depth } : {}),
    };
  } catch {
    return undefined;
  }
}

/** FIFO deduplication ids are at most 128 characters of [A-Za-z0-9!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~]. */
export function deduplicationId(parts: string[]): string {
  const joined = parts.join(':');
  if (joined.length <= 128 && /^[\x21-\x7e]+$/.test(joined)) return joined;
  return createHash('sha256').update(joined).digest('hex');
}
