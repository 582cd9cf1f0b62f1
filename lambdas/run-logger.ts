/**
 * Each drain run's own logger. The runs of one invocation go on at once, so a key appended to
 * the shared Logger (`appendKeys({ mailboxId })`) would name whichever mailbox came last: each
 * run gets a child of the invocation's logger (the Lambda context included) with its mailbox
 * id, and the engine's ports, built once per environment and shared by the runs (one S3 store,
 * so its multipart slots bound the invocation, not each run), log through the logger of the run
 * they are working for: the run's async context holds it (AsyncLocalStorage).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Logger } from '@aws-lambda-powertools/logger';
import type { DrainLogger } from '../lib/drain/ports.js';

const current = new AsyncLocalStorage<Logger>();

/** A child of `logger` for one run, naming its mailbox on every line. */
export function runLogger(logger: Logger, mailboxId: string): Logger {
  const child = logger.createChild();
  child.appendKeys({ mailboxId });
  return child;
}

/** Run `work` with `log` as the logger of the ports it calls. */
export function withRunLogger<T>(log: Logger, work: () => Promise<T>): Promise<T> {
  return current.run(log, work);
}

/** The engine's logger port: the current run's logger, or `fallback` outside a run. */
export function scopedDrainLogger(fallback: Logger): DrainLogger {
  const pick = (): Logger => current.getStore() ?? fallback;
  return {
    debug: (message, fields) => pick().debug(message, fields ?? {}),
    info: (message, fields) => pick().info(message, fields ?? {}),
    warn: (message, fields) => pick().warn(message, fields ?? {}),
    error: (message, fields) => pick().error(message, fields ?? {}),
  };
}
