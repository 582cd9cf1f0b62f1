/**
 * After the store: record → announce → DELE, for one message at a time but in batches with the
 * others. Ledger writes, events and "announced" marks each go out through a `Batcher`; a
 * message's part of a batch continues in the batch's callback, so a message costs no promise
 * or async frame per step (for a mailbox of small messages that is what keeps the run fast).
 * This file and announcement.ts (the object that carries a message from batch to batch) are the
 * only places of the engine that work in callbacks; failures are noted in the run's failures,
 * never thrown.
 */
import { Announcement, Recording, type PublishResult, type RecordingHost } from './announcement.js';
import { Batcher } from './batcher.js';
import type { Deletions } from './deletions.js';
import { describeError, type DrainPhase } from './errors.js';
import { EVENT_SCHEMA_VERSION, type DrainEvent, type EmailSkippedDetail, type EmailStoredDetail, type MessageMetadata } from './events.js';
import { failureOf } from './failures.js';
import { skippedEventId, storedEventId } from './keys.js';
import { deleteAllowed, sameMessageUnseen, type ServerMessage } from './plan.js';
import { ignoreLogRecord, type LedgerEntry, type PublishOutcome, type RecordOutcome, type StoredObject } from './ports.js';
import { newRefetchSummary, refetchVerdict, type RefetchStoreOutcome } from './refetch.js';
import { recordBatchItems } from './record-batch-items.js';
import { noteBackendFailure, type RunContext } from './run-context.js';
import { wellFormed, wellFormedText } from './well-formed.js';

/**
 * Ledger and event batches: flushed when full (record-batch-items.ts: 64, or up to 256 with many
 * messages in flight to the store) or after this long. The EventBridge sink splits events into
 * PutEvents requests of 10.
 */
export { LEDGER_BATCH_ITEMS } from './record-batch-items.js';
const BATCH_DELAY_MS = 2;

/** A message durable in the store, on its way to the ledger and the bus. */
export interface StoredMessage {
  message: ServerMessage;
  key: string;
  stored: StoredObject;
  sha256: string;
  size: number;
  /**
   * Read as the bytes flowed: known already (a message read at once), or still under way (or
   * failing: the message is recorded anyway).
   */
  metadata: MessageMetadata | Promise<MessageMetadata>;
}

/** Why a message is skipped, and the size to report (as listed, or as received when larger). */
/** `limit`: the cap the message ran past (default: the size cap). */
export type SkipReason = { reason: 'too-large'; size: number; limit?: number } | { reason: 'unreadable'; size: number; error: string };

/** Called once per message when its steps have ended; `defect` is a bug that ends the run. */
export type MessageDone = (defect?: { error: unknown }) => void;

/** ISO 8601 text of `ms`; the last one is kept (the messages of one millisecond share it). */
let lastIso = { ms: Number.NaN, text: '' };
const iso = (ms: number): string => {
  if (ms !== lastIso.ms) lastIso = { ms, text: new Date(ms).toISOString() };
  return lastIso.text;
};

export class MessageRecorder implements RecordingHost {
  private readonly records: Batcher<LedgerEntry, RecordOutcome>;
  private readonly publishes: Batcher<DrainEvent, PublishResult>;
  private readonly marks: Batcher<string, void>;
  /** The publish batch under way (batches go one at a time). */
  private publishTurn: Promise<void> = Promise.resolve();
  /** Events published whose announced mark is not written yet, and who waits for none to be left. */
  private unmarked = 0;
  private onMarked: Array<() => void> = [];

  constructor(
    /** @internal (RecorderSteps) */
    readonly ctx: RunContext,
    private readonly deletions: Deletions,
  ) {
    const { ledger, events } = ctx.ports;
    const mailboxId = ctx.mailbox.id;
    // A continuation that fails even in its reject path (a defect) is reported, not thrown.
    const defectIn =
      (phase: DrainPhase) =>
      (error: unknown): void => {
        ctx.failures.push(failureOf(error, phase));
      };
    const batchItems = recordBatchItems(ctx.options.storeConcurrency);
    this.records = new Batcher((entries) => ledger.record(entries), batchItems, BATCH_DELAY_MS, defectIn('ledger'));
    this.marks = new Batcher(
      async (uidls) => {
        await ledger.markAnnounced(mailboxId, uidls, ctx.clock.now());
        return uidls.map(() => undefined);
      },
      batchItems,
      BATCH_DELAY_MS,
      defectIn('ledger'),
    );
    this.publishes = new Batcher(
      async (batch) => {
        // One batch at a time, and only once the marks of the previous one are written: a
        // kill -9 then leaves at most one batch published but not marked (announced again).
        const mine = this.publishTurn.then(() => this.marksWritten()).then(() => events.publish(batch));
        this.publishTurn = mine.then(
          (published) => {
            this.unmarked += published.published.length;
          },
          () => undefined,
        );
        const outcome: PublishOutcome = await mine;
        const ok = new Set(outcome.published);
        const failed = new Map(outcome.failed.map((f) => [f.id, f.reason]));
        return batch.map((e) => (ok.has(e.id) ? { ok: true } : { ok: false, reason: failed.get(e.id) ?? 'not confirmed by the event sink' }));
      },
      batchItems,
      BATCH_DELAY_MS,
      defectIn('publish'),
    );
  }

  /** Resolves once every published event's mark is written (or failed). */
  private marksWritten(): Promise<void> {
    if (this.unmarked === 0) return Promise.resolve();
    this.marks.flush();
    return new Promise((resolve) => this.onMarked.push(resolve));
  }

  /** @internal (RecorderSteps) */
  markSettled(): void {
    this.unmarked -= 1;
    if (this.unmarked > 0) return;
    const waiting = this.onMarked;
    this.onMarked = [];
    for (const wake of waiting) wake();
  }

  /** No stream of messages is coming any more: partial batches go out at once. */
  closingTime(): void {
    this.records.closingTime();
    this.publishes.closingTime();
    this.marks.closingTime();
  }

  /** Wait for every batch under way. */
  async flush(): Promise<void> {
    await this.records.drain();
    await this.publishes.drain();
    await this.marks.drain();
  }

  /** Record, announce and (per policy) DELE a stored message, then `done()`. Never throws. */
  recordStored(s: StoredMessage, done: MessageDone): void {
    if (!(s.metadata instanceof Promise)) {
      // Read at once (most small messages): recorded now, without a continuation.
      try {
        this.recordWith(s, s.metadata, undefined, done);
      } catch (error) {
        done({ error }); // a defect, as below
      }
      return;
    }
    s.metadata
      .then(
        (metadata) => this.recordWith(s, metadata, undefined, done),
        (error: unknown) => {
          const metadataError = describeError(error).slice(0, 500);
          this.ctx.failures.push({ uidl: s.message.uidl, code: 'METADATA_FAILED', phase: 'fetch', message: metadataError, retryable: false });
          this.recordWith(s, { attachments: [] }, metadataError, done);
        },
      )
      // A defect here (not a port's failure: those are noted on the way) ends the run.
      .catch((error: unknown) => done({ error }));
  }

  private recordWith(s: StoredMessage, read: MessageMetadata, metadataError: string | undefined, done: MessageDone): void {
    const { ctx } = this;
    // Strict JSON in valid UTF-8: decoded header text may hold lone surrogates.
    const metadata = wellFormed(read);
    const uidl = s.message.uidl;
    const now = ctx.clock.now();
    const time = iso(now);
    const detail: EmailStoredDetail = {
      schemaVersion: EVENT_SCHEMA_VERSION,
      id: storedEventId(ctx.mailbox.id, uidl),
      mailboxId: ctx.mailbox.id,
      uidl,
      storage: s.stored.ref,
      size: s.size,
      sha256: s.sha256,
      storedAt: time,
      metadata,
    };
    // Only present when extraction failed (the event's JSON has no such key otherwise).
    if (metadataError !== undefined) detail.metadataError = wellFormedText(metadataError);
    const entry: LedgerEntry = {
      mailboxId: ctx.mailbox.id,
      uidl,
      status: 'stored',
      key: s.key,
      sha256: s.sha256,
      size: s.size,
      firstSeenAt: now,
      event: { id: detail.id, detailType: 'Email Stored', time, detail },
    };
    this.records.push(entry, new Recording(this, entry, s, done));
  }

  /** @internal (RecordingHost) A new message's entry is recorded: announce it, unless another run recorded it first. */
  recorded(steps: Recording, outcome: RecordOutcome): void {
    const { ctx } = this;
    const s = steps.stored;
    const uidl = s.message.uidl;
    ctx.counters.consecutiveBackendFailures = 0;
    ctx.counters.knownAfterRun.add(uidl);
    if (!outcome.ok) {
      // Another run recorded it first (a lease was lost or bypassed): it owns the announcement.
      const sameBytes = outcome.conflict?.sha256 === s.sha256;
      ctx.failures.push({
        uidl,
        code: 'LEDGER_CONFLICT',
        phase: 'ledger',
        message: sameBytes ? 'already recorded by another run (same bytes)' : 'already recorded by another run with different content',
        retryable: false,
      });
      steps.done();
      return;
    }
    // (A dropped debug record costs no fields object: see ignoreLogRecord.)
    if (ctx.log.debug !== ignoreLogRecord) ctx.log.debug('stored', { uidl, size: s.size, sha256: s.sha256, key: s.key });
    if (s.stored.existed && ctx.ledgerLost) steps.startMarkOnly();
    else steps.start();
  }

  /** @internal (RecordingHost) The ledger did not take a new message's entry. */
  notRecorded(steps: Recording, error: unknown): void {
    try {
      noteBackendFailure(this.ctx, error, 'ledger', steps.stored.message.uidl);
    } finally {
      steps.done();
    }
  }

  /** @internal (RecordingHost) A new message's announcement ended: DELE it per policy. */
  announced(steps: Recording, announced: boolean): void {
    if (announced && deleteAllowed(steps.entry, this.ctx.mailbox.deletePolicy, this.ctx.clock.now())) this.deletions.request(steps.stored.message);
    steps.done();
  }

  /** @internal (RecorderSteps) */
  publish(step: Announcement): void {
    this.publishes.push(step.entry.event!, step);
  }

  /** @internal (RecorderSteps) */
  mark(step: Announcement): void {
    this.marks.push(step.entry.uidl, step);
  }

  /**
   * A stored message retrieved again (--refetch): compared with what the ledger recorded and
   * what the store holds (refetch.ts), announced again under the entry's event id, and DELEd per
   * policy only when its bytes are those stored. Nothing is recorded anew. Never throws.
   */
  recordRefetched(
    entry: LedgerEntry,
    message: ServerMessage,
    received: { sha256: string; size: number },
    store: RefetchStoreOutcome,
    done: MessageDone,
  ): void {
    const { ctx } = this;
    const summary = (ctx.counters.refetch ??= newRefetchSummary());
    const verdict = refetchVerdict(entry, received, store);
    summary.refetched += 1;
    if (verdict.kind === 'same') summary.same += 1;
    else if (verdict.kind === 'restored') {
      summary.restored += 1;
      ctx.log.info('refetched: the stored copy was missing and is written again', { uidl: entry.uidl, sha256: received.sha256 });
    } else {
      summary.differences.push(verdict.difference);
      const d = verdict.difference;
      ctx.log.warn('refetched message differs from the stored copy; the stored copy is kept', {
        uidl: d.uidl,
        storedSha256: d.storedSha256,
        storedSize: d.storedSize,
        receivedSha256: d.receivedSha256,
        receivedSize: d.receivedSize,
        storedCopy: d.storedCopy,
      });
    }
    ctx.counters.knownAfterRun.add(entry.uidl);
    this.announceThen(entry, false, (announced) => {
      if (announced && verdict.kind !== 'differs' && deleteAllowed(entry, ctx.mailbox.deletePolicy, ctx.clock.now())) this.deletions.request(message);
      done();
    });
  }

  /**
   * A message not stored: over the size cap (as listed, or as received), or unreadable (the
   * server refused its RETR for good). Recorded and announced once as skipped, never deleted.
   */
  async recordSkipped(message: ServerMessage, why: SkipReason = { reason: 'too-large', size: message.size }): Promise<void> {
    const { ctx } = this;
    const now = ctx.clock.now();
    const id = skippedEventId(ctx.mailbox.id, message.uidl);
    const head = { schemaVersion: EVENT_SCHEMA_VERSION, id, mailboxId: ctx.mailbox.id, uidl: message.uidl } as const;
    const detail: EmailSkippedDetail =
      why.reason === 'too-large'
        ? { ...head, reason: 'too-large', size: why.size, limit: why.limit ?? ctx.mailbox.maxMessageBytes ?? 0, seenAt: iso(now) }
        : { ...head, reason: 'unreadable', size: why.size, error: wellFormedText(why.error), seenAt: iso(now) };
    const entry: LedgerEntry = {
      mailboxId: ctx.mailbox.id,
      uidl: message.uidl,
      status: 'skipped',
      size: why.size,
      firstSeenAt: now,
      event: { id: detail.id, detailType: 'Email Skipped', time: iso(now), detail },
    };
    try {
      const outcome = await this.records.add(entry);
      if (!outcome.ok) return;
    } catch (error) {
      ctx.failures.push(failureOf(error, 'ledger', message.uidl));
      return;
    }
    ctx.counters.skipped += 1;
    ctx.counters.knownAfterRun.add(message.uidl);
    if (why.reason === 'too-large') ctx.log.info('skipped: larger than the size cap', { uidl: message.uidl, size: why.size, limit: detail.limit });
    else ctx.log.warn('skipped: the server cannot read it', { uidl: message.uidl, size: why.size });
    await this.announce(entry, false);
  }

  /**
   * Announce what an earlier run recorded but could not announce, then DELE it per policy. A
   * re-announced Email Skipped keeps its entry 'skipped': never stored, never deleted. A message
   * not seen in this session goes only when UIDL and size show it is the one stored
   * (`sameMessageUnseen`); otherwise a later run retrieves it to check.
   */
  async reannounce(entry: LedgerEntry, message: ServerMessage): Promise<void> {
    if (
      (await this.announce(entry, true)) &&
      sameMessageUnseen(message, entry) &&
      deleteAllowed(entry, this.ctx.mailbox.deletePolicy, this.ctx.clock.now())
    ) {
      this.deletions.request(message);
    }
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
    new Announcement(this, entry, again, then).start();
  }
}
