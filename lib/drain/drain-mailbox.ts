/**
 * drainMailbox: one run over one mailbox, read top to bottom:
 *
 *   lease (lease-keeper.ts) -> connect and log in (connect.ts) -> list (listing.ts) -> settle
 *   the deletions an interrupted run left (deletions.ts) -> look the UIDLs up in the ledger ->
 *   the UIDL-reset guard and the plan (plan.ts) -> re-announce, skip, delete the known ->
 *   fetch and store the new (message-pipeline.ts), each then recorded, announced and DELEd
 *   per policy (message-recorder.ts) -> QUIT, which commits the deletions (deletions.ts) ->
 *   the report, the state and the summary event (run-report.ts).
 *
 * Whatever fails, and whenever the process dies, a message is deleted from the server only
 * after it was stored and announced, and a rerun neither loses nor duplicates it: a store
 * commit finds an identical object and reports it as existing, a recorded but unannounced
 * message is announced again with the same event id.
 */
import { randomUUID } from 'node:crypto';
import { isPop3Error } from '../pop3/index.js';
import { dialSession, logIn } from './connect.js';
import { Deletions } from './deletions.js';
import type { DrainBudget, DrainOptions } from './drain-options.js';
import { describeError, type DrainPhase } from './errors.js';
import { runStopFor } from './failures.js';
import { isKnownAt, lookupListing } from './known-listing.js';
import { knownOnServer } from './known-on-server.js';
import { verifyKnown } from './known-verification.js';
import { LeaseKeeper } from './lease-keeper.js';
import { listMessages } from './listing.js';
import type { MailboxConfig } from './mailbox.js';
import { MessagePipeline } from './message-pipeline.js';
import { MessageRecorder } from './message-recorder.js';
import { safeFailure, safeLogger } from './outside-text.js';
import { hardDeadlineOf, ledgerLost, marksFirstRun, planRun, runLimits, uidlResetVerdict, warmsStore, type ServerMessage } from './plan.js';
import { silentLogger, systemClock, type DrainPorts, type MailboxState } from './ports.js';
import { newRefetchSummary } from './refetch.js';
import { NORMAL_STOPS, RETRY_LATER_STOPS, type DrainReport, type PlannedMessage, type StopReason } from './report.js';
import { buildReport, mailboxDrainedEvent, stateUpdateAfterRun, type RunEnd } from './run-report.js';
import { mailboxLogger, newCounters, reportProgress, type RunContext } from './run-context.js';
import { RunStops } from './run-stops.js';

export type { DrainBudget, DrainOptions, DrainProgress } from './drain-options.js';

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
  return new DrainRun(mailbox, ports, budget, options).execute();
}

const planned = (m: ServerMessage): PlannedMessage => ({ number: m.number, uidl: m.uidl, size: m.size });

class DrainRun {
  private readonly ctx: RunContext;
  private readonly startedAt: number;
  /** The hard bound on the session (plan.ts, hardDeadlineOf). */
  private readonly hardDeadline: number | undefined;
  private readonly lease: LeaseKeeper;
  private readonly deletions: Deletions;
  private readonly recorder: MessageRecorder;
  private state: MailboxState | undefined;
  private stopReason: StopReason = 'complete';
  private runError: RunEnd['runError'];
  private retryAfterSeconds: number | undefined;
  private plan: DrainReport['plan'];
  /** The step under way, for the report of an error that has no phase of its own. */
  private phase: DrainPhase = 'lease';
  /** The deadlines and the stop signals (run-stops.ts). */
  private readonly stops: RunStops;
  /** While fetching: told when the deadline passes, to cut off what cannot arrive in time. */
  private pipeline: MessagePipeline | undefined;

  constructor(
    mailbox: MailboxConfig,
    ports: DrainPorts,
    private readonly budget: DrainBudget,
    options: DrainOptions,
  ) {
    const clock = ports.clock ?? systemClock;
    const secrets: string[] = [];
    this.ctx = {
      mailbox,
      ports,
      options,
      clock,
      log: safeLogger(mailboxLogger(ports.logger ?? silentLogger, mailbox.id), secrets),
      runId: options.runId ?? randomUUID(),
      counters: newCounters(),
      failures: [],
      client: undefined,
      leaseLost: false,
      ledgerLost: false,
      secrets,
    };
    this.startedAt = clock.now();
    this.hardDeadline = hardDeadlineOf(budget);
    this.lease = new LeaseKeeper(this.ctx);
    this.deletions = new Deletions(this.ctx);
    this.recorder = new MessageRecorder(this.ctx, this.deletions);
    const ctx = this.ctx;
    this.stops = new RunStops(
      { clock, deadline: budget.deadline, hardDeadline: this.hardDeadline, signal: options.signal, hardSignal: options.hardSignal },
      {
        abort: (why) => ctx.client?.abort(why),
        cutOffIfLate: (reason) => this.pipeline?.cutOffIfLate(reason),
        warn: (message) => ctx.log.warn(message),
      },
    );
  }

  async execute(): Promise<DrainReport> {
    const { ctx } = this;
    ctx.log.info('drain started', { runId: ctx.runId, host: ctx.mailbox.host, dryRun: ctx.options.dryRun === true });
    this.stops.arm();
    try {
      await this.steps();
    } catch (error) {
      this.stoppedBy(error);
      // Deletions already requested are of stored and announced messages: commit them when
      // the session is still alive (e.g. the store failed, not the server).
      if (ctx.client !== undefined && !ctx.client.isClosed) {
        await this.recorder.flush().catch(() => undefined);
        await this.deletions.quit().catch(() => undefined);
      }
    } finally {
      this.stops.disarm();
      this.lease.stopRenewing();
      ctx.client?.close();
    }
    return this.finish();
  }

  /** The run up to QUIT; returns early when it stops before fetching (busy, UIDL reset, dry run). */
  private async steps(): Promise<void> {
    const { ctx } = this;
    const dryRun = ctx.options.dryRun === true;
    if (!dryRun && !(await this.lease.acquire())) {
      this.stopReason = 'busy';
      return;
    }
    // The store gets ready (its folder, say) while the session is set up.
    if (!dryRun) ctx.ports.store.prepareMailbox?.(ctx.mailbox.id).catch(() => undefined);
    // The ledger loads (a large one takes a while) while the session is set up; a failure of
    // the ledger is the run's before any failure of the session.
    const stateLoad = ctx.ports.ledger.getMailboxState(ctx.mailbox.id).then(
      (state) => {
        // A first drain: the store boots what its first commit would wait for, during the handshake.
        // A hint only: a store whose warm-up throws must not fail the ledger's load.
        if (warmsStore({ state, dryRun })) {
          try {
            ctx.ports.store.warmUp?.();
          } catch {
            // The first commit starts what it needs, as without a warm-up.
          }
        }
        return { state };
      },
      (error: unknown) => ({ error }),
    );
    const loadedState = async (): Promise<MailboxState> => {
      const loaded = await stateLoad;
      if ('error' in loaded) {
        this.phase = 'ledger';
        throw loaded.error;
      }
      return loaded.state;
    };
    this.phase = 'connect';
    reportProgress(ctx, 'connecting');
    try {
      await logIn(ctx, await dialSession(ctx, this.hardDeadline, this.stops.clientSignal));
    } catch (error) {
      await loadedState();
      throw error;
    }
    this.state = await loadedState();
    this.phase = 'list';
    reportProgress(ctx, 'listing');
    const listing = await listMessages(ctx.client!, ctx.log, ctx.counters);
    ctx.failures.push(...listing.leftAlone);
    ctx.counters.serverMessages = listing.messages;
    await ctx.options.checkListing?.(listing.messages.map((m) => m.uidl));
    // Listed messages by UIDL, made only when asked (a rerun with nothing to do asks nothing).
    let byUidlMap: Map<string, ServerMessage> | undefined;
    const byUidl = (): Map<string, ServerMessage> => (byUidlMap ??= new Map(listing.messages.map((m) => [m.uidl, m])));
    this.phase = 'ledger';
    const pendingDeletes = this.state.pendingDeletes?.length ?? 0;
    await this.deletions.settlePending(this.state, pendingDeletes > 0 ? new Set(byUidl().keys()) : new Set());
    // A refetch compares with each entry's sha256 and announces under its event id: whole entries.
    const summaryAllowed = ctx.options.refetch !== true;
    const lookupOptions = summaryAllowed ? { deletePolicy: ctx.mailbox.deletePolicy, now: ctx.clock.now() } : undefined;
    const known = await lookupListing(ctx.ports.ledger, ctx.mailbox.id, listing.messages, lookupOptions);

    if (!dryRun && known.count === 0 && this.state?.lastRun === undefined && listing.messages.length > 0 && ctx.ports.store.holdsMessages !== undefined) {
      const storeHolds = await ctx.ports.store.holdsMessages(ctx.mailbox.id);
      if (ledgerLost({ state: this.state, listed: listing.messages.length, known: known.count, storeHolds })) {
        ctx.ledgerLost = true;
        const message =
          'the ledger knows nothing of this mailbox but the store holds its messages: the ledger was lost (deleted, emptied or unreadable); messages found in the store are recorded again, not announced again';
        ctx.log.error(message);
        ctx.failures.push({ code: 'LEDGER_FAILED', phase: 'ledger', message, retryable: false });
      }
    }

    const verdict = uidlResetVerdict({ guard: ctx.mailbox.uidlResetGuard, state: this.state, messages: listing.messages, known: known.entries, recognized: known.count });
    if (verdict.kind !== 'proceed') {
      const figures = { recognized: verdict.recognized, unknown: verdict.unknown, previouslyKnown: verdict.previouslyKnown };
      if (verdict.kind === 'accepted') {
        ctx.log.warn('UIDL reset accepted by the operator: proceeding', figures);
        if (!dryRun) await ctx.ports.ledger.updateMailboxState(ctx.mailbox.id, { acceptUidlReset: null, uidlResetTrippedAt: null });
      } else {
        ctx.log.error('UIDL reset suspected: most known messages vanished and unknown ones appeared; not re-ingesting', figures);
        if (!dryRun && !verdict.alreadyTripped) await ctx.ports.ledger.updateMailboxState(ctx.mailbox.id, { uidlResetTrippedAt: ctx.clock.now() });
        this.stopReason = 'uidl-reset-suspected';
        ctx.counters.remaining = verdict.unknown;
        await this.deletions.quit();
        return;
      }
    }

    const plan = planRun({
      messages: listing.messages,
      known: known.entries,
      triage: known.triage,
      policy: ctx.mailbox.deletePolicy,
      maxMessageBytes: ctx.mailbox.maxMessageBytes,
      now: ctx.clock.now(),
      refetch: ctx.options.refetch === true,
    });
    if (ctx.options.refetch === true && !dryRun) ctx.counters.refetch = newRefetchSummary();
    ctx.counters.alreadyKnown = plan.alreadyKnown;
    ctx.counters.importedLeft = plan.imported.length;
    if (plan.imported.length > 0 && ctx.mailbox.deletePolicy.mode !== 'keep') {
      ctx.log.info('messages known only from an imported seen-list are left on the server (never deleted unseen)', { imported: plan.imported.length });
    }
    ctx.counters.knownAfterRun = knownOnServer(known.count, () => listing.messages.filter((m, i) => isKnownAt(known, i, m.uidl)).map((m) => m.uidl));
    ctx.counters.toFetch = plan.fetch.length;
    ctx.counters.toFetchBytes = plan.toFetchBytes;
    if (dryRun) {
      this.plan = {
        fetch: plan.fetch.map(planned),
        skip: plan.skip.map(planned),
        delete: plan.deleteKnown.map(planned),
        announce: plan.reannounce.length,
      };
      ctx.counters.remaining = plan.fetch.length;
      this.stopReason = 'dry-run';
      await this.deletions.quit();
      return;
    }

    // Durable before anything is stored: a first run killed before its first record is not a lost ledger.
    if (marksFirstRun({ state: this.state, ledgerLost: ctx.ledgerLost, toFetch: plan.fetch.length })) {
      await ctx.ports.ledger.updateMailboxState(ctx.mailbox.id, { firstRunStartedAt: ctx.clock.now() });
    }

    this.phase = 'fetch';
    // Announce what an earlier run stored but could not announce, and skip the oversized.
    const side = [
      ...plan.reannounce.map((entry) => this.recorder.reannounce(entry, byUidl().get(entry.uidl)!)),
      ...plan.skip.map((m) => this.recorder.recordSkipped(m)),
    ];
    for (const m of plan.deleteKnown) this.deletions.request(m);
    try {
      await verifyKnown(ctx, ctx.client!, this.deletions, plan.verify);
      const refetching = new Map(plan.refetch.map((r) => [r.message.uidl, r.entry]));
      const pipeline = new MessagePipeline(ctx, ctx.client!, this.recorder, runLimits(this.budget, ctx.mailbox), this.hardDeadline, refetching);
      this.pipeline = pipeline;
      this.stopReason = (await pipeline.run(plan.fetch)) ?? 'complete';
    } finally {
      await Promise.all(side);
    }
    await this.recorder.flush();
    this.phase = 'quit';
    await this.deletions.quit();
  }

  private stoppedBy(error: unknown): void {
    const { reason, failure } = runStopFor(error, this.ctx.options.signal?.aborted === true, this.phase);
    this.stopReason = reason;
    if (isPop3Error(error)) this.retryAfterSeconds = error.retryAfterSeconds;
    const retryLater = RETRY_LATER_STOPS.has(reason);
    // The deadline or a signal closing the session is the run's own doing, not a failure.
    if (failure !== undefined && !retryLater && !NORMAL_STOPS.has(reason)) this.runError = failure;
    this.ctx.log[retryLater ? 'info' : 'error']('drain stopped', { stopReason: reason, error: failure?.message });
  }

  private async finish(): Promise<DrainReport> {
    const { ctx } = this;
    // Whatever happened, wait for batches already under way so the report is true.
    await this.recorder.flush().catch(() => undefined);
    const end: RunEnd = {
      mailboxId: ctx.mailbox.id,
      runId: ctx.runId,
      startedAt: this.startedAt,
      finishedAt: ctx.clock.now(),
      stopReason: this.stopReason,
      runError: this.runError === undefined ? undefined : safeFailure(this.runError, ctx.secrets),
      counters: ctx.counters,
      failures: ctx.failures.map((f) => safeFailure(f, ctx.secrets)),
      state: this.state,
      plan: this.plan,
      retryAfterSeconds: this.retryAfterSeconds,
    };
    const report = buildReport(end);
    if (ctx.options.dryRun !== true && this.lease.held) {
      await ctx.ports.ledger
        .updateMailboxState(ctx.mailbox.id, stateUpdateAfterRun(end, report, this.deletions.pendingDeletesSettled))
        .catch((error: unknown) => ctx.log.warn('could not save the run summary', { error: describeError(error) }));
      if (ctx.options.publishSummary !== false) await this.publishSummary(report);
      await this.lease.release();
    }
    ctx.log.info('drain finished', {
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

  private async publishSummary(report: DrainReport): Promise<void> {
    try {
      const outcome = await this.ctx.ports.events.publish([mailboxDrainedEvent(report)]);
      if (outcome.failed.length > 0) this.ctx.log.warn('summary event not published', { reason: outcome.failed[0]!.reason });
    } catch (error) {
      this.ctx.log.warn('summary event not published', { error: describeError(error) });
    }
  }
}
