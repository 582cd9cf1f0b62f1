/**
 * What every part of one run shares: the mailbox, the ports, a logger that names the mailbox,
 * the counters and the failures the report is made of. Created once per run by drainMailbox.
 */
import type { Pop3Client } from '../pop3/index.js';
import type { DrainOptions, DrainProgress } from './drain-options.js';
import { describeError, isDrainError } from './errors.js';
import { failureOf } from './failures.js';
import type { KnownUidls } from './known-on-server.js';
import type { MailboxConfig } from './mailbox.js';
import type { ServerMessage } from './plan.js';
import { ignoreLogRecord, type Clock, type DrainLogger, type DrainPorts, type LogFields } from './ports.js';
import type { RefetchSummary } from './refetch.js';
import type { DrainFailure } from './report.js';

/** The run's figures, each counted in one place; the report is made from them. */
export interface RunCounters {
  /** Listed messages the run can identify (each UIDL once). */
  serverMessages: ServerMessage[];
  uidlSupported: boolean;
  alreadyKnown: number;
  toFetch: number;
  toFetchBytes: number;
  fetched: number;
  fetchedBytes: number;
  /** Bytes received of messages cut off at the size cap (not stored; they count against the byte budget). */
  overCapBytes: number;
  overCapMessages: number;
  skipped: number;
  announced: number;
  reannounced: number;
  deleted: number;
  /** Marked deleted, but the server closed without answering QUIT: the next run settles them. */
  unconfirmedDeletes: number;
  /** The server announced EXPIRE 0: it deletes what is retrieved, whatever the policy. */
  serverDeletesRetrieved: boolean;
  /** Messages still to fetch when the run stopped. */
  remaining: number;
  /** Listed messages known only from an imported seen-list: left on the server. */
  importedLeft: number;
  /** With --refetch: what the stored messages retrieved again showed. */
  refetch: RefetchSummary | undefined;
  /** Store or ledger failures in a row (reset by a successful ledger write). */
  consecutiveBackendFailures: number;
  /**
   * UIDLs on the server the ledger knows at the end of the run (the UIDL-reset guard's figure):
   * empty until the listing is triaged, then the known listed UIDLs (known-on-server.ts).
   */
  knownAfterRun: KnownUidls;
  /** Recorded but not (yet) announced. */
  pendingUidls: Set<string>;
}

export function newCounters(): RunCounters {
  return {
    serverMessages: [],
    uidlSupported: true,
    alreadyKnown: 0,
    toFetch: 0,
    toFetchBytes: 0,
    fetched: 0,
    fetchedBytes: 0,
    overCapBytes: 0,
    overCapMessages: 0,
    skipped: 0,
    announced: 0,
    reannounced: 0,
    deleted: 0,
    unconfirmedDeletes: 0,
    serverDeletesRetrieved: false,
    remaining: 0,
    importedLeft: 0,
    refetch: undefined,
    consecutiveBackendFailures: 0,
    knownAfterRun: new Set(),
    pendingUidls: new Set(),
  };
}

export interface RunContext {
  readonly mailbox: MailboxConfig;
  readonly ports: DrainPorts;
  readonly options: DrainOptions;
  readonly clock: Clock;
  readonly log: DrainLogger;
  readonly runId: string;
  readonly counters: RunCounters;
  readonly failures: DrainFailure[];
  /** The POP3 session, once connected. */
  client: Pop3Client | undefined;
  /** Set when renewing the lease failed: no new message, no DELE. */
  leaseLost: boolean;
  /** The ledger was found lost: what the store already holds is recorded as announced, not announced again. */
  ledgerLost: boolean;
  /** The credentials' secrets once loaded: scrubbed from logs and the report. */
  readonly secrets: string[];
}

/** The ports' logger (or silence), every record naming the mailbox. */
export function mailboxLogger(base: DrainLogger, mailboxId: string): DrainLogger {
  // Descriptors, not a spread: a field made safe lazily (outside-text.ts) stays lazy.
  const withMailbox = (fields?: LogFields): LogFields =>
    fields === undefined ? { mailboxId } : Object.defineProperties<LogFields>({ mailboxId }, Object.getOwnPropertyDescriptors(fields));
  const level = (write: DrainLogger['debug']): DrainLogger['debug'] =>
    write === ignoreLogRecord ? ignoreLogRecord : (m, f) => write(m, withMailbox(f));
  return { debug: level(base.debug), info: level(base.info), warn: level(base.warn), error: level(base.error) };
}

/** A message was not stored (or not recorded): reported; it stays on the server for the next run. */
export function noteBackendFailure(ctx: RunContext, error: unknown, phase: 'store' | 'ledger', uidl: string): void {
  ctx.failures.push(failureOf(error, phase, uidl));
  if (isDrainError(error) && (error.code === 'STORE_FAILED' || error.code === 'LEDGER_FAILED')) {
    ctx.counters.consecutiveBackendFailures += 1;
  }
  ctx.log.warn('message not stored; it stays on the server for the next run', { uidl, error: describeError(error) });
}

export function reportProgress(ctx: RunContext, phase: DrainProgress['phase']): void {
  const c = ctx.counters;
  ctx.options.onProgress?.({
    phase,
    serverMessages: c.serverMessages.length,
    toFetch: c.toFetch,
    toFetchBytes: c.toFetchBytes,
    fetched: c.fetched,
    fetchedBytes: c.fetchedBytes,
  });
}
