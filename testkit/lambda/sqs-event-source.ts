/**
 * A small stand-in for Lambda's SQS event source mapping over a FIFO queue, as the PopDrain
 * construct configures it (a batch size, ReportBatchItemFailures, bounded concurrency): it
 * receives messages, invokes free Lambda instances with SQS-shaped events of up to `batchSize`
 * records, deletes a message when the invocation succeeded and did not report it failed, and
 * leaves it otherwise (the drainer sets its visibility timeout itself; SQS makes it visible
 * again later).
 *
 * FIFO: a message group is in at most one invocation at any time, its messages in the order
 * received; a batch may hold several groups and several messages of one group, as SQS hands
 * them to Lambda. SQS holds a group back while one of its messages is in flight; local-aws-sqs
 * does not, so the loop keeps received messages of a busy group in a buffer (they stay in flight
 * in the queue) until the group is free.
 *
 * The dispatch (EventSourceDispatcher) is shared by two loops: runEventSource here, which runs
 * until the queue is empty, and bench/fleet-event-source.ts, which runs until stopped.
 */
import { DeleteMessageCommand, ReceiveMessageCommand, type Message, type SQSClient } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import type { InvocationResult, LambdaInstance } from './instance.js';

const IDLE_POLL_MS = 20;
const REGION = 'us-east-1';
/** What one ReceiveMessage may return (SQS's limit). */
const MAX_RECEIVE_MESSAGES = 10;

export interface EventSourceOptions {
  sqs: SQSClient;
  queueUrl: string;
  queueArn: string;
  instances: readonly LambdaInstance[];
  /** What `getRemainingTimeInMillis()` starts from in each invocation. */
  remainingMs: number;
  /** Records per invocation at most (the event source's batchSize, drainerBatchSize). @default 1 */
  batchSize?: number;
  /** Stop (with an error) after this many invocations: a loop that never ends is a defect. @default 10_000 */
  maxInvocations?: number;
  /** Called for each record of an invocation, after it. */
  onInvocation?: (invocation: EventSourceInvocation) => void;
}

/** One record of an invocation (an invocation of a batch of N gives N of these, sharing `invocation`). */
export interface EventSourceInvocation {
  instance: string;
  record: SQSRecord;
  /** The records of the invocation, in batch order (`record` among them; runEventSource sets it). */
  batch?: SQSRecord[];
  invocation: InvocationResult;
  /** The record was reported failed (or the invocation failed): the message was left in the queue. */
  failed: boolean;
  startedAt: number;
  finishedAt: number;
}

/** One invocation of a batch, after the loop deleted its records that did not fail. */
export interface BatchInvocation {
  instance: string;
  /** The records, in batch order. */
  records: SQSRecord[];
  invocation: InvocationResult;
  /** The messageIds reported failed (all of them when the invocation failed): left in the queue. */
  failed: ReadonlySet<string>;
  startedAt: number;
  finishedAt: number;
}

/** The SQS record Lambda would build from a received message. */
export function sqsRecord(message: Message, queueArn: string): SQSRecord {
  const a = message.Attributes ?? {};
  const attributes: SQSRecord['attributes'] = {
    ApproximateReceiveCount: a.ApproximateReceiveCount ?? '1',
    SentTimestamp: a.SentTimestamp ?? String(Date.now()),
    SenderId: a.SenderId ?? 'AIDAFAKESENDER',
    ApproximateFirstReceiveTimestamp: a.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
    ...(a.MessageGroupId === undefined ? {} : { MessageGroupId: a.MessageGroupId }),
    ...(a.MessageDeduplicationId === undefined ? {} : { MessageDeduplicationId: a.MessageDeduplicationId }),
    ...(a.SequenceNumber === undefined ? {} : { SequenceNumber: a.SequenceNumber }),
  };
  return {
    messageId: message.MessageId!,
    receiptHandle: message.ReceiptHandle!,
    body: message.Body ?? '',
    attributes,
    messageAttributes: {},
    md5OfBody: message.MD5OfBody ?? '',
    eventSource: 'aws:sqs',
    eventSourceARN: queueArn,
    awsRegion: REGION,
  };
}

export function sqsEvent(records: SQSRecord[]): SQSEvent {
  return { Records: records };
}

/** The messageIds a drainer invocation reported failed (all of them when it threw). */
export function failedIds(invocation: InvocationResult, records: readonly SQSRecord[]): Set<string> {
  if (!invocation.ok) return new Set(records.map((r) => r.messageId));
  const response = invocation.result as SQSBatchResponse | undefined;
  return new Set((response?.batchItemFailures ?? []).map((f) => f.itemIdentifier));
}

/** A received message's FIFO group (the message alone when it has none). */
function groupOf(message: Message): string {
  return message.Attributes?.MessageGroupId ?? message.MessageId!;
}

/**
 * Up to `size` buffered messages, oldest first, of groups not busy in another invocation (a
 * group's messages in their buffered order). Takes them out of `buffered`; the rest keep their
 * order. Pure but for that: unit-tested (test/unit/sqs-event-source-batch.test.ts).
 */
export function takeBatch(buffered: Message[], busyGroups: ReadonlySet<string>, size: number): Message[] {
  const batch: Message[] = [];
  for (let i = 0; i < buffered.length && batch.length < size; ) {
    if (busyGroups.has(groupOf(buffered[i]!))) {
      i += 1;
      continue;
    }
    batch.push(...buffered.splice(i, 1));
  }
  return batch;
}

export interface DispatcherOptions {
  sqs: SQSClient;
  queueUrl: string;
  queueArn: string;
  instances: readonly LambdaInstance[];
  remainingMs: number;
  batchSize: number;
  /** Called once per invocation, after its deletes. A throw is the loop's error. */
  onBatch: (batch: BatchInvocation) => void;
  /**
   * A DeleteMessage that failed (on SQS: the receipt handle of a message whose visibility ran
   * out and that was delivered again). Unset: the failure is the loop's error.
   */
  onDeleteRefused?: (record: SQSRecord, error: unknown) => void;
}

/**
 * The part of the event source both loops share: the free instances, the buffer of received
 * messages, the busy groups and the running invocations. The loop decides when to receive, to
 * dispatch, to wait and to stop.
 */
export class EventSourceDispatcher {
  /** Invocations started. */
  invocations = 0;
  /** Records handed to invocations. */
  records = 0;
  /** The first error of an invocation's bookkeeping (a delete, the callback), if any. */
  error: unknown;
  private readonly free: LambdaInstance[];
  private readonly buffered: Message[] = [];
  private readonly busyGroups = new Set<string>();
  private readonly running = new Set<Promise<void>>();
  /**
   * When each message was handed to an invocation, until the invocation gives it back (failed,
   * or its delete refused); kept after a delete (a day of the fleet bench: some 10,000 entries).
   */
  private readonly taken = new Map<string, number>();

  constructor(private readonly options: DispatcherOptions) {
    this.free = [...options.instances];
  }

  get hasFreeInstance(): boolean {
    return this.free.length > 0;
  }

  /** Nothing buffered and nothing running. */
  get idle(): boolean {
    return this.buffered.length === 0 && this.running.size === 0;
  }

  get busy(): boolean {
    return this.running.size > 0;
  }

  /** One ReceiveMessage; the messages join the buffer (one received again replaces its old copy). */
  async receive(): Promise<number> {
    const { Messages } = await this.options.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: this.options.queueUrl,
        MaxNumberOfMessages: MAX_RECEIVE_MESSAGES,
        WaitTimeSeconds: 0,
        AttributeNames: ['All'],
        MessageSystemAttributeNames: ['All'],
      }),
    );
    // A message received again (its visibility ran out while it waited here) replaces the old copy.
    for (const m of Messages ?? []) {
      const at = this.buffered.findIndex((b) => b.MessageId === m.MessageId);
      if (at >= 0) this.buffered[at] = m;
      else this.buffered.push(m);
    }
    return Messages?.length ?? 0;
  }

  /** Dispatches buffered messages whose group is free, oldest first, up to batchSize an invocation. */
  dispatchReady(): boolean {
    let dispatched = false;
    while (this.free.length > 0) {
      const batch = takeBatch(this.buffered, this.busyGroups, this.options.batchSize);
      if (batch.length === 0) break;
      this.dispatch(this.free.shift()!, batch);
      dispatched = true;
    }
    return dispatched;
  }

  /** Until an invocation ends or `ms` pass. */
  async waitForProgress(ms: number): Promise<void> {
    await Promise.race([...this.running, new Promise((r) => setTimeout(r, ms))]);
  }

  /**
   * When the message was handed to an invocation (Date.now()), unless it never was or the
   * invocation gave it back to the queue (reported it failed, or its delete was refused).
   */
  takenAt(messageId: string): number | undefined {
    return this.taken.get(messageId);
  }

  /** Until every running invocation has ended. */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.running]);
  }

  private dispatch(instance: LambdaInstance, messages: Message[]): void {
    const { sqs, queueUrl, queueArn } = this.options;
    const groups = new Set(messages.map(groupOf));
    for (const group of groups) this.busyGroups.add(group);
    this.invocations += 1;
    this.records += messages.length;
    const startedAt = Date.now();
    const records = messages.map((m) => sqsRecord(m, queueArn));
    for (const m of messages) this.taken.set(m.MessageId!, startedAt);
    const task = (async () => {
      const invocation = await instance.invoke(sqsEvent(records), { remainingMs: this.options.remainingMs });
      const failed = failedIds(invocation, records);
      for (const id of failed) this.taken.delete(id);
      for (const record of records) {
        if (failed.has(record.messageId)) continue;
        const deleted = sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: record.receiptHandle }));
        const refused = this.options.onDeleteRefused;
        await (refused === undefined
          ? deleted
          : deleted.catch((e: unknown) => {
              this.taken.delete(record.messageId);
              refused(record, e);
            }));
      }
      this.options.onBatch({ instance: instance.name, records, invocation, failed, startedAt, finishedAt: Date.now() });
    })()
      .catch((error: unknown) => {
        this.error ??= error;
      })
      .finally(() => {
        for (const group of groups) this.busyGroups.delete(group);
        this.free.push(instance);
        this.running.delete(task);
      });
    this.running.add(task);
  }
}

/**
 * Process the queue until nothing is visible, nothing is buffered and nothing is running.
 * Messages whose invocation failed stay in the queue (in flight until their visibility
 * timeout ends) and are not waited for.
 */
export async function runEventSource(options: EventSourceOptions): Promise<EventSourceInvocation[]> {
  const maxInvocations = options.maxInvocations ?? 10_000;
  const done: EventSourceInvocation[] = [];
  const source = new EventSourceDispatcher({
    ...options,
    batchSize: options.batchSize ?? 1,
    onBatch: ({ instance, records, invocation, failed, startedAt, finishedAt }) => {
      for (const record of records) {
        const entry: EventSourceInvocation = { instance, record, batch: records, invocation, failed: failed.has(record.messageId), startedAt, finishedAt };
        done.push(entry);
        options.onInvocation?.(entry);
      }
    },
  });

  for (;;) {
    if (source.error !== undefined) {
      await source.settle();
      throw source.error;
    }
    if (source.invocations > maxInvocations) {
      await source.settle();
      throw new Error(`the event source made more than ${maxInvocations} invocations; stopping`);
    }
    const dispatched = source.dispatchReady();
    if (source.hasFreeInstance) {
      if ((await source.receive()) > 0) continue;
      if (!dispatched && source.idle) return done;
    }
    if (source.busy) {
      await source.waitForProgress(IDLE_POLL_MS);
    } else if (!dispatched) {
      await new Promise((r) => setTimeout(r, IDLE_POLL_MS));
    }
  }
}
