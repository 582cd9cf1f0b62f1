/**
 * drainMailbox: one run over one mailbox. For each new message, in server order:
 *
 *   RETR (streamed) -> sha256 + size + metadata as the bytes flow -> store (spooled, then a
 *   conditional commit under a key derived from mailbox id and UIDL) -> ledger record
 *   (conditional write) -> event published -> ledger marks it announced -> DELE when the
 *   policy says so; QUIT at the end commits the deletions.
 *
 * Small messages (most mail) are received whole instead of streamed, when the store takes a
 * message in one call (`MessageStore.put`): hashed and read for metadata at once, stored in one
 * call, with no stream per message.
 *
 * POP3 keeps streaming the next messages while earlier ones are committed (at most
 * `storeConcurrency` open in the store at once, and at most STORE_BYTES_IN_FLIGHT bytes of
 * messages received whole), recorded and announced (a bound on those fetched
 * but not yet announced); ledger writes and events go out in batches, and a message's steps
 * after the store continue in its batches' callbacks (no promise or async frame per step).
 * Whatever fails, and whenever the process dies, a message is deleted from the server only
 * after it was stored and announced, and a rerun neither loses nor duplicates it: a store
 * commit finds an identical object and reports it as existing, a recorded but unannounced
 * message is announced again with the same event id.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import {
  isPop3Error,
  Pop3Client,
  type ListEntry,
  type Pop3ClientOptions,
  type Pop3Credentials,
  type Pop3Error,
  type Pop3TraceEvent,
} from '../pop3/index.js';
import { Batcher, Semaphore } from './batcher.js';
import { describeError, DrainError, isDrainError } from './errors.js';
import {
  EVENT_SCHEMA_VERSION,
  type DrainEvent,
  type EmailSkippedDetail,
  type EmailStoredDetail,
  type MessageMetadata,
} from './events.js';
import { messageDigest, messageKeyForDigest, skippedEventId, storedEventId } from './keys.js';
import type { MailboxConfig } from './mailbox.js';
import { pumpMessage } from './message-pump.js';
import { createMetadataExtractor, readMetadata } from './metadata.js';
import {
  silentLogger,
  systemClock,
  type DrainLogger,
  type DrainPorts,
  type LedgerEntry,
  type Lease,
  type LogFields,
  type MailboxState,
  type MessageWriter,
  type PublishOutcome,
  type RecordOutcome,
  type RunSummary,
  type StoredObject,
} from './ports.js';
import { NORMAL_STOPS, RETRY_LATER_STOPS, type DrainFailure, type DrainReport, type PlannedMessage, type StopReason } from './report.js';
import { sha256Hex } from './sha256.js';

export interface DrainBudget {
  /** Epoch ms: no new message is started after this; those in flight finish, then QUIT. */
  deadline?: number;
  /** Epoch ms: everything is abandoned (connection closed without QUIT: nothing deleted). */
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
  /** Protocol trace (secrets redacted by the client). */
  trace?: (event: Pop3TraceEvent) => void;
  onProgress?: (progress: DrainProgress) => void;
  /** Overrides for the POP3 client (timeouts, pipeline window). */
  pop3?: Partial<Pick<Pop3ClientOptions, 'timeouts' | 'pipelineWindow' | 'pipelining'>>;
  /** Publish the `Mailbox Drained` summary event (default true). */
  publishSummary?: boolean;
}

const DEFAULT_LEASE_TTL_MS = 5 * 60_000;
const DEFAULT_STORE_CONCURRENCY = 8;
const DEFAULT_RETENTION_DAYS = 30;
const DAY_MS = 86_400_000;
/** Ledger and event batches: flushed when this full or after this long. */
const LEDGER_BATCH_ITEMS = 64;
/** The EventBridge sink splits these into PutEvents requests of 10. */
const EVENT_BATCH_ITEMS = 64;
const BATCH_DELAY_MS = 2;
/**
 * Messages fetched but not yet recorded and announced (their ledger entries and events wait in
 * the batches above; a message's bytes are not held once it is in the store): enough for
 * several full batches, and a bound that holds fetching back when the ledger or the bus is
 * slow. With many messages open in the store at once (a local store), four times that many:
 * 4 x 64 kept a local drain of small messages with 256 open in the store waiting on this bound
 * for a fifth of its time.
 */
const MIN_UNANNOUNCED_IN_FLIGHT = 4 * LEDGER_BATCH_ITEMS;
const UNANNOUNCED_PER_STORE_SLOT = 4;
/**
 * Messages the server lists at this size or less are received whole (no stream each) and go
 * to a store that offers `put` in one call.
 */
const WHOLE_MESSAGE_MAX_BYTES = 256 * 1024;
/**
 * Bytes of messages received whole that the store holds and has not made durable yet (with
 * the POP3 client's bound on bytes in flight, what a run of small messages holds in memory).
 * A message larger than this alone waits until the store holds nothing else.
 */
const STORE_BYTES_IN_FLIGHT = 32 * 1024 * 1024;
/** Deletions noted in the state before QUIT (beyond this, a crash in that window just leaves entries unexpired). */
const MAX_PENDING_DELETES = 2_000;
/** After this many consecutive store or ledger failures the run stops: the backend is down. */
const MAX_CONSECUTIVE_FAILURES = 3;

interface ServerMessage {
  number: number;
  size: number;
  uidl: string;
}

/** Messages on their way through the store, the ledger and the bus: how many, and the first unexpected error. */
class InFlight {
  private count = 0;
  private failure: { error: unknown } | undefined;
  private wake: (() => void) | undefined;

  start(): void {
    this.count += 1;
  }

  end(): void {
    this.count -= 1;
    if (this.count === 0 && this.wake !== undefined) {
      const wake = this.wake;
      this.wake = undefined;
      wake();
    }
  }

  fail(error: unknown): void {
    this.failure ??= { error };
  }

  /** Resolves when none is left; rejects with the first error `fail` was given. */
  async idle(): Promise<void> {
    if (this.count > 0) await new Promise<void>((resolve) => (this.wake = resolve));
    if (this.failure !== undefined) throw this.failure.error;
  }
}

/** Stop taking new messages; carries the reason. */
class StopRun extends Error {
  constructor(
    readonly reason: StopReason,
    readonly failure?: DrainFailure,
  ) {
    super(reason);
  }
}

function failureOf(error: unknown, uidl?: string): DrainFailure {
  if (isDrainError(error) || isPop3Error(error)) {
    return {
      ...(uidl === undefined ? {} : { uidl }),
      code: error.code,
      phase: error.phase,
      message: error.message,
      retryable: error.retryable,
    };
  }
  return { ...(uidl === undefined ? {} : { uidl }), code: 'UNEXPECTED', phase: 'unknown', message: describeError(error), retryable: false };
}

function stopReasonForPop3(error: Pop3Error): StopReason {
  switch (error.code) {
    case 'AUTH_FAILED':
    case 'MECHANISM_UNAVAILABLE':
      return 'auth-failed';
    case 'TLS_FAILED':
    case 'STLS_UNAVAILABLE':
      return 'tls-failed';
    case 'IN_USE':
      return 'in-use';
    case 'LOGIN_DELAY':
      return 'login-delay';
    case 'CONNECT_FAILED':
    case 'CONNECT_TIMEOUT':
    case 'GREETING_TIMEOUT':
      return 'connection-failed';
    case 'CONNECTION_CLOSED':
    case 'COMMAND_TIMEOUT':
    case 'BODY_TIMEOUT':
      return 'connection-lost';
    case 'SYS_TEMP':
    case 'SYS_PERM':
    case 'COMMAND_FAILED':
      return 'server-error';
    case 'PROTOCOL_ERROR':
    case 'LIMIT_EXCEEDED':
      return 'protocol-error';
    case 'ABORTED':
      return 'cancelled';
    default:
      return 'error';
  }
}

function stopReasonForDrain(error: DrainError): StopReason {
  switch (error.code) {
    case 'STORE_FAILED':
    case 'STORE_CONFLICT':
      return 'store-failed';
    case 'LEDGER_FAILED':
    case 'LEDGER_CONFLICT':
      return 'ledger-failed';
    case 'EVENTS_FAILED':
      return 'events-failed';
    case 'CREDENTIALS_FAILED':
      return 'credentials-failed';
    case 'CONFIG_INVALID':
      return 'config-invalid';
    case 'LEASE_HELD':
      return 'lease-lost';
    default:
      return 'error';
  }
}

const ISO = (ms: number): string => new Date(ms).toISOString();

function bodyBytes(body: readonly Buffer[]): number {
  let n = 0;
  for (const chunk of body) n += chunk.length;
  return n;
}

/**
 * Drain one mailbox within a budget. Never throws for anything the run can meet (server,
 * network, store, ledger, events, credentials): the report says what happened.
 */
export async function drainMailbox(
  mailbox: MailboxConfig,
  ports: DrainPorts,
  budget: DrainBudget = {},
  options: DrainOptions = {},
): Promise<DrainReport> {
  const run = new DrainRun(mailbox, ports, budget, options);
  return run.execute();
}

class DrainRun {
  private readonly clock;
  private readonly log: DrainLogger;
  private readonly runId: string;
  private readonly startedAt: number;
  private client: Pop3Client | undefined;
  private lease: Lease | undefined;
  private leaseTimer: NodeJS.Timeout | undefined;
  private hardTimer: NodeJS.Timeout | undefined;
  private leaseLost = false;
  private state: MailboxState | undefined;
  private readonly failures: DrainFailure[] = [];
  private stopReason: StopReason = 'complete';
  private runError: DrainFailure | undefined;
  private serverMessages: ServerMessage[] = [];
  private uidlSupported = true;
  private alreadyKnown = 0;
  private fetched = 0;
  private fetchedBytes = 0;
  private skipped = 0;
  private announced = 0;
  private reannounced = 0;
  private deleted = 0;
  private unconfirmedDeletes = 0;
  private serverDeletesRetrieved = false;
  private retryAfterSeconds: number | undefined;
  private remaining = 0;
  private toFetchBytes = 0;
  private toFetchCount = 0;
  private knownAfterRun = new Set<string>();
  private readonly pendingUidls = new Set<string>();
  private readonly byUidl = new Map<string, ServerMessage>();
  private consecutiveBackendFailures = 0;
  /** The state's pendingDeletes are recorded (by this run's QUIT or its start) and can go. */
  private pendingDeletesSettled = false;
  private plan: DrainReport['plan'];
  private readonly recordBatcher: Batcher<LedgerEntry, RecordOutcome>;
  private readonly publishBatcher: Batcher<DrainEvent, { ok: boolean; reason?: string }>;
  private readonly announcedBatcher: Batcher<string, void>;
  private readonly deleRequests: Array<{ message: ServerMessage; promise: Promise<boolean> }> = [];

  constructor(
    private readonly mailbox: MailboxConfig,
    private readonly ports: DrainPorts,
    private readonly budget: DrainBudget,
    private readonly options: DrainOptions,
  ) {
    this.clock = ports.clock ?? systemClock;
    const base = ports.logger ?? silentLogger;
    const withMailbox = (fields?: LogFields): LogFields => ({ mailboxId: mailbox.id, ...fields });
    this.log = {
      debug: (m, f) => base.debug(m, withMailbox(f)),
      info: (m, f) => base.info(m, withMailbox(f)),
      warn: (m, f) => base.warn(m, withMailbox(f)),
      error: (m, f) => base.error(m, withMailbox(f)),
    };
    this.runId = options.runId ?? randomUUID();
    this.startedAt = this.clock.now();
    const ledger = ports.ledger;
    // A continuation that fails even in its reject path (a defect) is reported, not thrown.
    const defect = (error: unknown): void => {
      this.failures.push(failureOf(error));
    };
    this.recordBatcher = new Batcher((entries) => ledger.record(entries), LEDGER_BATCH_ITEMS, BATCH_DELAY_MS, defect);
    this.announcedBatcher = new Batcher(
      async (uidls) => {
        await ledger.markAnnounced(mailbox.id, uidls, this.clock.now());
        return uidls.map(() => undefined);
      },
      LEDGER_BATCH_ITEMS,
      BATCH_DELAY_MS,
      defect,
    );
    this.publishBatcher = new Batcher(
      async (events) => {
        const outcome: PublishOutcome = await ports.events.publish(events);
        const ok = new Set(outcome.published);
        const failed = new Map(outcome.failed.map((f) => [f.id, f.reason]));
        return events.map((e) => (ok.has(e.id) ? { ok: true } : { ok: false, reason: failed.get(e.id) ?? 'not confirmed by the event sink' }));
      },
      EVENT_BATCH_ITEMS,
      BATCH_DELAY_MS,
      defect,
    );
  }

  async execute(): Promise<DrainReport> {
    const dryRun = this.options.dryRun === true;
    this.log.info('drain started', { runId: this.runId, host: this.mailbox.host, dryRun });
    try {
      if (!dryRun) {
        const acquired = await this.acquireLease();
        if (!acquired) {
          this.stopReason = 'busy';
          return this.finish();
        }
      }
      // The store gets ready (its folder, say) while the session is set up.
      if (!dryRun) this.ports.store.prepareMailbox?.(this.mailbox.id).catch(() => undefined);
      this.state = await this.ports.ledger.getMailboxState(this.mailbox.id);
      await this.connect();
      await this.listMessages();
      await this.settlePendingDeletes();
      const known = await this.ports.ledger.lookup(
        this.mailbox.id,
        this.serverMessages.map((m) => m.uidl),
      );
      if (await this.uidlResetSuspected(known)) return this.finish();
      const plan = this.planRun(known);
      if (dryRun) {
        this.plan = {
          fetch: plan.fetch.map(planned),
          skip: plan.skip.map(planned),
          delete: plan.deleteKnown.map(planned),
          announce: plan.reannounce.length,
        };
        this.remaining = plan.fetch.length;
        this.stopReason = 'dry-run';
        await this.quit();
        return this.finish();
      }
      this.armHardDeadline();
      // Announce what an earlier run stored but could not announce, and skip the oversized.
      const side = [
        ...plan.reannounce.map(async (entry) => {
          // A re-announced Email Skipped keeps its entry 'skipped': that message was never stored
          // and is never deleted (deletableOnceAnnounced is false for it).
          if ((await this.announce(entry, true)) && this.deletableOnceAnnounced(entry)) {
            this.requestDele(this.byUidl.get(entry.uidl)!);
          }
        }),
        ...plan.skip.map((m) => this.recordSkipped(m)),
      ];
      for (const m of plan.deleteKnown) this.requestDele(m);
      try {
        await this.fetchAll(plan.fetch);
      } finally {
        await Promise.all(side);
      }
      await this.flushAll();
      await this.quit();
    } catch (error) {
      this.handleRunError(error);
      // Deletions already requested are of stored and announced messages: commit them when
      // the session is still alive (e.g. the store failed, not the server).
      if (this.client !== undefined && !this.client.isClosed) {
        await this.flushAll().catch(() => undefined);
        await this.quit().catch(() => undefined);
      }
    } finally {
      this.cleanupTimers();
      this.client?.close();
    }
    return this.finish();
  }

  // -----------------------------------------------------------------------------------------
  // Set-up

  private async acquireLease(): Promise<boolean> {
    const ttl = this.options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
    this.lease = await this.ports.ledger.acquireLease(this.mailbox.id, this.runId, ttl, this.clock.now());
    if (this.lease === undefined) {
      this.log.info('mailbox is busy: another run holds its lease');
      return false;
    }
    this.leaseTimer = setInterval(() => {
      const current = this.lease;
      if (current === undefined) return;
      this.ports.ledger.renewLease(current, ttl, this.clock.now()).then(
        (renewed) => {
          this.lease = renewed;
        },
        (error: unknown) => {
          this.leaseLost = true;
          this.log.warn('lease lost; stopping', { error: describeError(error) });
        },
      );
    }, Math.max(1000, Math.floor(ttl / 3)));
    this.leaseTimer.unref();
    return true;
  }

  private armHardDeadline(): void {
    const hardSignal = this.options.hardSignal;
    if (hardSignal !== undefined) {
      const onAbort = (): void => {
        this.log.warn('stopped at once: abandoning the session (nothing is deleted)');
        this.client?.close();
      };
      if (hardSignal.aborted) onAbort();
      else hardSignal.addEventListener('abort', onAbort, { once: true });
    }
    const hard = this.budget.hardDeadline;
    if (hard === undefined) return;
    this.hardTimer = setTimeout(
      () => {
        this.log.warn('hard deadline reached: abandoning the session (nothing is deleted)');
        this.client?.close();
      },
      Math.max(0, hard - this.clock.now()),
    );
    this.hardTimer.unref();
  }

  private cleanupTimers(): void {
    if (this.leaseTimer !== undefined) clearInterval(this.leaseTimer);
    if (this.hardTimer !== undefined) clearTimeout(this.hardTimer);
  }

  private progress(phase: DrainProgress['phase']): void {
    this.options.onProgress?.({
      phase,
      serverMessages: this.serverMessages.length,
      toFetch: this.toFetchCount,
      toFetchBytes: this.toFetchBytes,
      fetched: this.fetched,
      fetchedBytes: this.fetchedBytes,
    });
  }

  private async connect(): Promise<void> {
    this.progress('connecting');
    const m = this.mailbox;
    let credentials: Pop3Credentials = await this.ports.credentials.get(m);
    const options: Pop3ClientOptions = {
      host: m.host,
      port: m.port,
      tls: m.tls,
      ...(this.options.trace === undefined ? {} : { trace: this.options.trace }),
      ...(m.pipelineWindow === undefined ? {} : { pipelineWindow: m.pipelineWindow }),
      ...this.options.pop3,
    };
    if (m.tlsOptions !== undefined) {
      options.tlsOptions = {
        ...(m.tlsOptions.caPem === undefined ? {} : { ca: m.tlsOptions.caPem }),
        ...(m.tlsOptions.servername === undefined ? {} : { servername: m.tlsOptions.servername }),
        ...(m.tlsOptions.minVersion === undefined ? {} : { minVersion: m.tlsOptions.minVersion }),
      };
    }
    for (let attempt = 1; ; attempt++) {
      const client = await Pop3Client.connect(options);
      this.client = client;
      try {
        await client.login(credentials, { mechanism: m.mechanism });
        this.log.debug('logged in', { method: client.authMethod, pipelining: client.pipelining });
        // RFC 2449 EXPIRE 0: the server deletes what is retrieved, whatever the policy says.
        const expire = client.capabilities.expire;
        if (expire?.kind === 'days' && expire.days === 0 && m.deletePolicy.mode !== 'delete') {
          this.serverDeletesRetrieved = true;
          this.log.warn(`the server announces EXPIRE 0: it deletes every message once retrieved, so the ${m.deletePolicy.mode} policy cannot hold`);
        }
        return;
      } catch (error) {
        client.close();
        // A cached OAuth2 access token may have expired: get a fresh one, once.
        if (attempt === 1 && 'accessToken' in credentials && isPop3Error(error) && error.code === 'AUTH_FAILED') {
          this.log.info('token refused; refreshing it once');
          credentials = await this.ports.credentials.get(m, { forceRefresh: true });
          continue;
        }
        throw error;
      }
    }
  }

  /**
   * A run that died after QUIT but before recording its deletions left them in the state: those
   * no longer on the server were deleted; record it so their entries expire.
   */
  private async settlePendingDeletes(): Promise<void> {
    const pending = this.state?.pendingDeletes;
    if (pending === undefined || pending.length === 0 || this.options.dryRun === true) return;
    const gone = pending.filter((uidl) => !this.byUidl.has(uidl));
    if (gone.length > 0) {
      const now = this.clock.now();
      const retention = this.options.retentionDays ?? DEFAULT_RETENTION_DAYS;
      await this.ports.ledger.markDeleted(this.mailbox.id, gone, now, Math.floor((now + retention * DAY_MS) / 1000));
      this.log.info('recorded deletions of an interrupted run', { count: gone.length });
    }
    this.pendingDeletesSettled = true;
  }

  private async listMessages(): Promise<void> {
    this.progress('listing');
    const client = this.client!;
    const [list, uidls] = await Promise.all([
      client.list(),
      client.uidl().catch((error: unknown) => {
        if (isPop3Error(error) && error.code === 'COMMAND_FAILED') return undefined;
        throw error;
      }),
    ]);
    // The client has checked both listings (numbers from 1, each once).
    if (uidls !== undefined) {
      const byNumber = new Map(uidls.map((u) => [u.number, u.uid]));
      const messages: ServerMessage[] = [];
      for (const e of list) {
        const uidl = byNumber.get(e.number);
        // This message cannot be told apart from the others: it is left alone (not fetched,
        // not deleted) and reported; the rest of the mailbox drains.
        if (uidl === undefined) this.leaveAlone(e.number, undefined, `server listed message ${e.number} without a UIDL`);
        else messages.push({ number: e.number, size: e.size, uidl });
      }
      this.serverMessages = messages;
    } else {
      this.uidlSupported = false;
      this.log.warn('server does not support UIDL: identifying messages by a digest of their headers and size');
      this.serverMessages = await this.headerDigestIds(list);
    }
    // RFC 1939: a unique-id belongs to one message. Two messages sharing one cannot be told
    // apart (which one did the ledger record?), so neither is fetched or deleted this run.
    const count = new Map<string, number>();
    for (const m of this.serverMessages) count.set(m.uidl, (count.get(m.uidl) ?? 0) + 1);
    const unique: ServerMessage[] = [];
    for (const m of this.serverMessages) {
      if (count.get(m.uidl)! > 1) this.leaveAlone(m.number, m.uidl, `server reported the UIDL "${m.uidl}" for ${count.get(m.uidl)} messages`);
      else unique.push(m);
    }
    this.serverMessages = unique;
    for (const m of unique) this.byUidl.set(m.uidl, m);
  }

  /** A listed message the run cannot identify safely: reported, never fetched or deleted. */
  private leaveAlone(number: number, uidl: string | undefined, message: string): void {
    this.failures.push({ ...(uidl === undefined ? {} : { uidl }), code: 'PROTOCOL_ERROR', phase: 'list', message: `${message}; left on the server`, retryable: false });
    this.log.warn(`${message}; left on the server`, { number });
  }

  /**
   * Without UIDL (RFC 1939 optional): `TOP n 0` gives the header block; its sha256 plus the
   * size stands in for a UIDL. Identical header blocks of the same size are told apart by
   * their order. Limits (documented): a server that rewrites headers makes a message look
   * new; two identical messages whose order changes between runs may swap ids.
   */
  private async headerDigestIds(list: ListEntry[]): Promise<ServerMessage[]> {
    const out: ServerMessage[] = [];
    const seen = new Map<string, number>();
    const sizes = new Map(list.map((e) => [e.number, e]));
    for await (const m of this.client!.retrieve(list, { topLines: 0 })) {
      const hash = createHash('sha256');
      for await (const chunk of m.stream) hash.update(chunk as Buffer);
      const entry = sizes.get(m.number)!;
      const base = `~hdr-${hash.digest('hex').slice(0, 40)}-${entry.size}`;
      const n = (seen.get(base) ?? 0) + 1;
      seen.set(base, n);
      out.push({ number: m.number, size: entry.size, uidl: n === 1 ? base : `${base}-${n}` });
    }
    return out;
  }

  /** True when the run must stop because the server's UIDLs look reset. */
  private async uidlResetSuspected(known: Map<string, LedgerEntry>): Promise<boolean> {
    const guard = this.mailbox.uidlResetGuard;
    const last = this.state?.lastRun;
    if (!guard.enabled) return false;
    const recognized = this.serverMessages.filter((m) => known.has(m.uidl)).length;
    const unknown = this.serverMessages.length - recognized;
    // Once tripped, it stays tripped until an operator accepts the reset.
    const stillTripped = this.state?.uidlResetTrippedAt !== undefined;
    const suspicious =
      stillTripped ||
      (last !== undefined &&
        last.knownOnServer >= guard.minKnown &&
        recognized < last.knownOnServer * guard.minRecognizedFraction &&
        unknown > this.serverMessages.length / 2);
    if (!suspicious) return false;
    if (this.state?.acceptUidlReset === true) {
      this.log.warn('UIDL reset accepted by the operator: proceeding', { recognized, unknown, previouslyKnown: last?.knownOnServer });
      if (this.options.dryRun !== true) {
        await this.ports.ledger.updateMailboxState(this.mailbox.id, { acceptUidlReset: null, uidlResetTrippedAt: null });
      }
      return false;
    }
    this.log.error('UIDL reset suspected: most known messages vanished and unknown ones appeared; not re-ingesting', {
      recognized,
      unknown,
      previouslyKnown: last?.knownOnServer,
    });
    if (this.options.dryRun !== true && !stillTripped) {
      await this.ports.ledger.updateMailboxState(this.mailbox.id, { uidlResetTrippedAt: this.clock.now() });
    }
    this.stopReason = 'uidl-reset-suspected';
    this.remaining = unknown;
    await this.quit();
    return true;
  }

  private planRun(known: Map<string, LedgerEntry>): {
    fetch: ServerMessage[];
    skip: ServerMessage[];
    reannounce: LedgerEntry[];
    deleteKnown: ServerMessage[];
  } {
    const fetch: ServerMessage[] = [];
    const skip: ServerMessage[] = [];
    const reannounce: LedgerEntry[] = [];
    const deleteKnown: ServerMessage[] = [];
    const cap = this.mailbox.maxMessageBytes;
    for (const m of this.serverMessages) {
      const entry = known.get(m.uidl);
      if (entry !== undefined) {
        this.alreadyKnown += 1;
        this.knownAfterRun.add(m.uidl);
        if (entry.status === 'stored' || (entry.status === 'skipped' && entry.announcedAt === undefined)) {
          reannounce.push(entry);
        } else if (this.deletable(entry)) {
          deleteKnown.push(m);
        }
        continue;
      }
      if (cap !== undefined && m.size > cap) skip.push(m);
      else fetch.push(m);
    }
    this.toFetchCount = fetch.length;
    this.toFetchBytes = fetch.reduce((n, m) => n + m.size, 0);
    return { fetch, skip, reannounce, deleteKnown };
  }

  /** `deletable` of the entry once it is announced. */
  private deletableOnceAnnounced(entry: LedgerEntry): boolean {
    const policy = this.mailbox.deletePolicy;
    if (entry.status !== 'stored' && entry.status !== 'announced') return false;
    if (policy.mode === 'delete') return true;
    if (policy.mode === 'keep-days') return entry.firstSeenAt + policy.days * DAY_MS <= this.clock.now();
    return false;
  }

  private deletable(entry: LedgerEntry): boolean {
    const policy = this.mailbox.deletePolicy;
    if (entry.status !== 'announced') return false;
    if (policy.mode === 'delete') return true;
    if (policy.mode === 'keep-days') return entry.firstSeenAt + policy.days * DAY_MS <= this.clock.now();
    return false;
  }

  // -----------------------------------------------------------------------------------------
  // Fetching

  private stopCheck(next: ServerMessage): StopReason | undefined {
    if (this.options.signal?.aborted === true) return 'cancelled';
    if (this.leaseLost) return 'lease-lost';
    const now = this.clock.now();
    if (this.budget.deadline !== undefined && now >= this.budget.deadline) return 'deadline';
    if (this.budget.maxMessages !== undefined && this.fetched >= this.budget.maxMessages) return 'max-messages';
    if (this.mailbox.maxMessagesPerRun !== undefined && this.fetched >= this.mailbox.maxMessagesPerRun) return 'max-messages';
    const maxBytes = Math.min(this.budget.maxBytes ?? Infinity, this.mailbox.maxBytesPerRun ?? Infinity);
    // The first message always goes, so a message larger than the per-run byte budget (but
    // under the size cap) is not stuck forever.
    if (this.fetched > 0 && this.fetchedBytes + next.size > maxBytes) return 'max-bytes';
    return undefined;
  }

  private async fetchAll(messages: ServerMessage[]): Promise<void> {
    this.remaining = messages.length;
    if (messages.length === 0) return;
    const initialStop = this.stopCheck(messages[0]!);
    if (initialStop !== undefined) {
      this.stopReason = initialStop;
      return;
    }
    this.progress('fetching');
    const client = this.client!;
    const storeConcurrency = this.options.storeConcurrency ?? DEFAULT_STORE_CONCURRENCY;
    const slots = new Semaphore(storeConcurrency);
    const unannounced = new Semaphore(Math.max(MIN_UNANNOUNCED_IN_FLIGHT, UNANNOUNCED_PER_STORE_SLOT * storeConcurrency));
    const storeBytes = new Semaphore(STORE_BYTES_IN_FLIGHT);
    const inFlight = new InFlight();
    const byNumber = new Map(messages.map((m) => [m.number, m]));
    const whole = this.ports.store.put !== undefined;
    let index = 0;
    try {
      for await (const retrieved of client.retrieve(messages, whole ? { collectUpTo: WHOLE_MESSAGE_MAX_BYTES } : {})) {
        const message = byNumber.get(retrieved.number)!;
        const stop = this.stopCheck(message);
        if (stop !== undefined) {
          if (retrieved.body === undefined) retrieved.stream.destroy();
          this.stopReason = stop;
          break;
        }
        index += 1;
        const wholeBytes = retrieved.body !== undefined && whole ? bodyBytes(retrieved.body) : 0;
        if (!unannounced.tryAcquire()) await unannounced.acquire();
        if (!slots.tryAcquire()) await slots.acquire();
        if (wholeBytes > 0 && !storeBytes.tryAcquire(wholeBytes)) await storeBytes.acquire(wholeBytes);
        let slotHeld = true;
        const releaseSlot = (): void => {
          if (!slotHeld) return;
          slotHeld = false;
          slots.release();
          if (wholeBytes > 0) storeBytes.release(wholeBytes);
        };
        inFlight.start();
        let finished = false;
        // Once per message, however its steps end; an error is a defect that ends the run.
        const done = (defect?: { error: unknown }): void => {
          if (defect !== undefined) inFlight.fail(defect.error);
          if (finished) return;
          finished = true;
          releaseSlot();
          unannounced.release();
          inFlight.end();
        };
        if (retrieved.body !== undefined && whole) {
          this.storeWhole(message, retrieved.body, releaseSlot, done);
        } else {
          let task: Promise<void>;
          try {
            ({ task } = await this.receive(message, retrieved.stream, releaseSlot));
          } catch (error) {
            done();
            throw error;
          }
          task.then(
            () => done(),
            (error: unknown) => done({ error }),
          );
        }
        this.progress('fetching');
        if (this.consecutiveBackendFailures >= MAX_CONSECUTIVE_FAILURES) {
          throw new StopRun(this.failures.at(-1)?.code === 'LEDGER_FAILED' ? 'ledger-failed' : 'store-failed', this.failures.at(-1));
        }
      }
    } catch (error) {
      this.remaining = messages.length - index;
      await inFlight.idle();
      throw error;
    }
    this.remaining = messages.length - index;
    this.progress('finishing');
    // The last messages go through each step without waiting for company.
    this.recordBatcher.closingTime();
    this.publishBatcher.closingTime();
    this.announcedBatcher.closingTime();
    await inFlight.idle();
    if (this.consecutiveBackendFailures >= MAX_CONSECUTIVE_FAILURES) {
      throw new StopRun(this.failures.at(-1)?.code === 'LEDGER_FAILED' ? 'ledger-failed' : 'store-failed', this.failures.at(-1));
    }
  }

  /**
   * Stream one message into the store while hashing it and reading its metadata. Resolves
   * once the bytes are spooled (the POP3 stream is free for the next message) with a task that
   * commits, records, announces and (per policy) deletes it. `storeDone` is called once the
   * store commit settled (the message no longer holds a store slot).
   */
  private async receive(
    message: ServerMessage,
    stream: Readable,
    storeDone: () => void,
  ): Promise<{ task: Promise<void> }> {
    const digest = messageDigest(this.mailbox.id, message.uidl);
    const key = messageKeyForDigest(this.mailbox.id, digest);
    let writer;
    try {
      writer = await this.ports.store.open(key, { mailboxId: this.mailbox.id, uidl: message.uidl, expectedSize: message.size });
    } catch (error) {
      stream.destroy();
      this.noteBackendFailure(error, message.uidl);
      return { task: Promise.resolve() };
    }
    const extractor = createMetadataExtractor();
    let pumped;
    try {
      pumped = await pumpMessage(stream, writer.stream, extractor.stream);
    } catch (error) {
      extractor.stream.destroy();
      await writer.abort();
      if (isPop3Error(error)) throw error; // the session is gone: stop the run
      this.noteBackendFailure(error, message.uidl);
      return { task: Promise.resolve() };
    }
    extractor.stream.end();
    const { sha256, size } = pumped;
    this.fetched += 1;
    this.fetchedBytes += size;
    const metadata = extractor.result();
    metadata.catch(() => undefined); // awaited after the commit; never an unhandled rejection
    return { task: this.commit(message, key, digest, writer, sha256, size, metadata, storeDone) };
  }

  /**
   * A message received whole, to a store that takes it in one call (`put`): hash it and read
   * its metadata (both at once, no stream), store it, then record and announce it (see
   * `afterStore`). `storeDone` as for `receive`; `done` once the message is announced or has
   * failed on the way. Never throws.
   */
  private storeWhole(message: ServerMessage, body: readonly Buffer[], storeDone: () => void, done: (defect?: { error: unknown }) => void): void {
    const uidl = message.uidl;
    let key: string;
    let put: Promise<StoredObject>;
    let sha256: string;
    let size = 0;
    let metadata: Promise<MessageMetadata>;
    try {
      const digest = messageDigest(this.mailbox.id, uidl);
      key = messageKeyForDigest(this.mailbox.id, digest);
      if (body.length === 1) {
        size = body[0]!.length;
        sha256 = sha256Hex(body[0]!);
      } else {
        const hash = createHash('sha256');
        for (const chunk of body) {
          hash.update(chunk);
          size += chunk.length;
        }
        sha256 = hash.digest('hex');
      }
      this.fetched += 1;
      this.fetchedBytes += size;
      metadata = readMetadata(body);
      // Handled when the message is recorded (afterStore); until then, or if the store fails
      // and it never is, a rejection must not count as unhandled.
      metadata.catch(() => undefined);
      put = this.ports.store.put!(key, { mailboxId: this.mailbox.id, uidl }, body, {
        sha256,
        size,
        metadata: { 'popdrain-mailbox': this.mailbox.id, 'popdrain-uidl-digest': digest },
      });
    } catch (error) {
      put = Promise.reject(error);
      metadata = Promise.resolve({ attachments: [] });
    }
    put
      .then(
        (stored) => {
          // Durable in the store: the slot goes to the next message while this one is recorded.
          storeDone();
          this.afterStore(message, key, stored, sha256, size, metadata, done);
        },
        (error: unknown) => {
          storeDone();
          this.noteBackendFailure(error, uidl);
          done();
        },
      )
      .catch((error: unknown) => {
        storeDone();
        done({ error });
      });
  }

  private async commit(
    message: ServerMessage,
    key: string,
    digest: string,
    writer: MessageWriter,
    sha256: string,
    size: number,
    metadataPromise: Promise<MessageMetadata>,
    storeDone: () => void,
  ): Promise<void> {
    const uidl = message.uidl;
    let stored;
    try {
      stored = await writer.commit({
        sha256,
        size,
        metadata: { 'popdrain-mailbox': this.mailbox.id, 'popdrain-uidl-digest': digest },
      });
    } catch (error) {
      await writer.abort();
      storeDone();
      this.noteBackendFailure(error, uidl);
      return;
    }
    // Durable in the store: the slot goes to the next message while this one is recorded.
    storeDone();
    await new Promise<void>((resolve, reject) =>
      this.afterStore(message, key, stored, sha256, size, metadataPromise, (defect) => (defect === undefined ? resolve() : reject(defect.error))),
    );
  }

  /**
   * A message durable in the store: record it in the ledger, announce it, delete it per policy,
   * then `done()`. Each step goes out in batches with other messages' (the batchers); this
   * message's part of a batch continues in the batch's callback, so a message costs no promise
   * or async frame per step. Failures are noted; never throws.
   */
  private afterStore(
    message: ServerMessage,
    key: string,
    stored: StoredObject,
    sha256: string,
    size: number,
    metadataPromise: Promise<MessageMetadata>,
    done: (defect?: { error: unknown }) => void,
  ): void {
    metadataPromise
      .then(
        (metadata) => this.recordStored(message, key, stored, sha256, size, metadata, undefined, done),
        (error: unknown) => {
          const metadataError = describeError(error).slice(0, 500);
          this.failures.push({ uidl: message.uidl, code: 'METADATA_FAILED', phase: 'fetch', message: metadataError, retryable: false });
          this.recordStored(message, key, stored, sha256, size, { attachments: [] }, metadataError, done);
        },
      )
      // A defect here (not a port's failure: those are noted on the way) ends the run.
      .catch((error: unknown) => done({ error }));
  }

  private recordStored(
    message: ServerMessage,
    key: string,
    stored: StoredObject,
    sha256: string,
    size: number,
    metadata: MessageMetadata,
    metadataError: string | undefined,
    done: () => void,
  ): void {
    const uidl = message.uidl;
    const now = this.clock.now();
    const time = ISO(now);
    const detail: EmailStoredDetail = {
      schemaVersion: EVENT_SCHEMA_VERSION,
      id: storedEventId(this.mailbox.id, uidl),
      mailboxId: this.mailbox.id,
      uidl,
      storage: stored.ref,
      size,
      sha256,
      storedAt: time,
      metadata,
      ...(metadataError === undefined ? {} : { metadataError }),
    };
    const entry: LedgerEntry = {
      mailboxId: this.mailbox.id,
      uidl,
      status: 'stored',
      key,
      sha256,
      size,
      firstSeenAt: now,
      event: { id: detail.id, detailType: 'Email Stored', time, detail },
    };
    this.recordBatcher.push(entry, {
      resolve: (outcome) => {
        this.consecutiveBackendFailures = 0;
        this.knownAfterRun.add(uidl);
        if (!outcome.ok) {
          // Another run recorded it first (a lease was lost or bypassed): it owns the announcement.
          const sameBytes = outcome.conflict?.sha256 === sha256;
          this.failures.push({
            uidl,
            code: 'LEDGER_CONFLICT',
            phase: 'ledger',
            message: sameBytes ? 'already recorded by another run (same bytes)' : 'already recorded by another run with different content',
            retryable: false,
          });
          done();
          return;
        }
        this.log.debug('stored', { uidl, size, sha256, key });
        this.announceThen(entry, false, (announced) => {
          if (announced && this.deletableOnceAnnounced(entry)) this.requestDele(message);
          done();
        });
      },
      reject: (error) => {
        try {
          this.noteBackendFailure(error, uidl);
        } finally {
          done();
        }
      },
    });
  }

  private async recordSkipped(message: ServerMessage): Promise<void> {
    const now = this.clock.now();
    const detail: EmailSkippedDetail = {
      schemaVersion: EVENT_SCHEMA_VERSION,
      id: skippedEventId(this.mailbox.id, message.uidl),
      mailboxId: this.mailbox.id,
      uidl: message.uidl,
      reason: 'too-large',
      size: message.size,
      limit: this.mailbox.maxMessageBytes ?? 0,
      seenAt: ISO(now),
    };
    const entry: LedgerEntry = {
      mailboxId: this.mailbox.id,
      uidl: message.uidl,
      status: 'skipped',
      size: message.size,
      firstSeenAt: now,
      event: { id: detail.id, detailType: 'Email Skipped', time: ISO(now), detail },
    };
    try {
      const outcome = await this.recordBatcher.add(entry);
      if (!outcome.ok) return;
    } catch (error) {
      this.failures.push(failureOf(error, message.uidl));
      return;
    }
    this.skipped += 1;
    this.knownAfterRun.add(message.uidl);
    this.log.info('skipped: larger than the size cap', { uidl: message.uidl, size: message.size, limit: detail.limit });
    await this.announce(entry, false);
  }

  /**
   * Publish the entry's event, then mark it announced; true when both happened. Failures
   * leave it stored but unannounced, for the next run.
   */
  private announce(entry: LedgerEntry, again: boolean): Promise<boolean> {
    return new Promise((resolve) => this.announceThen(entry, again, resolve));
  }

  /** `announce`, continuing in `then` (called once, never throws). */
  private announceThen(entry: LedgerEntry, again: boolean, then: (announced: boolean) => void): void {
    const uidl = entry.uidl;
    this.pendingUidls.add(uidl);
    const notPublished = (reason: string | undefined): void => {
      this.failures.push({
        uidl,
        code: 'EVENTS_FAILED',
        phase: 'publish',
        message: `event not published (${reason ?? 'unknown'}); the next run announces it`,
        retryable: true,
      });
      then(false);
    };
    this.publishBatcher.push(entry.event, {
      resolve: (result) => {
        if (!result.ok) {
          notPublished(result.reason);
          return;
        }
        this.announcedBatcher.push(uidl, {
          resolve: () => {
            this.pendingUidls.delete(uidl);
            this.announced += 1;
            if (again) this.reannounced += 1;
            then(true);
          },
          reject: (error) => {
            // Published but not marked: the next run publishes it again (same id). Not deletable now.
            this.failures.push(failureOf(error, uidl));
            then(false);
          },
        });
      },
      reject: (error) => notPublished(describeError(error)),
    });
  }

  private requestDele(message: ServerMessage): void {
    const client = this.client;
    if (client === undefined || client.isClosed || this.leaseLost) return;
    const promise = client.dele(message.number).then(
      () => true,
      (error: unknown) => {
        this.failures.push(failureOf(error, message.uidl));
        return false;
      },
    );
    this.deleRequests.push({ message, promise });
  }

  private noteBackendFailure(error: unknown, uidl: string): void {
    this.failures.push(failureOf(error, uidl));
    if (isDrainError(error) && (error.code === 'STORE_FAILED' || error.code === 'LEDGER_FAILED')) {
      this.consecutiveBackendFailures += 1;
    }
    this.log.warn('message not stored; it stays on the server for the next run', { uidl, error: describeError(error) });
  }

  private async flushAll(): Promise<void> {
    await this.recordBatcher.drain();
    await this.publishBatcher.drain();
    await this.announcedBatcher.drain();
  }

  /** QUIT commits the deletions; only then are they recorded as deleted. */
  private async quit(): Promise<void> {
    const client = this.client;
    if (client === undefined || client.isClosed) return;
    const deles = await Promise.all(this.deleRequests.map(async (d) => ((await d.promise) ? d.message : undefined)));
    const deleted = deles.filter((m): m is ServerMessage => m !== undefined);
    let noted = false;
    if (deleted.length > 0 && deleted.length <= MAX_PENDING_DELETES) {
      await this.ports.ledger
        .updateMailboxState(this.mailbox.id, { pendingDeletes: deleted.map((m) => m.uidl) })
        .then(() => (noted = true))
        .catch((error: unknown) => this.log.warn('could not note the deletions before QUIT', { error: describeError(error) }));
    }
    try {
      await client.quit();
    } catch (error) {
      // Closed instead of answering QUIT (a TLS terminator, say): everything is stored and
      // recorded; which noted deletions the server applied, the next run settles.
      if (noted && isPop3Error(error) && error.code === 'CONNECTION_CLOSED') {
        this.unconfirmedDeletes = deleted.length;
        this.pendingDeletesSettled = false;
        this.log.warn('QUIT not answered: the next run records which deletions the server applied', { count: deleted.length });
        return;
      }
      this.failures.push(failureOf(error));
      if (deleted.length > 0) this.log.warn('QUIT failed: the server may not have deleted anything', { error: describeError(error) });
      return;
    }
    if (deleted.length === 0) return;
    const now = this.clock.now();
    const retention = this.options.retentionDays ?? DEFAULT_RETENTION_DAYS;
    try {
      await this.ports.ledger.markDeleted(
        this.mailbox.id,
        deleted.map((m) => m.uidl),
        now,
        Math.floor((now + retention * DAY_MS) / 1000),
      );
      this.pendingDeletesSettled = true;
    } catch (error) {
      this.failures.push(failureOf(error));
      // This run's deletions are noted as pending (above) and must stay so, for the next run
      // to record them, even if an earlier run's pending deletions were settled at the start.
      this.pendingDeletesSettled = false;
    }
    this.deleted = deleted.length;
    for (const m of deleted) this.knownAfterRun.delete(m.uidl);
    this.log.info('deleted from the server', { count: deleted.length });
  }

  // -----------------------------------------------------------------------------------------
  // Ending

  private handleRunError(error: unknown): void {
    let reason: StopReason;
    let failure: DrainFailure | undefined;
    if (error instanceof StopRun) {
      reason = error.reason;
      failure = error.failure;
    } else if (isPop3Error(error)) {
      reason = stopReasonForPop3(error);
      failure = failureOf(error);
      this.retryAfterSeconds = error.retryAfterSeconds;
      if (reason === 'cancelled' && this.options.signal?.aborted !== true) reason = 'deadline';
    } else if (isDrainError(error)) {
      reason = stopReasonForDrain(error);
      failure = failureOf(error);
    } else {
      reason = 'error';
      failure = failureOf(error);
    }
    this.stopReason = reason;
    if (failure !== undefined && !RETRY_LATER_STOPS.has(reason)) this.runError = failure;
    const level = RETRY_LATER_STOPS.has(reason) ? 'info' : 'error';
    this.log[level]('drain stopped', { stopReason: reason, error: failure?.message });
  }

  private async finish(): Promise<DrainReport> {
    const dryRun = this.options.dryRun === true;
    // Whatever happened, wait for batches already under way so the report is true.
    await this.flushAll().catch(() => undefined);
    const finishedAt = this.clock.now();
    const moreRemaining = this.remaining > 0;
    const serverBytes = this.serverMessages.reduce((n, m) => n + m.size, 0);
    let backlogSince = this.state?.backlogSince;
    const inBacklog = moreRemaining || !NORMAL_STOPS.has(this.stopReason);
    if (!inBacklog) backlogSince = undefined;
    else if (backlogSince === undefined && this.serverMessages.length > 0) backlogSince = this.startedAt;
    const report: DrainReport = {
      mailboxId: this.mailbox.id,
      runId: this.runId,
      startedAt: ISO(this.startedAt),
      finishedAt: ISO(finishedAt),
      durationMs: finishedAt - this.startedAt,
      stopReason: this.stopReason,
      moreRemaining,
      retryLater: RETRY_LATER_STOPS.has(this.stopReason),
      ok: NORMAL_STOPS.has(this.stopReason) && this.failures.length === 0,
      serverMessages: this.serverMessages.length,
      serverBytes,
      alreadyKnown: this.alreadyKnown,
      fetched: this.fetched,
      fetchedBytes: this.fetchedBytes,
      skipped: this.skipped,
      announced: this.announced,
      reannounced: this.reannounced,
      deleted: this.deleted,
      unconfirmedDeletes: this.unconfirmedDeletes,
      serverDeletesRetrieved: this.serverDeletesRetrieved,
      retryAfterSeconds: this.retryAfterSeconds,
      pendingAnnouncements: this.pendingUidls.size,
      remaining: this.remaining,
      uidlSupported: this.uidlSupported,
      failures: this.failures,
      ...(this.runError === undefined ? {} : { error: this.runError }),
      backlogAgeSeconds: backlogSince === undefined ? 0 : Math.max(0, Math.round((finishedAt - backlogSince) / 1000)),
      ...(this.plan === undefined ? {} : { plan: this.plan }),
    };
    if (!dryRun && this.lease !== undefined) {
      await this.saveState(report, backlogSince);
      if (this.options.publishSummary !== false) await this.publishSummary(report);
      await this.ports.ledger.releaseLease(this.lease).catch((error: unknown) => {
        this.log.warn('could not release the lease; it expires on its own', { error: describeError(error) });
      });
    }
    this.log.info('drain finished', {
      stopReason: report.stopReason,
      fetched: report.fetched,
      fetchedBytes: report.fetchedBytes,
      skipped: report.skipped,
      deleted: report.deleted,
      failures: report.failures.length,
      moreRemaining: report.moreRemaining,
      durationMs: report.durationMs,
    });
    return report;
  }

  private async saveState(report: DrainReport, backlogSince: number | undefined): Promise<void> {
    const summary: RunSummary = {
      runId: this.runId,
      startedAt: this.startedAt,
      finishedAt: Date.parse(report.finishedAt),
      stopReason: report.stopReason,
      moreRemaining: report.moreRemaining,
      fetched: report.fetched,
      fetchedBytes: report.fetchedBytes,
      skipped: report.skipped,
      deleted: report.deleted,
      failures: report.failures.length,
      // A run that never listed (busy, connection failure) keeps the previous figure.
      knownOnServer:
        report.stopReason !== 'uidl-reset-suspected' && (this.serverMessages.length > 0 || NORMAL_STOPS.has(report.stopReason))
          ? this.knownAfterRun.size
          : (this.state?.lastRun?.knownOnServer ?? 0),
      serverMessages: report.serverMessages,
      pendingAnnouncements: report.pendingAnnouncements,
    };
    try {
      await this.ports.ledger.updateMailboxState(this.mailbox.id, {
        lastRun: summary,
        backlogSince: backlogSince ?? null,
        ...(this.pendingDeletesSettled ? { pendingDeletes: null } : {}),
        ...(NORMAL_STOPS.has(report.stopReason) && report.failures.length === 0 ? { lastSuccessAt: Date.parse(report.finishedAt) } : {}),
      });
    } catch (error) {
      this.log.warn('could not save the run summary', { error: describeError(error) });
    }
  }

  private async publishSummary(report: DrainReport): Promise<void> {
    const event: DrainEvent = {
      id: this.runId,
      detailType: 'Mailbox Drained',
      time: report.finishedAt,
      detail: {
        schemaVersion: EVENT_SCHEMA_VERSION,
        id: this.runId,
        mailboxId: this.mailbox.id,
        stopReason: report.stopReason,
        moreRemaining: report.moreRemaining,
        serverMessages: report.serverMessages,
        fetched: report.fetched,
        fetchedBytes: report.fetchedBytes,
        skipped: report.skipped,
        deleted: report.deleted,
        announced: report.announced,
        failures: report.failures.length,
        startedAt: report.startedAt,
        finishedAt: report.finishedAt,
        durationMs: report.durationMs,
      },
    };
    try {
      const outcome = await this.ports.events.publish([event]);
      if (outcome.failed.length > 0) this.log.warn('summary event not published', { reason: outcome.failed[0]!.reason });
    } catch (error) {
      this.log.warn('summary event not published', { error: describeError(error) });
    }
  }
}

function planned(m: ServerMessage): PlannedMessage {
  return { number: m.number, uidl: m.uidl, size: m.size };
}
