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
 */
import { DeleteMessageCommand, ReceiveMessageCommand, type Message, type SQSClient } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import type { InvocationResult, LambdaInstance } from './instance.js';

const IDLE_POLL_MS = 20;
const REGION = 'us-east-1';

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

/**
 * Process the queue until nothing is visible, nothing is buffered and nothing is running.
 * Messages whose invocation failed stay in the queue (in flight until their visibility
 * timeout ends) and are not waited for.
 */
export async function runEventSource(options: EventSourceOptions): Promise<EventSourceInvocation[]> {
  const { sqs, queueUrl, queueArn } = options;
  const maxInvocations = options.maxInvocations ?? 10_000;
  const batchSize = options.batchSize ?? 1;
  const free = [...options.instances];
  const buffered: Message[] = [];
  const busyGroups = new Set<string>();
  const running = new Set<Promise<void>>();
  const done: EventSourceInvocation[] = [];
  let invocations = 0;
  let failure: unknown;

  const groupOf = (m: Message): string => m.Attributes?.MessageGroupId ?? m.MessageId!;

  const dispatch = (instance: LambdaInstance, messages: Message[]): void => {
    const groups = new Set(messages.map(groupOf));
    for (const group of groups) busyGroups.add(group);
    invocations += 1;
    const records = messages.map((m) => sqsRecord(m, queueArn));
    const startedAt = Date.now();
    const task = (async () => {
      const invocation = await instance.invoke(sqsEvent(records), { remainingMs: options.remainingMs });
      const failed = failedIds(invocation, records);
      for (const record of records) {
        if (!failed.has(record.messageId)) await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: record.receiptHandle }));
      }
      const finishedAt = Date.now();
      for (const record of records) {
        const entry: EventSourceInvocation = { instance: instance.name, record, batch: records, invocation, failed: failed.has(record.messageId), startedAt, finishedAt };
        done.push(entry);
        options.onInvocation?.(entry);
      }
    })()
      .catch((error: unknown) => {
        failure ??= error;
      })
      .finally(() => {
        for (const group of groups) busyGroups.delete(group);
        free.push(instance);
        running.delete(task);
      });
    running.add(task);
  };

  for (;;) {
    if (failure !== undefined) {
      await Promise.allSettled(running);
      throw failure;
    }
    if (invocations > maxInvocations) {
      await Promise.allSettled(running);
      throw new Error(`the event source made more than ${maxInvocations} invocations; stopping`);
    }
    // Dispatch buffered messages whose group is free, oldest first, up to batchSize an invocation.
    let dispatched = false;
    while (free.length > 0) {
      const batch = takeBatch(buffered, busyGroups, batchSize, groupOf);
      if (batch.length === 0) break;
      dispatch(free.shift()!, batch);
      dispatched = true;
    }
    if (free.length > 0) {
      const { Messages } = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: queueUrl,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: 0,
          AttributeNames: ['All'],
          MessageSystemAttributeNames: ['All'],
        }),
      );
      if (Messages !== undefined && Messages.length > 0) {
        // A message received again (its visibility ran out while it waited here) replaces the old copy.
        for (const m of Messages) {
          const at = buffered.findIndex((b) => b.MessageId === m.MessageId);
          if (at >= 0) buffered[at] = m;
          else buffered.push(m);
        }
        continue;
      }
      if (!dispatched && running.size === 0 && buffered.length === 0) return done;
    }
    if (running.size > 0) {
      await Promise.race([...running, new Promise((r) => setTimeout(r, IDLE_POLL_MS))]);
    } else if (!dispatched) {
      await new Promise((r) => setTimeout(r, IDLE_POLL_MS));
    }
  }
}

/**
 * Up to `size` buffered messages, oldest first, of groups not busy in another invocation.
 * Takes them out of `buffered`; the rest keep their order.
 */
function takeBatch(buffered: Message[], busyGroups: ReadonlySet<string>, size: number, groupOf: (m: Message) => string): Message[] {
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
