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
 */
export async function* retrievePastUnreadable(
  client: Pop3Client,
  messages: readonly ServerMessage[],
  options: RetrieveOptions,
  onRefused: (message: ServerMessage, verdict: Exclude<RetrFailureVerdict, { kind: 'stop' }>) => void,
): AsyncGenerator<MessageStream> {
  let rest = messages;
  while (rest.length > 0) {
    let taken = 0;
    try {
      for await (const retrieved of client.retrieve(rest, options)) {
        taken += 1;
        yield retrieved;
      }
      return;
    } catch (error) {
      const message = rest[taken];
      if (message === undefined || !isPop3Error(error)) throw error;
      const verdict = retrFailureVerdict(error, message, !client.isClosed);
      // A refusal the server explained (-ERR) is reported under the message's UIDL; a session
      // that is gone is the run's error, as before.
      if (verdict.kind === 'stop') throw error.serverText === undefined ? error : new StopRun(stopReasonForPop3(error), verdict.failure);
      onRefused(message, verdict);
      rest = rest.slice(taken + 1);
    }
  }
}
