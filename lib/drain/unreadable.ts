/**
 * One unreadable message does not block a mailbox. RETR of one message answered with -ERR
 * leaves the session usable: the retrieval goes on with the messages after it. What the answer
 * means for that message is a pure decision (`retrFailureVerdict`); `retrievePastUnreadable`
 * wraps the client's pipelined retrieval and restarts it after such a message.
 */
import { isPop3Error, type MessageStream, type Pop3Client, type RetrieveOptions } from '../pop3/index.js';
import { failureOf, stopReasonForPop3, StopRun } from './failures.js';
import type { ServerMessage } from './plan.js';
import type { DrainFailure } from './report.js';

export type RetrFailureVerdict =
  /** [SYS/PERM]: the server says it will never serve it. Left on the server, announced once as skipped. */
  | { kind: 'unreadable'; failure: DrainFailure }
  /** A plain -ERR: left on the server for this run, reported; a later run tries again. */
  | { kind: 'pass'; failure: DrainFailure }
  /** Anything else (the session is gone, [SYS/TEMP], a timeout): the run stops, naming the message. */
  | { kind: 'stop'; failure: DrainFailure };

/** What a RETR failure of `message` means, given whether the session is still open. */
export function retrFailureVerdict(error: unknown, message: ServerMessage, sessionOpen: boolean): RetrFailureVerdict {
  const failure = failureOf(error, 'fetch', message.uidl);
  if (!sessionOpen || !isPop3Error(error) || error.phase !== 'transaction') return { kind: 'stop', failure };
  if (error.code === 'SYS_PERM') return { kind: 'unreadable', failure };
  if (error.code === 'COMMAND_FAILED') return { kind: 'pass', failure };
  return { kind: 'stop', failure };
}

/**
 * `client.retrieve(messages)`, going on past a message whose RETR the server refused: `onRefused`
 * gets it and its verdict (unreadable or pass), then the retrieval restarts after it. A refusal
 * that ends the run is thrown as StopRun naming the message's UIDL.
 *
 * An iterator over the client's own, not an async generator around it: a generator's layer
 * cost every message of a run a request object and two more promises and microtask turns.
 */
export function retrievePastUnreadable(
  client: Pop3Client,
  messages: readonly ServerMessage[],
  options: RetrieveOptions,
  onRefused: (message: ServerMessage, verdict: Exclude<RetrFailureVerdict, { kind: 'stop' }>) => void,
): AsyncIterableIterator<MessageStream> {
  return new PastUnreadable(client, messages, options, onRefused);
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

class PastUnreadable implements AsyncIterableIterator<MessageStream> {
  /** The messages of the retrieval under way (or of the next one). */
  private rest: readonly ServerMessage[];
  private inner: AsyncIterator<MessageStream> | undefined;
  /** Messages the retrieval under way has yielded. */
  private taken = 0;

  constructor(
    private readonly client: Pop3Client,
    messages: readonly ServerMessage[],
    private readonly options: RetrieveOptions,
    private readonly onRefused: (message: ServerMessage, verdict: Exclude<RetrFailureVerdict, { kind: 'stop' }>) => void,
  ) {
    this.rest = messages;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<MessageStream>> {
    if (this.inner === undefined) {
      if (this.rest.length === 0) return Promise.resolve(DONE);
      this.inner = this.client.retrieve(this.rest, this.options);
      this.taken = 0;
    }
    return this.inner.next().then(
      (result) => {
        if (result.done === true) {
          this.inner = undefined;
          this.rest = [];
          return DONE;
        }
        this.taken += 1;
        return result;
      },
      (error: unknown) => {
        this.inner = undefined;
        this.refused(error);
        return this.next();
      },
    );
  }

  /** The consumer stopped early: the client's retrieval discards what it requested ahead. */
  async return(): Promise<IteratorResult<MessageStream>> {
    const inner = this.inner;
    this.inner = undefined;
    this.rest = [];
    await inner?.return?.(undefined);
    return DONE;
  }

  /** The retrieval under way failed: past the refused message, or thrown when the run must stop. */
  private refused(error: unknown): void {
    const message = this.rest[this.taken];
    if (message === undefined || !isPop3Error(error)) throw error;
    const verdict = retrFailureVerdict(error, message, !this.client.isClosed);
    // A refusal the server explained (-ERR) is reported under the message's UIDL; a session
    // that is gone is the run's error, as before.
    if (verdict.kind === 'stop') throw error.serverText === undefined ? error : new StopRun(stopReasonForPop3(error), verdict.failure);
    this.onRefused(message, verdict);
    this.rest = this.rest.slice(this.taken + 1);
  }
}
