/**
 * Each drain run's own logger. The runs of one invocation go on at once, so a key appended to
 * the shared Logger (`appendKeys({ mailboxId })`, then `removeKeys`) would name whichever
 * mailbox came last, or none: each run logs through a child of the invocation's logger (the
 * Lambda context included) that carries its mailbox id.
 *
 * The engine's ports are built once per environment and shared by the runs (one S3 store, so
 * its multipart slots bound the invocation's memory, not each run's). They log through the
 * parent logger, and every line of theirs that concerns a mailbox names it in its own fields
 * (the engine's through lib/drain's mailboxLogger; the S3 store, the done set and the
 * credentials pass `mailboxId`); the registry's lines concern no one mailbox.
 */
import type { Logger } from '@aws-lambda-powertools/logger';

/** A child of `logger` for one run, naming its mailbox on every line. */
export function runLogger(logger: Logger, mailboxId: string): Logger {
  const child = logger.createChild();
  child.appendKeys({ mailboxId });
  return child;
}
