/**
 * The options of a `Pop3Client` and of its calls, with the default timeouts (limits.ts).
 */
import {
  AUTH_TIMEOUT_MS,
  BODY_IDLE_TIMEOUT_MS,
  COMMAND_TIMEOUT_MS,
  CONNECT_TIMEOUT_MS,
  GREETING_TIMEOUT_MS,
  LISTING_TIMEOUT_MS,
  QUIT_TIMEOUT_MS,
  TLS_UPGRADE_TIMEOUT_MS,
} from './limits.js';
import type { Pop3TlsOptions, TlsMode } from './transport.js';

export interface Pop3Timeouts {
  connectMs: number;
  greetingMs: number;
  commandMs: number;
  authMs: number;
  bodyIdleMs: number;
  /** The whole of a LIST or UIDL response (CAPA: `commandMs`). */
  listingMs: number;
  tlsUpgradeMs: number;
  quitMs: number;
}

export const DEFAULT_TIMEOUTS: Pop3Timeouts = {
  connectMs: CONNECT_TIMEOUT_MS,
  greetingMs: GREETING_TIMEOUT_MS,
  commandMs: COMMAND_TIMEOUT_MS,
  authMs: AUTH_TIMEOUT_MS,
  bodyIdleMs: BODY_IDLE_TIMEOUT_MS,
  listingMs: LISTING_TIMEOUT_MS,
  tlsUpgradeMs: TLS_UPGRADE_TIMEOUT_MS,
  quitMs: QUIT_TIMEOUT_MS,
};

/**
 * The greeting on a plain connection (pop3://, before STLS): a server that greets at all does
 * so at once, and one that stays silent is most likely waiting for a TLS handshake (an
 * implicit-TLS port); saying so after 5 s beats waiting GREETING_TIMEOUT_MS.
 */
export const PLAIN_GREETING_TIMEOUT_MS = 5_000;

/** A line of the protocol exchange for tracing; secrets are already replaced by `****`. */
export interface Pop3TraceEvent {
  direction: 'client' | 'server' | 'info';
  line: string;
}

export interface Pop3ClientOptions {
  host: string;
  /** Default 995 for implicit TLS, 110 otherwise. */
  port?: number;
  /** Default 'implicit'. */
  tls?: TlsMode;
  tlsOptions?: Pop3TlsOptions;
  timeouts?: Partial<Pop3Timeouts>;
  /**
   * Commands in flight when the server advertises PIPELINING (RFC 2449). 1 means lock-step.
   * Default 512 (DEFAULT_PIPELINE_WINDOW).
   */
  pipelineWindow?: number;
  /** Use PIPELINING when advertised (default true). False forces lock-step. */
  pipelining?: boolean;
  /** Longest status line accepted. */
  maxStatusLineBytes?: number;
  /** Largest collected listing (CAPA, LIST, UIDL). */
  maxListingBytes?: number;
  /** Bytes a message stream buffers before the socket is paused. */
  bodyHighWaterMark?: number;
  /**
   * Bytes of messages received whole and not yet taken by the consumer of `retrieve()` before
   * the socket is paused. Default RECEIVED_AHEAD_MAX_BYTES.
   */
  receivedAheadBytes?: number;
  /** Aborting destroys the connection and rejects everything pending with ABORTED. */
  signal?: AbortSignal;
  /**
   * Epoch ms (`Date.now()`): a hard bound on the whole session, from dialling on. When it
   * passes, the connection is destroyed and everything pending is rejected with ABORTED
   * ("deadline"), whatever the server is sending: nothing after the last answered QUIT is
   * committed on the server.
   */
  deadline?: number;
  /** Protocol trace: commands and status lines, never bodies, never secrets. */
  trace?: (event: Pop3TraceEvent) => void;
}

export interface RetrieveItem {
  number: number;
  /** Size from LIST, used to bound the bytes in flight. */
  size?: number;
}

export interface RetrieveOptions {
  /** Commands ahead of the consumer (default: the pipeline window). */
  lookahead?: number;
  /**
   * Bytes in flight (by LIST size): beyond the first message ahead, a RETR is sent only if its
   * message fits within this with those ahead. Default 8 MiB.
   */
  maxBytesAhead?: number;
  /** TOP n lines instead of RETR. */
  topLines?: number;
  /**
   * Asked before each item is requested (the RETR sent); false ends the requests there: the
   * items requested already are still yielded, the rest never are. For a caller's budgets
   * (messages, bytes, time), decided before bytes cross the wire rather than after.
   */
  admit?: (item: RetrieveItem) => boolean;
  /**
   * Receive messages whose size (`RetrieveItem.size`, from LIST) is at most this many bytes
   * whole before yielding them, as `body` (copied into one buffer of the listed size as they
   * arrive), without a stream for each: for a mailbox of small messages the streams were most
   * of the client's work. Bytes held this way are bounded like streamed ones (by the sizes in
   * flight): a message that runs past its listed size by more than COLLECT_SLACK_BYTES is
   * yielded as a stream after all.
   */
  collectUpTo?: number;
}
