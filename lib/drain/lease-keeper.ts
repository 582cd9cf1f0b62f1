/**
 * The mailbox's lease for one run: taken at the start, renewed every third of its duration
 * while the run lasts, given up at the end. A failed renewal marks the run's context
 * `leaseLost` (no new message, no DELE).
 */
import { describeError } from './errors.js';
import type { Lease } from './ports.js';
import type { RunContext } from './run-context.js';

const DEFAULT_LEASE_TTL_MS = 5 * 60_000;

export class LeaseKeeper {
  private lease: Lease | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly ctx: RunContext) {}

  get held(): boolean {
    return this.lease !== undefined;
  }

  /** False when another run holds the lease (the mailbox is busy). */
  async acquire(): Promise<boolean> {
    const { ctx } = this;
    const ttl = ctx.options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
    this.lease = await ctx.ports.ledger.acquireLease(ctx.mailbox.id, ctx.runId, ttl, ctx.clock.now());
    if (this.lease === undefined) {
      ctx.log.info('mailbox is busy: another run holds its lease');
      return false;
    }
    this.timer = setInterval(() => {
      const current = this.lease;
      if (current === undefined) return;
      ctx.ports.ledger.renewLease(current, ttl, ctx.clock.now()).then(
        (renewed) => {
          this.lease = renewed;
        },
        (error: unknown) => {
          ctx.leaseLost = true;
          ctx.log.warn('lease lost; stopping', { error: describeError(error) });
        },
      );
    }, Math.max(1000, Math.floor(ttl / 3)));
    this.timer.unref();
    return true;
  }

  /** Stop renewing (the run is over). */
  stopRenewing(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
  }

  /** Give the lease up; a failure only means it expires on its own. */
  async release(): Promise<void> {
    if (this.lease === undefined) return;
    await this.ctx.ports.ledger.releaseLease(this.lease).catch((error: unknown) => {
      this.ctx.log.warn('could not release the lease; it expires on its own', { error: describeError(error) });
    });
  }
}
