/**
 * How many drainer invocations the SQS event source may run at once (its `maximumConcurrency`):
 * a decision only (no constructs), so it is unit-tested without a synth.
 *
 * Every mailbox is drained once per interval and each run holds one execution for its duration,
 * so the fleet keeps up when
 *
 *     concurrency >= expectedMailboxes x typicalRunSeconds / (intervalMinutes x 60)
 *
 * (Little's law: the mean number of runs in flight is the arrival rate times the run time). The
 * formula is multiplied by a headroom (default 2) for slow servers, first imports and
 * continuations, which arrive on top of the schedule.
 *
 * An invocation drains a batch of up to `drainerBatchSize` mailboxes at once (lambdas/
 * drain-batch.ts), so a full batch holds one execution for about one run's time while draining
 * several. The formula still counts one mailbox per execution (a batch of 1, as on a quiet
 * queue): with fuller batches the same concurrency drains more mailboxes at once, so it errs on
 * the side of keeping up; the POP3 sessions open at once are up to concurrency x batch size.
 */

/** The event source mapping's own bounds of `maximumConcurrency`. */
export const MIN_DRAINER_CONCURRENCY = 2;
export const MAX_DRAINER_CONCURRENCY = 1000;
/** The concurrency when nothing about the fleet is said. */
export const DEFAULT_DRAINER_MAX_CONCURRENCY = 10;
/** Drain requests per invocation (the SQS event source's batchSize); a FIFO queue allows 1-10. */
export const DEFAULT_DRAINER_BATCH_SIZE = 10;
export const MAX_FIFO_BATCH_SIZE = 10;
/** A typical run: log in, list, fetch a few new messages, quit. */
export const DEFAULT_TYPICAL_RUN_SECONDS = 10;
export const DEFAULT_CONCURRENCY_HEADROOM = 2;

/** What the operator says about the fleet a drainer serves (the `drainerSizing` prop). */
export interface DrainerSizing {
  /** The number of mailboxes the drainer is expected to serve (the registry may grow later). */
  readonly expectedMailboxes: number;
  /**
   * The mean duration of one run, in seconds (the drain report's `durationMs`, or the
   * `RunDurationMs` metric's average).
   * @default 10
   */
  readonly typicalRunSeconds?: number;
  /**
   * The mean interval between two runs of a mailbox, in minutes.
   * @default - the scheduler's tick (the shortest interval any mailbox can have)
   */
  readonly intervalMinutes?: number;
  /**
   * The factor over the formula's mean (>= 1).
   * @default 2
   */
  readonly headroom?: number;
}

export interface ConcurrencyRequest {
  /** An explicit `drainerMaxConcurrency`. */
  readonly explicit?: number;
  readonly sizing?: DrainerSizing;
  /** The scheduler's tick, the default interval. */
  readonly tickMinutes: number;
}

export interface ConcurrencyVerdict {
  /** The `maximumConcurrency` to use (meaningless when `error` is set). */
  readonly maxConcurrency: number;
  /** What the sizing needs (without the clamp to 2), when a sizing was given. */
  readonly needed?: number;
  /** Why synth must stop. */
  readonly error?: string;
}

/** The concurrency the sizing needs: ceil(mailboxes x run seconds / interval seconds x headroom). */
export function neededConcurrency(sizing: DrainerSizing, tickMinutes: number): number {
  const runSeconds = sizing.typicalRunSeconds ?? DEFAULT_TYPICAL_RUN_SECONDS;
  const intervalSeconds = (sizing.intervalMinutes ?? tickMinutes) * 60;
  const headroom = sizing.headroom ?? DEFAULT_CONCURRENCY_HEADROOM;
  // Rounded to a millionth first, so 1,000 x 3 / 300 is 10 and not 10.000000000000002.
  return Math.ceil(Math.round(((sizing.expectedMailboxes * runSeconds) / intervalSeconds) * headroom * 1e6) / 1e6);
}

function sizingProblem(sizing: DrainerSizing): string | undefined {
  const positive = (v: number | undefined): boolean => v === undefined || (Number.isFinite(v) && v > 0);
  if (!Number.isInteger(sizing.expectedMailboxes) || sizing.expectedMailboxes < 1) {
    return `drainerSizing.expectedMailboxes must be a whole number >= 1, not ${sizing.expectedMailboxes}`;
  }
  if (!positive(sizing.typicalRunSeconds)) return `drainerSizing.typicalRunSeconds must be a number of seconds > 0, not ${sizing.typicalRunSeconds}`;
  if (!positive(sizing.intervalMinutes)) return `drainerSizing.intervalMinutes must be a number of minutes > 0, not ${sizing.intervalMinutes}`;
  if (sizing.headroom !== undefined && !(Number.isFinite(sizing.headroom) && sizing.headroom >= 1)) {
    return `drainerSizing.headroom must be a number >= 1, not ${sizing.headroom}`;
  }
  return undefined;
}

/**
 * The drainer's `maximumConcurrency`: the explicit value, else what the sizing needs (at least
 * 2), else 10. An explicit value below what the sizing needs, or a need beyond what one event
 * source mapping can run, stops synth with the figures.
 */
export function decideDrainerConcurrency(request: ConcurrencyRequest): ConcurrencyVerdict {
  const { explicit, sizing, tickMinutes } = request;
  if (explicit !== undefined && (!Number.isInteger(explicit) || explicit < MIN_DRAINER_CONCURRENCY || explicit > MAX_DRAINER_CONCURRENCY)) {
    return { maxConcurrency: explicit, error: `PopDrain: drainerMaxConcurrency must be a whole number from ${MIN_DRAINER_CONCURRENCY} to ${MAX_DRAINER_CONCURRENCY}, not ${explicit}` };
  }
  if (sizing === undefined) return { maxConcurrency: explicit ?? DEFAULT_DRAINER_MAX_CONCURRENCY };
  const problem = sizingProblem(sizing);
  if (problem !== undefined) return { maxConcurrency: explicit ?? DEFAULT_DRAINER_MAX_CONCURRENCY, error: `PopDrain: ${problem}` };
  const needed = neededConcurrency(sizing, tickMinutes);
  const formula = `${sizing.expectedMailboxes} mailboxes x ${sizing.typicalRunSeconds ?? DEFAULT_TYPICAL_RUN_SECONDS} s / (${sizing.intervalMinutes ?? tickMinutes} min x 60) x headroom ${sizing.headroom ?? DEFAULT_CONCURRENCY_HEADROOM} = ${needed}`;
  if (needed > MAX_DRAINER_CONCURRENCY) {
    return {
      maxConcurrency: MAX_DRAINER_CONCURRENCY,
      needed,
      error: `PopDrain: the drainer would need a concurrency of ${needed} (${formula}), more than the ${MAX_DRAINER_CONCURRENCY} one SQS event source runs at most: lengthen the interval, shorten the runs (maxMessagesPerRun) or split the mailboxes over several PopDrain stacks`,
    };
  }
  if (explicit !== undefined && explicit < needed) {
    return {
      maxConcurrency: explicit,
      needed,
      error: `PopDrain: drainerMaxConcurrency ${explicit} is below what drainerSizing needs (${formula}): raise it, or leave it out and let the sizing decide`,
    };
  }
  return { maxConcurrency: explicit ?? Math.max(MIN_DRAINER_CONCURRENCY, needed), needed };
}
