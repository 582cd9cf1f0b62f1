/**
 * The drain's ports: what the engine needs from the outside world, as small interfaces.
 * Implementations live in lib/adapters/aws (S3, DynamoDB, EventBridge, Secrets Manager) and
 * lib/adapters/local (files, a crash-safe local ledger, JSON lines). The engine never imports
 * an SDK; adapters turn their failures into `DrainError`s.
 */
import type { Writable } from 'node:stream';
import type { Pop3Credentials } from '../pop3/index.js';
import type { DrainEvent } from './events.js';
import type { DeletePolicy, MailboxConfig } from './mailbox.js';
import type { StopReason } from './report.js';

// -------------------------------------------------------------------------------------------
// Message store

/** Where a stored message lives, as events and reports name it. */
export type StoreRef =
  | { type: 's3'; bucket: string; key: string; versionId?: string }
  | { type: 'file'; path: string }
  /**
   * Handed to a mail delivery agent (`--mda`): `program` is the command's program (never its
   * arguments), `key` the store key the message was delivered under.
   */
  | { type: 'mda'; program: string; key: string };

export interface StoredObject {
  ref: StoreRef;
  /** True when an identical object was already there (a retry after a crash): nothing was written. */
  existed: boolean;
}

export interface MessageSummary {
  /** Hex sha256 of exactly the bytes written. */
  sha256: string;
  /** Byte count of exactly the bytes written. */
  size: number;
  /** Small string metadata to attach to the object (S3 user metadata); ASCII values only. */
  metadata: Record<string, string>;
}

/** One message being written. The engine writes the exact bytes into `stream`, then commits. */
export interface MessageWriter {
  readonly stream: Writable;
  /**
   * After `stream` finished: make the message durable under its key, at most once. If an object
   * already exists under the key with the same sha256, succeed with `existed: true`; with a
   * different sha256, throw DrainError STORE_CONFLICT. Never overwrites.
   */
  commit(summary: MessageSummary): Promise<StoredObject>;
  /** Throw away what was written (after an error or when the run stops). Never throws. */
  abort(): Promise<void>;
}

export interface MessageStore {
  /** Start writing the message stored under `key` (see keys.ts: derived from mailbox and UIDL). */
  open(key: string, info: { mailboxId: string; uidl: string; expectedSize?: number }): Promise<MessageWriter>;
  /**
   * Optional: store a message whose bytes are all in memory (the engine receives small messages
   * whole), with the contract of `open`, writing the bytes and `commit`, in one call. The bytes
   * are the concatenation of `chunks` (which the store must not modify); `summary` describes
   * them. Resolves once the message is durable under `key` (`existed` as for commit); throws
   * DrainError STORE_FAILED or STORE_CONFLICT as commit does. Without it, the engine streams.
   */
  put?(key: string, info: { mailboxId: string; uidl: string }, chunks: readonly Buffer[], summary: MessageSummary): Promise<StoredObject>;
  /**
   * Optional: messages of this mailbox are about to come (the engine calls it once it holds the
   * lease, while it connects). A store may get ready (create folders, remove leftovers) so the
   * first message does not wait for that. A failure here is not reported: storing reports it.
   */
  prepareMailbox?(mailboxId: string): Promise<void>;
  /**
   * Optional: many messages are likely coming (a first drain of a mailbox): get ready to write
   * them, e.g. start a thread the first commit would otherwise wait for. A hint only: nothing
   * waits for it, it never fails, and it must not keep an idle process alive.
   */
  warmUp?(): void;
  /**
   * Optional: whether the store already holds messages of this mailbox. Asked when the ledger
   * knows nothing of a mailbox that has mail, to tell a lost ledger from a first run.
   */
  holdsMessages?(mailboxId: string): Promise<boolean>;
  /** Where `key` is or would be stored, for events about it. */
  refFor(key: string): StoreRef;
}

// -------------------------------------------------------------------------------------------
// UIDL ledger

export type LedgerStatus =
  /** In the store and recorded; the event has not been confirmed as published. */
  | 'stored'
  /** Stored, recorded and announced: safe to delete from the server. */
  | 'announced'
  /** Not fetched (over the size cap), recorded so it is announced once, never deleted. */
  | 'skipped'
  /**
   * Seen by another client (its seen-list imported with `popdrain import`): never fetched by
   * popdrain, so no key, sha256 or event, and never deleted. Not fetched unless `--refetch`,
   * which stores it as new (a 'stored' entry then replaces it).
   */
  | 'imported';

export interface LedgerEntry {
  mailboxId: string;
  uidl: string;
  status: LedgerStatus;
  /** Store key (absent for skipped messages). */
  key?: string;
  sha256?: string;
  /** Bytes stored, or for skipped messages the size the server reported; 0 for imported ones (unknown). */
  size: number;
  /** Epoch ms the message was first recorded (keep-days counts from here). */
  firstSeenAt: number;
  announcedAt?: number;
  /** Epoch ms a QUIT committed its deletion from the server. */
  deletedAt?: number;
  /** Epoch seconds after which the entry may expire (DynamoDB TTL); set once deleted. */
  expiresAt?: number;
  /**
   * The event that announces it (stable id), kept so a later run can announce it again. Absent
   * only on 'imported' entries (nothing of theirs was announced).
   */
  event?: DrainEvent;
}

export type RecordOutcome =
  | { uidl: string; ok: true }
  /** Another run recorded this UIDL first; `existing` is what it recorded. */
  | { uidl: string; ok: false; conflict: LedgerEntry | undefined };

export interface Lease {
  mailboxId: string;
  owner: string;
  /** Epoch ms. */
  expiresAt: number;
}

export interface RunSummary {
  runId: string;
  startedAt: number;
  finishedAt: number;
  stopReason: StopReason;
  moreRemaining: boolean;
  fetched: number;
  fetchedBytes: number;
  skipped: number;
  deleted: number;
  failures: number;
  /** Messages on the server at the end of the run that the ledger knows (UIDL-reset guard). */
  knownOnServer: number;
  serverMessages: number;
  /** Stored but not yet announced, at the end of the run. */
  pendingAnnouncements: number;
}

export interface MailboxState {
  mailboxId: string;
  lastRun?: RunSummary;
  /**
   * Epoch ms a first run (no `lastRun` yet) began to fetch, written before it stored anything:
   * killed before its first ledger record, the next run must not take the messages it stored
   * for a lost ledger's (plan.ts ledgerLost).
   */
  firstRunStartedAt?: number;
  /** Epoch ms: end of the last run that stopped normally without failures (more may remain). */
  lastSuccessAt?: number;
  /** Since when the mailbox has had messages left undrained (for the backlog age metric). */
  backlogSince?: number;
  /** Set when the UIDL-reset guard stopped a run; cleared by a run that proceeds. */
  uidlResetTrippedAt?: number;
  /** Set by an operator (`popdrain status --accept-uidl-reset`): the next run may proceed once. */
  acceptUidlReset?: boolean;
  /**
   * UIDLs whose DELE a run sent just before QUIT, written before the QUIT: if the run dies
   * between QUIT and recording the deletions, the next run marks those no longer on the server
   * as deleted (so their entries expire).
   */
  pendingDeletes?: string[];
  /**
   * Set when a drain request for the mailbox is waiting or running (the scheduler claims it
   * before it enqueues, the drainer releases it when the chain of runs ends); it expires so a
   * lost message never blocks the mailbox for good.
   */
  requestMarker?: RequestMarker;
  /** Epoch ms before which the scheduler does not enqueue the mailbox (a failure's backoff). */
  nextAttemptAt?: number;
  /** Runs in a row that ended in a failure retrying soon cannot fix (reset by a success). */
  failureStreak?: number;
  /** The last such failure. */
  lastFailure?: RecordedFailure;
  /** Epoch ms a chain of continuations was ended at its depth cap (cleared by a run that completes). */
  chainCappedAt?: number;
}

/** A drain request outstanding for a mailbox: `token` names it (the tick that enqueued it). */
export interface RequestMarker {
  token: string;
  /** Epoch ms after which the marker no longer holds the mailbox. */
  expiresAt: number;
}

/** A failure as the mailbox state keeps it (no secrets: error messages never hold any). */
export interface RecordedFailure {
  /** Epoch ms. */
  at: number;
  stopReason: string;
  code: string;
  message: string;
}

export interface MailboxStateUpdate {
  lastRun?: RunSummary;
  firstRunStartedAt?: number | null;
  lastSuccessAt?: number;
  backlogSince?: number | null;
  uidlResetTrippedAt?: number | null;
  acceptUidlReset?: boolean | null;
  pendingDeletes?: string[] | null;
  nextAttemptAt?: number | null;
  failureStreak?: number | null;
  lastFailure?: RecordedFailure | null;
  chainCappedAt?: number | null;
  requestMarker?: RequestMarker | null;
}

/** What a run's lookup tells the ledger so it may answer kept messages from a summary. */
export interface LookupOptions {
  deletePolicy: DeletePolicy;
  /** Epoch ms. */
  now: number;
}

/**
 * How a ledger answers for one listed UIDL in a triage (UidlLedger.triage; the verdict of one
 * entry is `triageCode`, listing-triage.ts).
 */
export const TRIAGE = {
  /** No entry: a new message. */
  unknown: 0,
  /** Announced (or skipped and announced), and the policy keeps it on the server now: nothing to do. */
  kept: 1,
  /** Known only from an imported seen-list: left on the server. */
  imported: 2,
  /** Known, and the run may have something to do with it: its entry is in `entries`. */
  entry: 3,
} as const;

export type TriageCode = (typeof TRIAGE)[keyof typeof TRIAGE];

/** What a ledger knows of a listing, without an entry for each message the run leaves alone. */
export interface ListingTriage {
  /** One code (TRIAGE) per UIDL asked, in the order asked. */
  codes: Uint8Array;
  /** The entries of the UIDLs coded TRIAGE.entry, as `lookup` returns them. */
  entries: Map<string, LedgerEntry>;
}

export interface UidlLedger {
  /**
   * Take the mailbox's lease (a conditional write with an expiry) unless another owner holds
   * an unexpired one; then resolve undefined.
   */
  acquireLease(mailboxId: string, owner: string, ttlMs: number, now: number): Promise<Lease | undefined>;
  /** Extend a lease we hold; throws DrainError LEASE_HELD when it was lost. */
  renewLease(lease: Lease, ttlMs: number, now: number): Promise<Lease>;
  /** Give the lease up (only if still ours). */
  releaseLease(lease: Lease): Promise<void>;
  /** Who holds the lease now, if anyone (for schedulers that skip busy mailboxes). */
  leaseHolder(mailboxId: string, now: number): Promise<Lease | undefined>;

  getMailboxState(mailboxId: string): Promise<MailboxState>;
  updateMailboxState(mailboxId: string, update: MailboxStateUpdate): Promise<void>;
  /**
   * Set the mailbox's request marker (a conditional write) unless another token's unexpired
   * marker is there; the same token may claim again (a repeated tick, or a continuation moving
   * the expiry on). Resolves true when the marker is now `marker`.
   */
  claimRequestMarker(mailboxId: string, marker: RequestMarker, now: number): Promise<boolean>;
  /** Remove the request marker if it is still `token`'s (a newer one is left alone). */
  releaseRequestMarker(mailboxId: string, token: string): Promise<void>;

  /**
   * The entries of these UIDLs that exist (batched by the adapter). With `options` (and `uidls`
   * the server's whole listing), an adapter may answer the entries the policy keeps from a
   * summary: those have no key, sha256 or event (reading `event` throws).
   */
  lookup(mailboxId: string, uidls: readonly string[], options?: LookupOptions): Promise<Map<string, LedgerEntry>>;
  /**
   * Optional: the server's whole listing (`uidls`, each once) triaged under the run's policy
   * (`triageCode` of each UIDL's entry), with whole entries only for those coded TRIAGE.entry.
   * A rerun that finds nothing new then needs no entry at all. The engine asks it instead of
   * `lookup` unless it refetches (a refetch needs every stored message's entry).
   */
  triage?(mailboxId: string, uidls: readonly string[], options: LookupOptions): Promise<ListingTriage>;
  /**
   * Record new entries (status 'stored' or 'skipped'), each with a conditional write. An
   * existing 'imported' entry (a seen-list's, never stored) is replaced by the new one, not a
   * conflict: `--refetch` fetches such messages as new. (Only the local ledger holds imported
   * entries: `popdrain import` writes to it alone.)
   */
  record(entries: readonly LedgerEntry[]): Promise<RecordOutcome[]>;
  /** Mark entries announced (their events were published). */
  markAnnounced(mailboxId: string, uidls: readonly string[], at: number): Promise<void>;
  /** Mark entries deleted from the server (QUIT committed), expiring at `expiresAt` (epoch s). */
  markDeleted(mailboxId: string, uidls: readonly string[], at: number, expiresAt: number): Promise<void>;
  /** Entries stored but not announced (for `popdrain status`). */
  pending(mailboxId: string): Promise<LedgerEntry[]>;
}

// -------------------------------------------------------------------------------------------
// Events

export interface PublishOutcome {
  /** Ids (DrainEvent.id) the bus accepted. */
  published: string[];
  /** Ids that still failed after the sink's retries, with the reason. */
  failed: Array<{ id: string; reason: string }>;
}

export interface EventSink {
  /**
   * Publish events (the sink batches and retries as its transport needs). Per-event failures
   * are reported in the outcome, not thrown.
   */
  publish(events: readonly DrainEvent[]): Promise<PublishOutcome>;
}

// -------------------------------------------------------------------------------------------
// Credentials, clock, logging

export interface CredentialsProvider {
  /**
   * Credentials for the mailbox's login. `forceRefresh` asks for a fresh OAuth2 access token
   * (after the server refused a cached one).
   */
  get(mailbox: MailboxConfig, options?: { forceRefresh?: boolean }): Promise<Pop3Credentials>;
}

export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export type LogFields = Record<string, unknown>;

/** A small logger; the Lambdas pass Powertools' Logger, the CLI its own. Defaults to silence. */
export interface DrainLogger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

/**
 * The method of a logger that drops a level. A logger made of another (mailboxLogger,
 * safeLogger) passes it through unchanged, so a dropped record costs no fields object, no
 * scrubbing and no copy (a debug record per message was ~3 KB of garbage and ~15 µs).
 */
export const ignoreLogRecord = (_message: string, _fields?: LogFields): void => {};

export const silentLogger: DrainLogger = {
  debug: ignoreLogRecord,
  info: ignoreLogRecord,
  warn: ignoreLogRecord,
  error: ignoreLogRecord,
};

export interface DrainPorts {
  store: MessageStore;
  ledger: UidlLedger;
  events: EventSink;
  credentials: CredentialsProvider;
  clock?: Clock;
  logger?: DrainLogger;
}
