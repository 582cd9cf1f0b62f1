/**
 * The scheduler: every tick, one SQS message per due mailbox (FIFO: the mailbox id is the
 * message group, mailbox id + tick the deduplication id, so a repeated tick enqueues nothing
 * twice). Mailboxes whose lease is held (a drain or its continuation is running) or whose
 * UIDL-reset guard tripped (an operator must look) are not enqueued. It also counts the
 * mailboxes not drained successfully for `staleAfterIntervals` of their schedule.
 */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { SendMessageBatchCommand, SQSClient, type SendMessageBatchRequestEntry } from '@aws-sdk/client-sqs';
import type { Context, ScheduledEvent } from 'aws-lambda';
import * as z from 'zod';
import type { ConfiguredMailbox } from '../lib/drain/config.js';
import type { MailboxState } from '../lib/drain/ports.js';
import { createS3Client } from '../lib/adapters/aws/http-timeouts.js';
import { clientConfig, createLedger, createLogger, createMetrics, loadMailboxes, readEnvironment } from './runtime.js';
import { deduplicationId, isDue, tickStart, type DrainRequest } from './schedule.js';

const env = readEnvironment({
  POPDRAIN_QUEUE_URL: z.string().url(),
  POPDRAIN_VPC_QUEUE_URL: z.string().url().optional(),
  POPDRAIN_TICK_MINUTES: z.coerce.number().int().min(1).max(1440).default(5),
  POPDRAIN_STALE_AFTER_INTERVALS: z.coerce.number().int().min(1).default(3),
});

const logger = createLogger();
const metrics = createMetrics();
const sqs = new SQSClient(clientConfig());
const ledger = createLedger(env.POPDRAIN_LEDGER_TABLE);
const mailboxes = await loadMailboxes(env, () => createS3Client());
const STATE_READ_CONCURRENCY = 32;

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  });
  await Promise.all(workers);
  return out;
}

export interface TickResult {
  tick: string;
  due: number;
  enqueued: number;
  busy: number;
  tripped: number;
  stale: number;
}

/** True when the mailbox has not had a successful run for `intervals` of its schedule. */
export function isStale(mailbox: ConfiguredMailbox, state: MailboxState | undefined, now: number, intervals: number): boolean {
  const last = state?.lastSuccessAt;
  const limitMs = intervals * mailbox.everyMinutes * 60_000;
  if (last === undefined) {
    // Never drained successfully: stale once a run was tried and failed long enough ago.
    const firstTry = state?.lastRun?.startedAt;
    return firstTry !== undefined && now - firstTry > limitMs;
  }
  return now - last > limitMs;
}

/**
 * True when the UIDL-reset guard tripped and no operator has accepted the reset yet. Once
 * `acceptUidlReset` is set the mailbox is enqueued again: only a drain run clears the trip (and
 * the acceptance), so skipping it then would leave the mailbox undrained for good.
 */
export function isUidlResetBlocked(state: MailboxState | undefined): boolean {
  return state?.uidlResetTrippedAt !== undefined && state.acceptUidlReset !== true;
}

export async function handler(event: Pick<ScheduledEvent, 'time'>, context?: Context): Promise<TickResult> {
  // The request id, function name and version, cold start on every log line of this invocation.
  if (context !== undefined) logger.addContext(context);
  const now = Date.now();
  const tickMinutes = env.POPDRAIN_TICK_MINUTES;
  const tick = tickStart(new Date(event.time ?? now), tickMinutes);
  const tickIso = tick.toISOString();
  const all = mailboxes.all;
  const states = await mapLimit(all, STATE_READ_CONCURRENCY, (m) => ledger.getMailboxState(m.id));
  const stateById = new Map(all.map((m, i) => [m.id, states[i]]));
  const staleMailboxes = all.filter((m) => isStale(m, stateById.get(m.id), now, env.POPDRAIN_STALE_AFTER_INTERVALS));
  const stale = staleMailboxes.length;
  // One line per stale mailbox (none when all is well): the StaleMailboxes Contributor
  // Insights rule names them, so the aggregate alarm needs no per-mailbox metric.
  for (const m of staleMailboxes) {
    const state = stateById.get(m.id);
    logger.warn('mailbox stale', {
      mailboxId: m.id,
      everyMinutes: m.everyMinutes,
      ...(state?.lastSuccessAt === undefined ? {} : { lastSuccessAt: new Date(state.lastSuccessAt).toISOString() }),
    });
  }

  const due = all.filter((m) => isDue(m.id, m.everyMinutes, tick, tickMinutes));
  const holders = await ledger.leaseHolders(
    due.map((m) => m.id),
    now,
  );
  const tripped = due.filter((m) => isUidlResetBlocked(stateById.get(m.id)));
  const toSend = due.filter((m) => !holders.has(m.id) && !isUidlResetBlocked(stateById.get(m.id)));

  const byQueue = new Map<string, ConfiguredMailbox[]>();
  for (const m of toSend) {
    const url = m.placement === 'vpc' && env.POPDRAIN_VPC_QUEUE_URL !== undefined ? env.POPDRAIN_VPC_QUEUE_URL : env.POPDRAIN_QUEUE_URL;
    byQueue.set(url, [...(byQueue.get(url) ?? []), m]);
  }
  let enqueued = 0;
  let sendFailures = 0;
  for (const [queueUrl, list] of byQueue) {
    for (let i = 0; i < list.length; i += 10) {
      const entries: SendMessageBatchRequestEntry[] = list.slice(i, i + 10).map((m, j) => ({
        Id: String(j),
        MessageGroupId: m.id,
        MessageDeduplicationId: deduplicationId([m.id, tickIso]),
        MessageBody: JSON.stringify({ mailboxId: m.id, tick: tickIso } satisfies DrainRequest),
      }));
      const result = await sqs.send(new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries }));
      enqueued += result.Successful?.length ?? 0;
      for (const f of result.Failed ?? []) {
        sendFailures += 1;
        logger.error('could not enqueue a mailbox', { mailboxId: list[i + Number(f.Id)]?.id, code: f.Code });
      }
    }
  }
  for (const m of tripped) logger.warn('UIDL-reset guard tripped: not enqueued until an operator accepts it', { mailboxId: m.id });

  metrics.addMetric('MailboxesDue', MetricUnit.Count, due.length);
  metrics.addMetric('MailboxesEnqueued', MetricUnit.Count, enqueued);
  metrics.addMetric('BusyMailboxes', MetricUnit.Count, due.length - toSend.length - tripped.length);
  metrics.addMetric('StaleMailboxes', MetricUnit.Count, stale);
  metrics.addMetric('UidlResetTripped', MetricUnit.Count, tripped.length);
  metrics.publishStoredMetrics();
  const result: TickResult = { tick: tickIso, due: due.length, enqueued, busy: due.length - toSend.length - tripped.length, tripped: tripped.length, stale };
  logger.info('tick', { ...result });
  if (sendFailures > 0) throw new Error(`${sendFailures} mailbox(es) could not be enqueued for tick ${tickIso}`);
  return result;
}
