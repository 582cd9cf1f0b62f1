/**
 * The event sink on EventBridge: PutEvents in batches that respect both of its limits (10
 * entries, 256 KiB per request), sent at once (up to MAX_PUT_EVENTS_IN_FLIGHT), retrying what the bus reports as failed and what fails as a
 * whole request, on top of the SDK's own retries. Failures come back in the outcome, by event
 * id; `publish` never throws.
 */
import {
  PutEventsCommand,
  type EventBridgeClient,
  type PutEventsRequestEntry,
  type PutEventsResultEntry,
} from '@aws-sdk/client-eventbridge';
import { detailJson, EVENT_SOURCE, MAX_EVENT_ENTRY_BYTES, type DrainEvent } from '../../drain/events.js';
import type { EventSink, PublishOutcome } from '../../drain/ports.js';
import { describeSdkError, isRetryableSdkError } from './sdk-error.js';
import { describeError } from '../../drain/errors.js';
import { mapBounded } from './map-bounded.js';

/** PutEvents takes at most this many entries per request. */
export const MAX_ENTRIES_PER_PUT_EVENTS = 10;
/** PutEvents takes at most this many entry bytes per request (the sum of the entries' sizes). */
export const MAX_PUT_EVENTS_REQUEST_BYTES = 256 * 1024;
/** How EventBridge counts a `Time` in an entry's size, whatever its form. */
export const TIME_ENTRY_BYTES = 14;
/**
 * PutEvents requests of one `publish` in flight at once. The engine publishes up to 64 events
 * at a time (7 requests): one after the other they would cost 7 round trips (at 20-30 ms each,
 * a cap near 300 events/s on a run), at once about one.
 */
export const MAX_PUT_EVENTS_IN_FLIGHT = 8;

export const DEFAULT_PUBLISH_ATTEMPTS = 5;
export const DEFAULT_PUBLISH_BASE_DELAY_MS = 100;
export const DEFAULT_PUBLISH_MAX_DELAY_MS = 5_000;

/** Per-entry error codes that EventBridge documents as permanent: retrying cannot help. */
const PERMANENT_ENTRY_ERRORS: ReadonlySet<string> = new Set([
  'AccessDeniedException',
  'InvalidAccountIdException',
  'InvalidArgument',
  'MalformedDetail',
  'RedactionFailure',
  'NotAuthorizedForSourceException',
  'NotAuthorizedForDetailTypeException',
]);

export interface EventBridgeSinkOptions {
  client: EventBridgeClient;
  /** Name or ARN of the event bus. */
  eventBusName: string;
  /**
   * Attempts per event, counting the first (each attempt is one PutEvents call, which the SDK
   * may itself retry).
   * @default 5
   */
  maxAttempts?: number;
  /** First backoff delay; it doubles per attempt, with jitter. @default 100 */
  baseDelayMs?: number;
  /** Longest backoff delay. @default 5000 */
  maxDelayMs?: number;
  /** The ARN partition of the buckets named in `Resources`. @default 'aws' */
  arnPartition?: string;
  /** For tests. @default setTimeout */
  sleep?: (ms: number) => Promise<void>;
  /** For tests: a number in [0, 1) for the jitter. @default Math.random */
  random?: () => number;
}

interface PendingEntry {
  /** Position in the `events` passed to `publish`. */
  index: number;
  entry: PutEventsRequestEntry;
  bytes: number;
}

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function utf8Bytes(text: string | undefined): number {
  return text === undefined ? 0 : Buffer.byteLength(text, 'utf8');
}

/**
 * An entry's size as EventBridge counts it against its limits: 14 bytes for `Time` when present,
 * plus the UTF-8 bytes of `Source`, `DetailType`, `Detail` and each of `Resources`.
 * (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html)
 */
export function putEventsEntrySize(entry: PutEventsRequestEntry): number {
  let size = entry.Time === undefined ? 0 : TIME_ENTRY_BYTES;
  size += utf8Bytes(entry.Source) + utf8Bytes(entry.DetailType) + utf8Bytes(entry.Detail);
  for (const resource of entry.Resources ?? []) size += utf8Bytes(resource);
  return size;
}

/** `arn:aws:s3:::bucket/key`, the ARN of an S3 object. */
export function s3ObjectArn(bucket: string, key: string, partition = 'aws'): string {
  return `arn:${partition}:s3:::${bucket}/${key}`;
}

export class EventBridgeSink implements EventSink {
  private readonly client: EventBridgeClient;
  private readonly eventBusName: string;
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly arnPartition: string;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;

  constructor(options: EventBridgeSinkOptions) {
    this.client = options.client;
    this.eventBusName = options.eventBusName;
    this.maxAttempts = Math.max(1, Math.floor(options.maxAttempts ?? DEFAULT_PUBLISH_ATTEMPTS));
    this.baseDelayMs = Math.max(0, options.baseDelayMs ?? DEFAULT_PUBLISH_BASE_DELAY_MS);
    this.maxDelayMs = Math.max(this.baseDelayMs, options.maxDelayMs ?? DEFAULT_PUBLISH_MAX_DELAY_MS);
    this.arnPartition = options.arnPartition ?? 'aws';
    this.sleep = options.sleep ?? defaultSleep;
    this.random = options.random ?? Math.random;
  }

  /** The PutEvents entry of an event, as `publish` sends it. */
  toEntry(event: DrainEvent): PutEventsRequestEntry {
    const entry: PutEventsRequestEntry = {
      Source: EVENT_SOURCE,
      DetailType: event.detailType,
      Detail: detailJson(event.detail),
      Time: new Date(event.time),
      EventBusName: this.eventBusName,
    };
    if (event.detailType === 'Email Stored' && event.detail.storage.type === 's3') {
      entry.Resources = [s3ObjectArn(event.detail.storage.bucket, event.detail.storage.key, this.arnPartition)];
    }
    return entry;
  }

  async publish(events: readonly DrainEvent[]): Promise<PublishOutcome> {
    const published = new Array<boolean>(events.length).fill(false);
    const failures = new Map<number, string>();
    let pending: PendingEntry[] = [];

    events.forEach((event, index) => {
      try {
        if (Number.isNaN(Date.parse(event.time))) {
          failures.set(index, `event time ${JSON.stringify(String(event.time).slice(0, 40))} is not a date`);
          return;
        }
        const entry = this.toEntry(event);
        const bytes = putEventsEntrySize(entry);
        if (bytes > MAX_EVENT_ENTRY_BYTES) {
          failures.set(index, `entry is ${bytes} bytes, over EventBridge's limit of ${MAX_EVENT_ENTRY_BYTES} bytes per entry; not sent`);
          return;
        }
        pending.push({ index, entry, bytes });
      } catch (error) {
        failures.set(index, `could not build the entry: ${describeError(error)}`);
      }
    });

    for (let attempt = 1; pending.length > 0; attempt++) {
      if (attempt > 1) await this.sleep(this.backoffMs(attempt - 1));
      const retry: PendingEntry[] = [];
      const batches = [...this.batches(pending)];
      // `send` never throws; results come back in the order of the batches.
      const answers = await mapBounded(batches, MAX_PUT_EVENTS_IN_FLIGHT, (batch) => this.send(batch));
      batches.forEach((batch, b) => {
        const results = answers[b]!;
        batch.forEach((item, i) => {
          const result = results[i]!;
          if (result.ok) {
            published[item.index] = true;
          } else if (result.retryable && attempt < this.maxAttempts) {
            retry.push(item);
          } else {
            const tries = attempt === 1 ? '1 attempt' : `${attempt} attempts`;
            failures.set(item.index, result.retryable ? `${result.reason} (after ${tries})` : result.reason);
          }
        });
      });
      pending = retry;
    }

    const outcome: PublishOutcome = { published: [], failed: [] };
    events.forEach((event, index) => {
      if (published[index] === true) outcome.published.push(event.id);
      const reason = failures.get(index);
      if (reason !== undefined) outcome.failed.push({ id: event.id, reason });
    });
    return outcome;
  }

  /** Greedy batches in order, within both the entry-count and the byte limit of one request. */
  private *batches(entries: readonly PendingEntry[]): Generator<PendingEntry[]> {
    let batch: PendingEntry[] = [];
    let bytes = 0;
    for (const item of entries) {
      if (batch.length > 0 && (batch.length >= MAX_ENTRIES_PER_PUT_EVENTS || bytes + item.bytes > MAX_PUT_EVENTS_REQUEST_BYTES)) {
        yield batch;
        batch = [];
        bytes = 0;
      }
      batch.push(item);
      bytes += item.bytes;
    }
    if (batch.length > 0) yield batch;
  }

  /** One PutEvents call; per entry, whether it was accepted, and if not, why and whether to retry. */
  private async send(
    batch: readonly PendingEntry[],
  ): Promise<Array<{ ok: true } | { ok: false; retryable: boolean; reason: string }>> {
    let resultEntries: PutEventsResultEntry[];
    try {
      const response = await this.client.send(new PutEventsCommand({ Entries: batch.map((b) => b.entry) }));
      resultEntries = response.Entries ?? [];
    } catch (error) {
      const reason = `PutEvents failed: ${describeSdkError(error)}`;
      const retryable = isRetryableSdkError(error);
      return batch.map(() => ({ ok: false, retryable, reason }));
    }
    if (resultEntries.length !== batch.length) {
      // The results are matched to entries by position; without one result per entry, none is known.
      const reason = `PutEvents answered ${resultEntries.length} results for ${batch.length} entries`;
      return batch.map(() => ({ ok: false, retryable: true, reason }));
    }
    return resultEntries.map((result) => {
      if (result.ErrorCode === undefined && result.EventId !== undefined && result.EventId !== '') return { ok: true };
      const code = result.ErrorCode ?? 'NoEventId';
      const message = result.ErrorMessage === undefined ? '' : `: ${result.ErrorMessage.replace(/\s+/g, ' ').slice(0, 300)}`;
      return { ok: false, retryable: !PERMANENT_ENTRY_ERRORS.has(code), reason: `${code}${message}` };
    });
  }

  /** Delay before retry number `retry` (1-based): exponential, capped, with "equal jitter". */
  private backoffMs(retry: number): number {
    const ceiling = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (retry - 1));
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
  }
}
