/** What one drain run did and why it stopped. */
import type { Pop3ErrorCode, Pop3Phase } from '../pop3/index.js';
import type { DrainErrorCode, DrainPhase } from './errors.js';
import type { RefetchSummary } from './refetch.js';

/**
 * Why a run stopped. The first group is a normal end; `retryLater` marks the ones where the
 * mailbox was busy or the server asked to come back; the rest are failures.
 */
export type StopReason =
  | 'complete'
  | 'deadline'
  | 'max-messages'
  | 'max-bytes'
  | 'cancelled'
  | 'dry-run'
  // busy: retry later, not a failure
  | 'busy'
  | 'in-use'
  | 'login-delay'
  // needs an operator
  | 'uidl-reset-suspected'
  // failures
  | 'auth-failed'
  | 'tls-failed'
  | 'connection-failed'
  | 'connection-lost'
  | 'server-error'
  | 'protocol-error'
  | 'store-failed'
  | 'ledger-failed'
  | 'events-failed'
  | 'credentials-failed'
  | 'config-invalid'
  | 'lease-lost'
  | 'error';

export const NORMAL_STOPS: ReadonlySet<StopReason> = new Set(['complete', 'deadline', 'max-messages', 'max-bytes', 'cancelled', 'dry-run']);
export const RETRY_LATER_STOPS: ReadonlySet<StopReason> = new Set(['busy', 'in-use', 'login-delay']);

/** A failure's code: the POP3 client's or the drain's (adapters map theirs to the drain's). */
export type FailureCode = Pop3ErrorCode | DrainErrorCode;
/** Where it happened: in the POP3 session, or in a step of the drain. */
export type FailurePhase = Pop3Phase | DrainPhase;

export interface DrainFailure {
  uidl?: string;
  code: FailureCode;
  phase: FailurePhase;
  message: string;
  retryable: boolean;
  /** The likely fix, one line, when the error knows it (Pop3Error.hint). */
  hint?: string;
}

export interface PlannedMessage {
  number: number;
  uidl: string;
  size: number;
}

export interface DrainReport {
  mailboxId: string;
  runId: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  stopReason: StopReason;
  /** Messages remain that this run did not fetch (budget, cancellation, failure). */
  moreRemaining: boolean;
  /** The mailbox was busy or the server asked to come back later: not a failure. */
  retryLater: boolean;
  /** No failure of any kind (a normal stop and no per-message failures). */
  ok: boolean;
  serverMessages: number;
  serverBytes: number;
  /** Already in the ledger before this run. */
  alreadyKnown: number;
  fetched: number;
  fetchedBytes: number;
  /** Skipped this run (over the size cap): announced with `Email Skipped`, never fetched. */
  skipped: number;
  /** Events published this run (stored and skipped, new or re-announced). */
  announced: number;
  /** Of those, messages stored by an earlier run whose event had not gone out. */
  reannounced: number;
  /** Deleted from the server by this run's QUIT. */
  deleted: number;
  /**
   * Marked deleted, but the server closed the connection without answering QUIT: RFC 1939
   * deletes only in the UPDATE state that +OK confirms. The next run records which are gone.
   */
  unconfirmedDeletes: number;
  /**
   * The server announced EXPIRE 0 (RFC 2449): it deletes each message once retrieved, so a
   * keep or keep-days policy could not hold (the drain warns before fetching).
   */
  serverDeletesRetrieved: boolean;
  /** With a login delay: the seconds the server asks for between logins (CAPA LOGIN-DELAY). */
  retryAfterSeconds?: number;
  /** Stored but not announced when the run ended (the next run announces them). */
  pendingAnnouncements: number;
  /** Messages still to fetch when the run stopped. */
  remaining: number;
  /**
   * Listed messages known only from a seen-list `popdrain import` recorded: left on the server,
   * never fetched and never deleted (no copy was stored by popdrain; `--refetch` fetches them).
   * Present when there are any.
   */
  importedLeft?: number;
  /**
   * With --refetch: how many stored messages were retrieved again, how many were the same bytes
   * (or restored to a store that had lost its copy), and each difference. Nothing stored is
   * replaced; each is announced again under its event's id.
   */
  refetch?: RefetchSummary;
  /** Whether the server offered UIDL (otherwise header digests stood in for UIDLs). */
  uidlSupported: boolean;
  failures: DrainFailure[];
  /** The error that ended the run, when one did. */
  error?: DrainFailure;
  /** Seconds since the mailbox has had undrained messages (0 when drained). */
  backlogAgeSeconds: number;
  /** With dry-run: what a run would do. */
  plan?: { fetch: PlannedMessage[]; skip: PlannedMessage[]; delete: PlannedMessage[]; announce: number };
}
