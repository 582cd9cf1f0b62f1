/**
 * One ledger entry on its way through the recorder's batches (message-recorder.ts): its event
 * published, then the entry marked announced; for a new message, recorded first. The object is
 * the batches' callback at every step (it carries its step from batch to batch), so a message
 * costs one object where it cost a callback object and two closures per step. The decisions
 * stay in the recorder (`RecorderSteps`); this only routes each batch's answer to the next step.
 */
import type { BatchCallback } from './batcher.js';
import { describeError } from './errors.js';
import { failureOf } from './failures.js';
import type { MessageDone, StoredMessage } from './message-recorder.js';
import type { LedgerEntry, RecordOutcome } from './ports.js';
import type { RunContext } from './run-context.js';

/** A publish batch's answer for one event. */
export interface PublishResult {
  ok: boolean;
  reason?: string;
}

/** What the steps need of the recorder: its batches and its bookkeeping of marks. */
export interface RecorderSteps {
  readonly ctx: RunContext;
  publish(step: Announcement): void;
  mark(step: Announcement): void;
  /** A published event's mark is written or failed. */
  markSettled(): void;
}

const PUBLISHING = 0;
const MARKING = 1;
/** Marked without publishing (markOnly): none of the announcement's bookkeeping. */
const MARKING_ONLY = 2;

/**
 * Publish the entry's event, then mark it announced; `finish(true)` when both happened,
 * `finish(false)` otherwise (failures noted). Called back by the publish and mark batches.
 */
export class Announcement implements BatchCallback<PublishResult | void> {
  private step = PUBLISHING;

  constructor(
    protected readonly host: RecorderSteps,
    readonly entry: LedgerEntry,
    private readonly again: boolean,
    private readonly then?: (announced: boolean) => void,
  ) {}

  /** Publish, then mark. */
  start(): void {
    const { ctx } = this.host;
    if (this.entry.event === undefined) {
      // An imported entry has no event: nothing of it was stored, so nothing is announced.
      ctx.failures.push({ uidl: this.entry.uidl, code: 'INTERNAL_ERROR', phase: 'publish', message: 'no event to announce (an imported entry)', retryable: false });
      this.finish(false);
      return;
    }
    ctx.counters.pendingUidls.add(this.entry.uidl);
    this.step = PUBLISHING;
    this.host.publish(this);
  }

  /**
   * The ledger was lost and the store already held these bytes: an earlier run announced them
   * (or died before; it cannot be told). Marked announced without publishing again.
   */
  startMarkOnly(): void {
    this.step = MARKING_ONLY;
    this.host.mark(this);
  }

  resolve(result: PublishResult | void): void {
    const { ctx } = this.host;
    if (this.step === PUBLISHING) {
      const published = result as PublishResult;
      if (!published.ok) return this.notPublished(published.reason);
      this.step = MARKING;
      try {
        this.host.mark(this);
      } catch (error) {
        // Thrown from the publish batch's callback: the batch rejects this event (below).
        this.step = PUBLISHING;
        throw error;
      }
    } else if (this.step === MARKING) {
      this.host.markSettled();
      ctx.counters.pendingUidls.delete(this.entry.uidl);
      ctx.counters.announced += 1;
      if (this.again) ctx.counters.reannounced += 1;
      this.finish(true);
    } else {
      this.finish(true);
    }
  }

  reject(error: unknown): void {
    const { ctx } = this.host;
    if (this.step === PUBLISHING) return this.notPublished(describeError(error));
    // Published but not marked: the next run publishes it again (same id). Not deletable now.
    if (this.step === MARKING) this.host.markSettled();
    ctx.failures.push(failureOf(error, 'ledger', this.entry.uidl));
    this.finish(false);
  }

  /** The announcement ended (called once): true when the event is published and marked. */
  protected finish(announced: boolean): void {
    this.then?.(announced);
  }

  private notPublished(reason: string | undefined): void {
    this.host.ctx.failures.push({
      uidl: this.entry.uidl,
      code: 'EVENTS_FAILED',
      phase: 'publish',
      message: `event not published (${reason ?? 'unknown'}); the next run announces it`,
      retryable: true,
    });
    this.finish(false);
  }
}

/** What the recorder decides once a new message's entry is recorded (or failed to be). */
export interface RecordingHost extends RecorderSteps {
  recorded(steps: Recording, outcome: RecordOutcome): void;
  notRecorded(steps: Recording, error: unknown): void;
  announced(steps: Recording, announced: boolean): void;
}

/**
 * A new message's entry: recorded (the ledger batch's callback), then announced as above;
 * what happens at each end is the recorder's (RecordingHost).
 */
export class Recording extends Announcement {
  private recordedYet = false;

  constructor(
    protected override readonly host: RecordingHost,
    entry: LedgerEntry,
    /** The message, durable in the store. */
    readonly stored: StoredMessage,
    /** Called once, when the message's steps have ended. */
    readonly done: MessageDone,
  ) {
    super(host, entry, false);
  }

  override resolve(result: RecordOutcome | PublishResult | void): void {
    if (this.recordedYet) return super.resolve(result as PublishResult | void);
    this.recordedYet = true;
    try {
      this.host.recorded(this, result as RecordOutcome);
    } catch (error) {
      // A defect on the way (an outcome that is not one): noted as the record's failure.
      this.host.notRecorded(this, error);
    }
  }

  override reject(error: unknown): void {
    if (this.recordedYet) return super.reject(error);
    this.recordedYet = true;
    this.host.notRecorded(this, error);
  }

  protected override finish(announced: boolean): void {
    this.host.announced(this, announced);
  }
}
