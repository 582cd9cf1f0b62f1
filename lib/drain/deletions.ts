/**
 * DELE and QUIT. A message is DELEd only once stored and announced (the pipeline and the plan
 * decide which); QUIT commits the deletions, and only then are they recorded in the ledger.
 * The UIDLs are noted in the mailbox state just before QUIT, so that a run dying between QUIT
 * and that record leaves them for the next run to settle.
 */
import { isPop3Error } from '../pop3/index.js';
import { describeError } from './errors.js';
import { failureOf } from './failures.js';
import { DAY_MS, type ServerMessage } from './plan.js';
import type { MailboxState } from './ports.js';
import type { RunContext } from './run-context.js';

const DEFAULT_RETENTION_DAYS = 30;
/** Deletions noted in the state before QUIT (beyond this, a crash in that window just leaves entries unexpired). */
const MAX_PENDING_DELETES = 2_000;

export class Deletions {
  private readonly requests: Array<{ message: ServerMessage; promise: Promise<boolean> }> = [];
  /** The state's pendingDeletes are recorded (by this run's QUIT or its start) and can go. */
  private pendingSettled = false;

  constructor(private readonly ctx: RunContext) {}

  get pendingDeletesSettled(): boolean {
    return this.pendingSettled;
  }

  /** Epoch seconds at which a deleted message's ledger entry may expire. */
  private expiresAt(now: number): number {
    const retention = this.ctx.options.retentionDays ?? DEFAULT_RETENTION_DAYS;
    return Math.floor((now + retention * DAY_MS) / 1000);
  }

  /**
   * A run that died after QUIT but before recording its deletions left them in the state: those
   * no longer on the server were deleted; record it so their entries expire.
   */
  async settlePending(state: MailboxState, onServer: ReadonlySet<string>): Promise<void> {
    const pending = state.pendingDeletes;
    if (pending === undefined || pending.length === 0 || this.ctx.options.dryRun === true) return;
    const gone = pending.filter((uidl) => !onServer.has(uidl));
    if (gone.length > 0) {
      const now = this.ctx.clock.now();
      await this.ctx.ports.ledger.markDeleted(this.ctx.mailbox.id, gone, now, this.expiresAt(now));
      this.ctx.log.info('recorded deletions of an interrupted run', { count: gone.length });
    }
    this.pendingSettled = true;
  }

  /** Send DELE now (pipelined); a refusal is reported and the message stays. */
  request(message: ServerMessage): void {
    const { client } = this.ctx;
    if (client === undefined || client.isClosed || this.ctx.leaseLost) return;
    const promise = client.dele(message.number).then(
      () => true,
      (error: unknown) => {
        // A DELE lost with the session is not this message's failure: the run reports the
        // session once. A refusal the server sent is.
        const sessionGone = isPop3Error(error) && error.serverText === undefined && client.isClosed;
        if (!sessionGone) this.ctx.failures.push(failureOf(error, 'delete', message.uidl));
        return false;
      },
    );
    this.requests.push({ message, promise });
  }

  /** QUIT commits the deletions; only then are they recorded as deleted. */
  async quit(): Promise<void> {
    const { ctx } = this;
    const client = ctx.client;
    if (client === undefined || client.isClosed) return;
    const deles = await Promise.all(this.requests.map(async (d) => ((await d.promise) ? d.message : undefined)));
    const deleted = deles.filter((m): m is ServerMessage => m !== undefined);
    const uidls = deleted.map((m) => m.uidl);
    let noted = false;
    if (deleted.length > 0 && deleted.length <= MAX_PENDING_DELETES) {
      await ctx.ports.ledger
        .updateMailboxState(ctx.mailbox.id, { pendingDeletes: uidls })
        .then(() => (noted = true))
        .catch((error: unknown) => ctx.log.warn('could not note the deletions before QUIT', { error: describeError(error) }));
    }
    try {
      await client.quit();
    } catch (error) {
      // Closed instead of answering QUIT (a TLS terminator, say): everything is stored and
      // recorded; which noted deletions the server applied, the next run settles.
      if (noted && isPop3Error(error) && error.code === 'CONNECTION_CLOSED') {
        ctx.counters.unconfirmedDeletes = deleted.length;
        this.pendingSettled = false;
        ctx.log.warn('QUIT not answered: the next run records which deletions the server applied', { count: deleted.length });
        return;
      }
      // Closed by the run's own deadline or a signal (ABORTED): not the server's failure.
      if (!(isPop3Error(error) && error.code === 'ABORTED')) ctx.failures.push(failureOf(error, 'quit'));
      if (deleted.length > 0) ctx.log.warn('QUIT failed: the server may not have deleted anything', { error: describeError(error) });
      return;
    }
    if (deleted.length === 0) return;
    const now = ctx.clock.now();
    try {
      await ctx.ports.ledger.markDeleted(ctx.mailbox.id, uidls, now, this.expiresAt(now));
      this.pendingSettled = true;
    } catch (error) {
      ctx.failures.push(failureOf(error, 'ledger'));
      // This run's deletions are noted as pending (above) and must stay so, for the next run
      // to record them, even if an earlier run's pending deletions were settled at the start.
      this.pendingSettled = false;
    }
    ctx.counters.deleted = deleted.length;
    for (const uidl of uidls) ctx.counters.knownAfterRun.delete(uidl);
    ctx.log.info('deleted from the server', { count: deleted.length });
  }
}
