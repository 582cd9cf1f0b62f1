/**
 * The event source mapping of `npm run bench:fleet`: the dispatch of testkit/lambda/
 * sqs-event-source.ts (batches of up to `batchSize` records, a message group in one invocation at
 * a time and in order, delete what did not fail, leave a failed one to the visibility timeout the
 * drainer set) in a loop that runs until stopped, as Lambda's poller does, instead of until the
 * queue is empty. A delete refused because the message's visibility ran out (it was delivered
 * again) is counted, not fatal: Lambda's poller moves on too.
 */
import { EventSourceDispatcher, type DispatcherOptions } from '../testkit/lambda/sqs-event-source.js';

const IDLE_POLL_MS = 25;

export interface ContinuousEventSource {
  /** Stops receiving, waits for running invocations. */
  stop(): Promise<void>;
  readonly invocations: number;
  /** Records handed to invocations (drainer runs, but for records reported unrun after a failure of their group). */
  readonly records: number;
  /** Deletes refused because the message's visibility had run out (it was delivered again). */
  readonly expiredDeletes: number;
  /** When the message was handed to an invocation that has not given it back (EventSourceDispatcher.takenAt). */
  takenAt(messageId: string): number | undefined;
  /** The first error of the loop itself (not of an invocation), if any. */
  readonly error: unknown;
}

/** The dispatcher's options (remainingMs in the instances' clock; batchSize: the event source's). */
export function startEventSource(options: Omit<DispatcherOptions, 'onDeleteRefused'>): ContinuousEventSource {
  let stopping = false;
  let expiredDeletes = 0;
  let error: unknown;
  const source = new EventSourceDispatcher({
    ...options,
    onDeleteRefused: () => {
      expiredDeletes += 1;
    },
  });

  const loop = (async () => {
    while (!stopping) {
      // Receive first, so a free instance gets as full a batch as the queue holds.
      const received = source.hasFreeInstance ? await source.receive() : 0;
      source.dispatchReady();
      if (received === 0) await source.waitForProgress(IDLE_POLL_MS);
    }
  })().catch((e: unknown) => {
    error ??= e;
  });

  return {
    async stop() {
      stopping = true;
      await loop;
      await source.settle();
    },
    takenAt: (messageId) => source.takenAt(messageId),
    get invocations() {
      return source.invocations;
    },
    get records() {
      return source.records;
    },
    get expiredDeletes() {
      return expiredDeletes;
    },
    get error() {
      return error ?? source.error;
    },
  };
}
