/**
 * The drainer's writes to a mailbox's state after a run, beside the ones the engine makes: the
 * request marker (moved on while a chain continues, released when it ends), the failure
 * backoff (recorded after a failure retrying soon cannot fix, reset by a run that ends
 * normally) and the depth cap of a continuation chain.
 */
import type { UidlLedger } from '../lib/drain/ports.js';
import type { DrainReport } from '../lib/drain/report.js';
import { failureBackoffMs } from './failure-backoff.js';

export class MailboxStanding {
  constructor(
    private readonly ledger: UidlLedger,
    /** How long a claimed marker holds the mailbox. */
    private readonly markerTtlMs: number,
  ) {}

  /** Move the marker's expiry on (a continuation or a redelivery keeps the request outstanding). */
  async extendMarker(mailboxId: string, token: string | undefined, now: number): Promise<void> {
    if (token === undefined) return;
    await this.ledger.claimRequestMarker(mailboxId, { token, expiresAt: now + this.markerTtlMs }, now);
  }

  async releaseMarker(mailboxId: string, token: string | undefined): Promise<void> {
    if (token === undefined) return;
    await this.ledger.releaseRequestMarker(mailboxId, token);
  }

  /** A run ended normally: no backoff any more; a completed run also clears a chain cap. */
  async succeeded(mailboxId: string, report: Pick<DrainReport, 'moreRemaining'>): Promise<void> {
    await this.ledger.updateMailboxState(mailboxId, {
      nextAttemptAt: null,
      failureStreak: null,
      lastFailure: null,
      ...(report.moreRemaining ? {} : { chainCappedAt: null }),
    });
  }

  /** A failure retrying soon cannot fix: one more in the streak; returns when the next attempt may be. */
  async failed(mailboxId: string, report: Pick<DrainReport, 'stopReason' | 'error'>, now: number): Promise<{ nextAttemptAt: number; streak: number }> {
    const state = await this.ledger.getMailboxState(mailboxId);
    const streak = (state.failureStreak ?? 0) + 1;
    const nextAttemptAt = now + failureBackoffMs(streak);
    await this.ledger.updateMailboxState(mailboxId, {
      failureStreak: streak,
      nextAttemptAt,
      lastFailure: {
        at: now,
        stopReason: report.stopReason,
        code: report.error?.code ?? 'UNKNOWN',
        message: (report.error?.message ?? report.stopReason).slice(0, 500),
      },
    });
    return { nextAttemptAt, streak };
  }

  /** The server asked for a delay between logins: no attempt before `at` (not a failure: no streak). */
  async notBefore(mailboxId: string, at: number): Promise<void> {
    await this.ledger.updateMailboxState(mailboxId, { nextAttemptAt: at });
  }

  async chainCapped(mailboxId: string, now: number): Promise<void> {
    await this.ledger.updateMailboxState(mailboxId, { chainCappedAt: now });
  }
}
