/**
 * Fetch and store: RETR the planned messages in server order (pipelined by the client), and
 * for each, hash it, read its metadata and store it (whole in one call when the store offers
 * `put` and the message is small, streamed otherwise), then hand it to the MessageRecorder
 * (record → announce → DELE). POP3 keeps streaming the next messages while earlier ones are
 * committed, within three bounds: messages open in the store, bytes of whole messages the store
 * holds, and messages fetched but not yet announced.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { isPop3Error, type Pop3Client } from '../pop3/index.js';
import { Semaphore } from './batcher.js';
import type { MessageMetadata } from './events.js';
import { isDrainError } from './errors.js';
import { StopRun } from './failures.js';
import { InFlight } from './in-flight.js';
import { messageDigest, messageKeyForDigest } from './keys.js';
import { LEDGER_BATCH_ITEMS, type MessageDone, type MessageRecorder } from './message-recorder.js';
import { OverCapError, pumpMessage } from './message-pump.js';
import { messageByteCap, type ByteCap } from './byte-cap.js';
import { createMetadataExtractor, readMetadata } from './metadata.js';
import { admitRequest, backendDownStop, endOfSessionVerdict, stopBeforeNext, type RunLimits, type ServerMessage } from './plan.js';
import type { LedgerEntry, MessageWriter, StoredObject } from './ports.js';
import type { StopReason } from './report.js';
import { noteBackendFailure, reportProgress, type RunContext } from './run-context.js';
import { sha256Hex } from './sha256.js';
import { retrievePastUnreadable, type RetrFailureVerdict } from './unreadable.js';

const DEFAULT_STORE_CONCURRENCY = 8;
/**
 * Messages fetched but not yet recorded and announced (their ledger entries and events wait in
 * the recorder's batches; a message's bytes are not held once it is in the store): enough for
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

/** Where a message's bytes go in the store, derived from mailbox id and UIDL (keys.ts). */
interface Target {
  message: ServerMessage;
  digest: string;
  key: string;
}

/** What the bytes were, as measured while they flowed. */
interface Measured {
  sha256: string;
  size: number;
  /** Known already when the message was read at once (readMetadata), else still under way. */
  metadata: MessageMetadata | Promise<MessageMetadata>;
}

function bodyBytes(body: readonly Buffer[]): number {
  let n = 0;
  for (const chunk of body) n += chunk.length;
  return n;
}

export class MessagePipeline {
  constructor(
    private readonly ctx: RunContext,
    private readonly client: Pop3Client,
    private readonly recorder: MessageRecorder,
    private readonly limits: RunLimits,
    /** The hard bound on the session (run clock), for the verdict at a stop with RETRs in flight. */
    private readonly hardDeadline?: number,
    /** With --refetch: the ledger entries of the stored messages among those fetched, by UIDL. */
    private readonly refetching?: ReadonlyMap<string, LedgerEntry>,
  ) {}

  /** Set while RETRs are being received (the retrieve loop runs). */
  private receiving: ReturnType<MessagePipeline['admission']> | undefined;

  /**
   * The deadline (or a stop signal) came while messages are being received: close the
   * connection at once when what is in flight cannot arrive before the hard deadline
   * (plan.ts, endOfSessionVerdict); otherwise the loop stops at the next message and QUITs.
   */
  cutOffIfLate(reason: StopReason): void {
    const admission = this.receiving;
    if (admission === undefined || this.client.isClosed) return;
    const verdict = endOfSessionVerdict({ now: this.ctx.clock.now(), hardDeadline: this.hardDeadline, ...admission.inFlight() });
    if (verdict === 'quit') return;
    this.ctx.log.info('stopping with responses in flight that cannot arrive in time: closing the connection', { stopReason: reason });
    this.client.abort(`${reason}: responses in flight could not arrive in time; connection closed`);
  }

  private stopBefore(next: ServerMessage): StopReason | undefined {
    const { ctx } = this;
    return stopBeforeNext(
      {
        cancelled: ctx.options.signal?.aborted === true,
        leaseLost: ctx.leaseLost,
        now: ctx.clock.now(),
        // Messages and bytes received, stored or not: a message cut off at the size cap counts too.
        fetched: ctx.counters.fetched + ctx.counters.overCapMessages,
        fetchedBytes: ctx.counters.fetchedBytes + ctx.counters.overCapBytes,
        nextSize: next.size,
      },
      this.limits,
    );
  }

  /**
   * The budget's say before a RETR is sent (plan.ts, admitRequest): returns the admission
   * callback for `retrieve` and the reason it last refused, if it did.
   */
  private admission(): {
    admit: (item: { size?: number }) => boolean;
    refused: () => StopReason | undefined;
    inFlight: () => { bytesInFlight: number; bytesPerMs: number | undefined };
  } {
    const { ctx } = this;
    // The transfer rate is a physical measure: real elapsed time (monotonic), not the run's clock,
    // which a caller may set (a test's jumps past the deadline must not make the link look slow).
    const started = performance.now();
    const rate = (received: number): number | undefined => {
      const elapsed = performance.now() - started;
      return received > 0 && elapsed > 0 ? received / elapsed : undefined;
    };
    let requested = 0;
    let requestedBytes = 0;
    let refusal: StopReason | undefined;
    const admit = (item: { size?: number }): boolean => {
      const now = ctx.clock.now();
      const received = ctx.counters.fetchedBytes;
      const nextSize = item.size ?? 0;
      refusal = admitRequest(
        {
          cancelled: ctx.options.signal?.aborted === true,
          leaseLost: ctx.leaseLost,
          now,
          requested,
          requestedBytes,
          bytesInFlight: Math.max(0, requestedBytes - received),
          bytesPerMs: rate(received),
          nextSize,
        },
        this.limits,
      );
      if (refusal !== undefined) return false;
      requested += 1;
      requestedBytes += nextSize;
      return true;
    };
    const inFlight = (): { bytesInFlight: number; bytesPerMs: number | undefined } => {
      const received = ctx.counters.fetchedBytes;
      return { bytesInFlight: Math.max(0, requestedBytes - received), bytesPerMs: rate(received) };
    };
    return { admit, refused: () => refusal, inFlight };
  }

  private throwIfBackendDown(): void {
    const stop = backendDownStop(this.ctx.counters.consecutiveBackendFailures, this.ctx.failures.at(-1));
    if (stop !== undefined) throw new StopRun(stop, this.ctx.failures.at(-1));
  }

  /**
   * Fetch and store `messages` until done or a stop; resolves with the budget's stop (or
   * undefined) once every message started has been recorded and announced (or failed). Throws
   * StopRun when the backend is down, a Pop3Error when the session is gone.
   */
  async run(messages: ServerMessage[]): Promise<StopReason | undefined> {
    const { ctx } = this;
    ctx.counters.remaining = messages.length;
    if (messages.length === 0) return undefined;
    const initialStop = this.stopBefore(messages[0]!);
    if (initialStop !== undefined) return initialStop;
    reportProgress(ctx, 'fetching');
    const storeConcurrency = ctx.options.storeConcurrency ?? DEFAULT_STORE_CONCURRENCY;
    const slots = new Semaphore(storeConcurrency);
    const unannounced = new Semaphore(Math.max(MIN_UNANNOUNCED_IN_FLIGHT, UNANNOUNCED_PER_STORE_SLOT * storeConcurrency));
    const storeBytes = new Semaphore(STORE_BYTES_IN_FLIGHT);
    const inFlight = new InFlight();
    const byNumber = new Map(messages.map((m) => [m.number, m]));
    const whole = ctx.ports.store.put !== undefined;
    let index = 0;
    let stop: StopReason | undefined;
    const admission = this.admission();
    this.receiving = admission;
    const retrieveOptions = { admit: admission.admit, ...(whole ? { collectUpTo: WHOLE_MESSAGE_MAX_BYTES } : {}) };
    try {
      const retrieval = retrievePastUnreadable(this.client, messages, retrieveOptions, (message, verdict) => {
        index += 1;
        this.refused(message, verdict, inFlight);
      });
      for await (const retrieved of retrieval) {
        const message = byNumber.get(retrieved.number)!;
        stop = this.stopBefore(message);
        if (stop !== undefined) {
          if (retrieved.body === undefined) retrieved.stream.destroy();
          this.cutOffIfLate(stop);
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
        const done: MessageDone = (defect) => {
          if (defect !== undefined) inFlight.fail(defect.error);
          if (finished) return;
          finished = true;
          releaseSlot();
          unannounced.release();
          inFlight.end();
        };
        const target = this.targetOf(message);
        const cap = ctx.mailbox.maxMessageBytes;
        if (retrieved.body !== undefined && cap !== undefined && bodyBytes(retrieved.body) > cap) {
          // Listed under the cap, received whole over it (the server lied in LIST).
          const seen = bodyBytes(retrieved.body);
          ctx.counters.overCapBytes += seen;
          ctx.counters.overCapMessages += 1;
          releaseSlot();
          this.skipOverCap(message, seen).then(
            () => done(),
            (error: unknown) => done({ error }),
          );
        } else if (retrieved.body !== undefined && whole) {
          this.storeWhole(target, retrieved.body, releaseSlot, done);
        } else {
          let task: Promise<void>;
          try {
            ({ task } = await this.receive(target, retrieved.stream, releaseSlot));
          } catch (error) {
            done();
            throw error;
          }
          task.then(
            () => done(),
            (error: unknown) => done({ error }),
          );
        }
        reportProgress(ctx, 'fetching');
        this.throwIfBackendDown();
      }
    } catch (error) {
      this.receiving = undefined;
      ctx.counters.remaining = messages.length - index;
      await inFlight.idle();
      throw error;
    }
    this.receiving = undefined;
    ctx.counters.remaining = messages.length - index;
    stop ??= admission.refused();
    reportProgress(ctx, 'finishing');
    // The last messages go through each step without waiting for company.
    this.recorder.closingTime();
    await inFlight.idle();
    this.throwIfBackendDown();
    return stop;
  }

  /**
   * The server refused one message's RETR and the session goes on: it is reported under its
   * UIDL and left on the server; when the refusal is for good, recorded and announced once as
   * skipped (unreadable).
   */
  private refused(message: ServerMessage, verdict: Exclude<RetrFailureVerdict, { kind: 'stop' }>, inFlight: InFlight): void {
    const { ctx } = this;
    ctx.failures.push(verdict.failure);
    ctx.log.warn('the server refused a message: left on the server', { uidl: message.uidl, error: verdict.failure.message });
    if (verdict.kind !== 'unreadable') return;
    inFlight.start();
    this.recorder
      .recordSkipped(message, { reason: 'unreadable', size: message.size, error: verdict.failure.message })
      .then(
        () => inFlight.end(),
        (error: unknown) => {
          inFlight.fail(error);
          inFlight.end();
        },
      );
  }

  /**
   * Sent more than the size cap although listed under it, or past the run's byte budget and
   * its listed size (byte-cap.ts): not stored, not deleted, announced as skipped with the size seen.
   */
  private skipOverCap(message: ServerMessage, seen: number, cap: ByteCap = { bytes: this.ctx.mailbox.maxMessageBytes ?? 0, by: 'size-cap' }): Promise<void> {
    const limit = cap.by === 'byte-budget' ? `past the run's byte budget (${this.limits.maxBytes} bytes, ${cap.bytes} of them left for it)` : `over the size cap of ${cap.bytes}`;
    this.ctx.failures.push({
      uidl: message.uidl,
      code: 'LIMIT_EXCEEDED',
      phase: 'fetch',
      message: `listed at ${message.size} bytes but sent ${seen} or more, ${limit}; not stored, left on the server`,
      retryable: false,
    });
    return this.recorder.recordSkipped(message, { reason: 'too-large', size: seen, limit: cap.bytes });
  }

  private targetOf(message: ServerMessage): Target {
    const digest = messageDigest(this.ctx.mailbox.id, message.uidl);
    return { message, digest, key: messageKeyForDigest(this.ctx.mailbox.id, digest) };
  }

  private objectMetadata(target: Target): Record<string, string> {
    return { 'popdrain-mailbox': this.ctx.mailbox.id, 'popdrain-uidl-digest': target.digest };
  }

  /**
   * Stream one message into the store while hashing it and reading its metadata. Resolves
   * once the bytes are spooled (the POP3 stream is free for the next message) with a task that
   * commits, records, announces and (per policy) deletes it. `storeDone` is called once the
   * store commit settled (the message no longer holds a store slot).
   */
  private async receive(target: Target, stream: Readable, storeDone: () => void): Promise<{ task: Promise<void> }> {
    const { ctx } = this;
    const uidl = target.message.uidl;
    let writer;
    try {
      writer = await ctx.ports.store.open(target.key, { mailboxId: ctx.mailbox.id, uidl, expectedSize: target.message.size });
    } catch (error) {
      stream.destroy();
      noteBackendFailure(ctx, error, 'store', uidl);
      return { task: Promise.resolve() };
    }
    const extractor = createMetadataExtractor();
    const cap = messageByteCap({
      maxMessageBytes: ctx.mailbox.maxMessageBytes,
      maxBytes: this.limits.maxBytes,
      received: ctx.counters.fetchedBytes + ctx.counters.overCapBytes,
      listed: target.message.size,
    });
    let pumped;
    try {
      pumped = await pumpMessage(stream, writer.stream, extractor.stream, cap.bytes);
    } catch (error) {
      extractor.stream.destroy();
      await writer.abort();
      if (isPop3Error(error)) throw error; // the session is gone: stop the run
      if (error instanceof OverCapError) {
        // The client drops the rest of the body; the session goes on.
        ctx.counters.overCapBytes += error.seen;
        ctx.counters.overCapMessages += 1;
        storeDone();
        return { task: this.skipOverCap(target.message, error.seen, cap) };
      }
      noteBackendFailure(ctx, error, 'store', uidl);
      return { task: Promise.resolve() };
    }
    extractor.stream.end();
    ctx.counters.fetched += 1;
    ctx.counters.fetchedBytes += pumped.size;
    const metadata = extractor.result();
    metadata.catch(() => undefined); // awaited after the commit; never an unhandled rejection
    return { task: this.commit(target, writer, { sha256: pumped.sha256, size: pumped.size, metadata }, storeDone) };
  }

  private async commit(target: Target, writer: MessageWriter, measured: Measured, storeDone: () => void): Promise<void> {
    let stored: StoredObject;
    try {
      stored = await writer.commit({ sha256: measured.sha256, size: measured.size, metadata: this.objectMetadata(target) });
    } catch (error) {
      await writer.abort();
      storeDone();
      await new Promise<void>((resolve, reject) => this.storeFailed(target, measured, error, (defect) => (defect === undefined ? resolve() : reject(defect.error))));
      return;
    }
    // Durable in the store: the slot goes to the next message while this one is recorded.
    storeDone();
    await new Promise<void>((resolve, reject) => this.handOn(target, stored, measured, (defect) => (defect === undefined ? resolve() : reject(defect.error))));
  }

  /** A message durable in the store goes to the recorder: recorded as new, or compared as a refetch. */
  private handOn(target: Target, stored: StoredObject, measured: Measured, done: MessageDone): void {
    const entry = this.refetching?.get(target.message.uidl);
    if (entry === undefined) this.recorder.recordStored({ message: target.message, key: target.key, stored, ...measured }, done);
    else this.recorder.recordRefetched(entry, target.message, measured, { kind: stored.existed ? 'existed' : 'written' }, done);
  }

  /**
   * The store did not take a message: noted (it stays on the server), except a refetched one
   * whose stored copy holds other bytes (STORE_CONFLICT: kept), which is a difference to report.
   */
  private storeFailed(target: Target, measured: Measured, error: unknown, done: MessageDone): void {
    const entry = this.refetching?.get(target.message.uidl);
    if (entry !== undefined && measured.size > 0 && isDrainError(error) && error.code === 'STORE_CONFLICT') {
      this.recorder.recordRefetched(entry, target.message, measured, { kind: 'conflict', message: error.message }, done);
      return;
    }
    noteBackendFailure(this.ctx, error, 'store', target.message.uidl);
    done();
  }

  /**
   * A message received whole, to a store that takes it in one call (`put`): hash it and read
   * its metadata (both at once, no stream), store it, then hand it to the recorder.
   * `storeDone` as for `receive`; `done` once the message is announced or has failed on the
   * way. Never throws.
   */
  private storeWhole(target: Target, body: readonly Buffer[], storeDone: () => void, done: MessageDone): void {
    const { ctx } = this;
    const uidl = target.message.uidl;
    let put: Promise<StoredObject>;
    let measured: Measured;
    try {
      let sha256: string;
      let size = 0;
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
      ctx.counters.fetched += 1;
      ctx.counters.fetchedBytes += size;
      const metadata = readMetadata(body);
      // Handled when the message is recorded; until then, or if the store fails and it never
      // is, a rejection must not count as unhandled.
      if (metadata instanceof Promise) metadata.catch(() => undefined);
      measured = { sha256, size, metadata };
      put = ctx.ports.store.put!(target.key, { mailboxId: ctx.mailbox.id, uidl }, body, { sha256, size, metadata: this.objectMetadata(target) });
    } catch (error) {
      put = Promise.reject(error);
      measured = { sha256: '', size: 0, metadata: { attachments: [] } };
    }
    // (A defect in either continuation ends the run, caught in each: no promise more for it.)
    put.then(
      (stored) => {
        try {
          // Durable in the store: the slot goes to the next message while this one is recorded.
          storeDone();
          this.handOn(target, stored, measured, done);
        } catch (error) {
          storeDone();
          done({ error });
        }
      },
      (error: unknown) => {
        try {
          storeDone();
          this.storeFailed(target, measured, error, done);
        } catch (defect) {
          storeDone();
          done({ error: defect });
        }
      },
    );
  }
}
