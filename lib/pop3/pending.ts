/**
 * A command waiting for its answer, one variant per shape of answer. The client's queue and
 * pump treat them alike (`PendingBase`); dispatch switches on `kind` and finds each variant's
 * own state there, present by construction.
 */
import type { Command } from './command.js';
import type { Pop3Error, Pop3Phase } from './errors.js';
import type { ListingCollector } from './listing-collector.js';
import type { MessageStream, ReceivingBody } from './message-bodies.js';
import type { SaslSession } from './sasl/index.js';

interface PendingBase {
  phase: Pop3Phase;
  timeoutMs: number;
  sent: boolean;
  /**
   * When the wait for this command's status line began: when it was sent, or when the response
   * before it in the pipeline was complete. `timeoutMs` runs from here to the end of the status
   * line (for AUTH: to the end of the exchange), however slowly its bytes arrive.
   */
  waitingSince: number;
  /**
   * For a multi-line response (CAPA, LIST, UIDL, RETR, TOP): the limit on the whole response,
   * from `waitingSince` to its last line, whatever trickles in meanwhile (0: only the
   * inactivity limit).
   */
  responseMs?: number;
  /** Every variant reports a failure here (an -ERR, a timeout, the connection failing). */
  onErr(error: Pop3Error): void;
}

/** The server's greeting: one status line, no command sent. */
export interface GreetingPending extends PendingBase {
  kind: 'greeting';
  command: undefined;
  onOk(text: string): void;
}

/** A command answered by one status line. */
export interface StatusPending extends PendingBase {
  kind: 'status';
  command: Command;
  onOk(text: string): void;
}

/** A status line, then (on +OK) a multi-line block that is collected (CAPA, LIST, UIDL). */
export interface ListingPending extends PendingBase {
  kind: 'listing';
  command: Command;
  collector: ListingCollector;
  onListing(data: Buffer): void;
}

/** A status line, then (on +OK) a message body handed to the caller (RETR, TOP). */
export interface StreamPending extends PendingBase {
  kind: 'stream';
  command: Command;
  messageNumber: number;
  /** Receive the body whole into a buffer this large (its listed size), if set ... */
  collectSize: number | undefined;
  /** The body once its +OK arrived (streamed or being received whole). */
  body: ReceivingBody | undefined;
  /** The consumer went away: the body is read and dropped. */
  discard: boolean;
  /** Bytes of its body, received whole and handed over, that the consumer has not claimed. */
  held?: number;
  /** Hands the message to the caller (the body as a stream or whole). */
  deliver(message: MessageStream): void;
}

/** AUTH: challenges (`+ ...`) answered until a final +OK or -ERR. */
export interface SaslPending extends PendingBase {
  kind: 'sasl';
  command: Command;
  session: SaslSession;
  /** Challenges received so far (at most MAX_SASL_CHALLENGES). */
  challenges: number;
  /** Set when the client cancelled the exchange; reported instead of the server's -ERR. */
  cancelled: Pop3Error | undefined;
  onOk(text: string): void;
}

/** The fields every command starts with in the queue: not sent, no wait begun. */
export function queued(
  phase: Pop3Phase,
  timeoutMs: number,
  responseMs = 0,
): Pick<PendingBase, 'phase' | 'timeoutMs' | 'sent' | 'waitingSince' | 'responseMs'> {
  return { phase, timeoutMs, sent: false, waitingSince: 0, responseMs };
}

export type Pending = GreetingPending | StatusPending | ListingPending | StreamPending | SaslPending;
/** What goes through the queue: everything but the greeting, which is never sent. */
export type CommandPending = Exclude<Pending, GreetingPending>;
