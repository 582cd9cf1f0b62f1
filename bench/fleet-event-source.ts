/**
 * The event source mapping of `npm run bench:fleet`: like testkit/lambda/sqs-event-source.ts
 * (batch size 1, one message per FIFO group at a time, delete on success, leave a failed one to
 * its visibility timeout) but running until stopped, as Lambda's poller does, instead of until
 * the queue is empty.
 */
import { DeleteMessageCommand, ReceiveMessageCommand, type Message, type SQSClient } from '@aws-sdk/client-sqs';
import type { LambdaInstance } from '../testkit/lambda/instance.js';
import { failedIds, sqsEvent, sqsRecord, type EventSourceInvocation } from '../testkit/lambda/sqs-event-source.js';

const IDLE_POLL_MS = 25;

export interface ContinuousEventSource {
  /** Stops receiving, waits for running invocations. */
  stop(): Promise<void>;
  readonly invocations: number;
  /** Deletes refused because the message's visibility had run out (it was delivered again). */
  readonly expiredDeletes: number;
  /** The first error of the loop itself (not of an invocation), if any. */
  readonly error: unknown;
}

export function startEventSource(options: {
  sqs: SQSClient;
  queueUrl: string;
  queueArn: string;
  instances: readonly LambdaInstance[];
  /** What `getRemainingTimeInMillis()` starts from (in the instances' clock). */
  remainingMs: number;
  onInvocation: (invocation: EventSourceInvocation) => void;
}): ContinuousEventSource {
  const { sqs, queueUrl, queueArn } = options;
  const free = [...options.instances];
  const buffered: Message[] = [];
  const busyGroups = new Set<string>();
  const running = new Set<Promise<void>>();
  let stopping = false;
  let invocations = 0;
  let expiredDeletes = 0;
  let error: unknown;
  const groupOf = (m: Message): string => m.Attributes?.MessageGroupId ?? m.MessageId!;

  const dispatch = (instance: LambdaInstance, message: Message): void => {
    const group = groupOf(message);
    busyGroups.add(group);
    invocations += 1;
    const record = sqsRecord(message, queueArn);
    const startedAt = Date.now();
    const task = (async () => {
      const invocation = await instance.invoke(sqsEvent([record]), { remainingMs: options.remainingMs });
      const failed = failedIds(invocation, [record]).has(record.messageId);
      // A message whose visibility ran out during the run was handed out again: its old receipt
      // handle is refused, as on SQS, and the message comes back (Lambda's poller moves on too).
      if (!failed) await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: record.receiptHandle })).catch(() => (expiredDeletes += 1));
      options.onInvocation({ instance: instance.name, record, invocation, failed, startedAt, finishedAt: Date.now() });
    })()
      .catch((e: unknown) => {
        error ??= e;
      })
      .finally(() => {
        busyGroups.delete(group);
        free.push(instance);
        running.delete(task);
      });
    running.add(task);
  };

  const loop = (async () => {
    while (!stopping) {
      for (let i = 0; i < buffered.length && free.length > 0; ) {
        const m = buffered[i]!;
        if (busyGroups.has(groupOf(m))) {
          i += 1;
          continue;
        }
        buffered.splice(i, 1);
        dispatch(free.shift()!, m);
      }
      let received = 0;
      if (free.length > 0) {
        const { Messages } = await sqs.send(
          new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, AttributeNames: ['All'], MessageSystemAttributeNames: ['All'] }),
        );
        for (const m of Messages ?? []) {
          // A message received again (its visibility ran out while it waited here) replaces the old copy.
          const at = buffered.findIndex((b) => b.MessageId === m.MessageId);
          if (at >= 0) buffered[at] = m;
          else buffered.push(m);
          received += 1;
        }
      }
      if (received === 0) await Promise.race([...running, new Promise((r) => setTimeout(r, IDLE_POLL_MS))]);
    }
  })().catch((e: unknown) => {
    error ??= e;
  });

  return {
    async stop() {
      stopping = true;
      await loop;
      await Promise.allSettled([...running]);
    },
    get invocations() {
      return invocations;
    },
    get expiredDeletes() {
      return expiredDeletes;
    },
    get error() {
      return error;
    },
  };
}
