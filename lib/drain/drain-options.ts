/** What the caller of `drainMailbox` decides: the run's budget and options, and its progress reports. */
import type { Pop3ClientOptions, Pop3TraceEvent } from '../pop3/index.js';

export interface DrainBudget {
  /**
   * Epoch ms: no new message is requested when what is in flight could not arrive by then, and
   * none is started after it; then QUIT.
   */
  deadline?: number;
  /**
   * Epoch ms: a hard bound on the whole session, from connecting on: the connection is closed
   * without QUIT (nothing deleted), whatever is in flight. Default: `deadline` + 2 s
   * (plan.ts, QUIT_GRACE_MS).
   */
  hardDeadline?: number;
  maxMessages?: number;
  maxBytes?: number;
}

export interface DrainProgress {
  phase: 'connecting' | 'listing' | 'fetching' | 'finishing';
  serverMessages: number;
  toFetch: number;
  toFetchBytes: number;
  fetched: number;
  fetchedBytes: number;
}

export interface DrainOptions {
  runId?: string;
  /** Graceful stop (SIGINT/SIGTERM): no new messages; those in flight finish; QUIT. */
  signal?: AbortSignal;
  /** Immediate stop: the session is closed without QUIT (nothing is deleted). */
  hardSignal?: AbortSignal;
  /** Lease duration; renewed every third of it while the run lasts. Default 5 min. */
  leaseTtlMs?: number;
  /**
   * Messages open in the store at once (spooled or being committed); a message's slot is freed
   * when its store commit settles, before it is recorded and announced. Default 8.
   */
  storeConcurrency?: number;
  /** Ledger entries of messages deleted from the server expire after this. Default 30 days. */
  retentionDays?: number;
  /** List what would be fetched, skipped and deleted; change nothing. */
  dryRun?: boolean;
  /**
   * Retrieve the messages the ledger holds as stored again (within the budget): each is written
   * to the store as a new one would be, which keeps what it holds (so the store must refuse to
   * overwrite: an MDA cannot, and would get them all again), compared with the ledger's sha256,
   * reported in `report.refetch`, and announced again under its event's id. Messages known only
   * from an imported seen-list are fetched as new.
   */
  refetch?: boolean;
  /** Protocol trace (secrets redacted by the client). */
  trace?: (event: Pop3TraceEvent) => void;
  onProgress?: (progress: DrainProgress) => void;
  /** Overrides for the POP3 client (timeouts, pipeline window). */
  pop3?: Partial<Pick<Pop3ClientOptions, 'timeouts' | 'pipelineWindow' | 'pipelining'>>;
  /**
   * Asked with the listed UIDLs before anything is settled, planned or fetched; a rejection
   * stops the run there (after QUIT), with the error as the run's (e.g. the CLI's check that
   * the mailbox is not already drained under another id).
   */
  checkListing?: (uidls: readonly string[]) => Promise<void>;
  /** Publish the `Mailbox Drained` summary event (default true). */
  publishSummary?: boolean;
}
