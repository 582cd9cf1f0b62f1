/**
 * The scheduler: every tick, one SQS message per due mailbox (FIFO: the mailbox id is the
 * message group, mailbox id + tick the deduplication id, so a repeated tick enqueues nothing
 * twice). At most one request per mailbox is outstanding: before it enqueues, the scheduler
 * claims the mailbox's request marker (a conditional write with a short expiry) and, once the
 * request is sent, extends it to the queue's retention plus a visibility timeout, so a request
 * still waiting is never duplicated; the drainer releases it when the chain of runs ends.
 * Mailboxes are skipped (enqueue-decision.ts) when a request is waiting or running, the lease
 * is held, a failure's backoff has not run out, or the UIDL-reset guard tripped (an operator
 * must look). It reads the mailboxes' states and leases
 * in batches (BatchGetItem; states eventually consistent), and counts the mailboxes not drained
 * successfully for `staleAfterIntervals` of their schedule.
 *
 * Nothing here does network I/O at import: the mailbox file (or the registry, which it seeds
 * from the file once per file content) is read on the first invocation (mailbox-source.ts).
 */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SendMessageBatchCommand, SQSClient, type SendMessageBatchRequestEntry } from '@aws-sdk/client-sqs';
import type { Context, ScheduledEvent } from 'aws-lambda';
import type { ConfiguredMailbox } from '../lib/drain/config.js';
import type { MailboxState } from '../lib/drain/ports.js';
import { createS3Client } from '../lib/adapters/aws/http-timeouts.js';
import { mapBounded } from '../lib/adapters/aws/map-bounded.js';
import * as z from '../lib/drain/zod.js';
import { decideEnqueue, type SkipReason } from './enqueue-decision.js';
import { clientConfig, createLedger, createLogger, createMailboxSource, createMetrics, drainLogger, readEnvironment } from './runtime.js';
import { DynamoDbRequestMarkers } from '../lib/adapters/aws/dynamodb-request-marker.js';
import { DEFAULT_REQUEST_CLAIM_TTL_SECONDS, DEFAULT_REQUEST_MARKER_TTL_SECONDS, deduplicationId, isDue, tickStart, type DrainRequest } from './schedule.js';

export { isUidlResetBlocked } from './enqueue-decision.js';

/** Conditional marker claims in flight at once. */
const MARKER_CLAIM_CONCURRENCY = 16;

const env = readEnvironment({
  POPDRAIN_QUEUE_URL: z.string().check(z.url()),
  POPDRAIN_VPC_QUEUE_URL: z.optional(z.string().check(z.url())),
  POPDRAIN_TICK_MINUTES: z._default(z.coerce.number().check(z.int(), z.minimum(1), z.maximum(1440)), 5),
  POPDRAIN_STALE_AFTER_INTERVALS: z._default(z.coerce.number().check(z.int(), z.minimum(1)), 3),
  POPDRAIN_REQUEST_MARKER_TTL_SECONDS: z._default(z.coerce.number().check(z.int(), z.minimum(60)), DEFAULT_REQUEST_MARKER_TTL_SECONDS),
  POPDRAIN_REQUEST_CLAIM_TTL_SECONDS: z._default(z.coerce.number().check(z.int(), z.minimum(60)), DEFAULT_REQUEST_CLAIM_TTL_SECONDS),
});

const logger = createLogger();
const metrics = createMetrics();
const sqs = new SQSClient(clientConfig());
const dynamo = new DynamoDBClient(clientConfig());
const ledger = createLedger(env.POPDRAIN_LEDGER_TABLE, dynamo);
const markers = new DynamoDbRequestMarkers(dynamo, env.POPDRAIN_LEDGER_TABLE);
const mailboxSource = createMailboxSource(env, () => createS3Client(), { client: dynamo, logger: drainLogger(logger), seed: true });

export interface TickResult {
  tick: string;
  due: number;
  enqueued: number;
  /** Skipped: a run holds the lease. */
  busy: number;
  /** Skipped: a request is already waiting or running. */
  queued: number;
  /** Skipped: a failure's backoff has not run out. */
  backingOff: number;
  tripped: number;
  stale: number;
  /** Paused in the registry: not scheduled. */
  paused: number;
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

export async function handler(event: Pick<ScheduledEvent, 'time'>, context?: Context): Promise<TickResult> {
  // The request id, function name and version, cold start on every log line of this invocation.
  if (context !== undefined) logger.addContext(context);
  const now = Date.now();
  const tickMinutes = env.POPDRAIN_TICK_MINUTES;
  const tick = tickStart(new Date(event.time ?? now), tickMinutes);
  const tickIso = tick.toISOString();
  // Paused mailboxes are not scheduled (nor counted stale); a running chain of theirs ends at its next continuation.
  const { mailboxes: all, paused } = await mailboxSource.list();
  const stateById = await ledger.mailboxStates(all.map((m) => m.id));
  const staleMailboxes = all.filter((m) => isStale(m, stateById.get(m.id), now, env.POPDRAIN_STALE_AFTER_INTERVALS));
  const stale = staleMailboxes.length;
  // One line per stale mailbox (none when all is well): the StaleMailboxes Contributor
  // Insights rule names them, so the aggregate alarm needs no per-mailbox metric.
  for (const m of staleMailboxes) {
    const state = stateById.get(m.id);
    logger.warn('mailbox stale', {
      mailboxId: m.id,
      everyMinutes: m.everyMinutes,
      lastSuccessAt: state?.lastSuccessAt === undefined ? undefined : new Date(state.lastSuccessAt).toISOString(),
    });
  }

  const due = all.filter((m) => isDue(m.id, m.everyMinutes, tick, tickMinutes));
  const holders = await ledger.leaseHolders(
    due.map((m) => m.id),
    now,
  );
  const skipped = new Map<SkipReason, ConfiguredMailbox[]>();
  const candidates: ConfiguredMailbox[] = [];
  for (const m of due) {
    const decision = decideEnqueue({ due: true, state: stateById.get(m.id), leaseHeld: holders.has(m.id), now, token: tickIso });
    if (decision.enqueue) candidates.push(m);
    else skipped.set(decision.reason, [...(skipped.get(decision.reason) ?? []), m]);
  }
  // The claim decides: of two schedulers (or a scheduler and a stale read), one enqueues. It is
  // short until the request is sent, then extended to as long as the request can wait.
  const marker = { token: tickIso, expiresAt: now + env.POPDRAIN_REQUEST_CLAIM_TTL_SECONDS * 1000 };
  const claimed = await mapBounded(candidates, MARKER_CLAIM_CONCURRENCY, (m) => ledger.claimRequestMarker(m.id, marker, now));
  const toSend = candidates.filter((_, i) => claimed[i]);
  const lostClaims = candidates.filter((_, i) => !claimed[i]);
  skipped.set('queued', [...(skipped.get('queued') ?? []), ...lostClaims]);
  const tripped = skipped.get('uidl-reset') ?? [];
  const count = (reason: SkipReason): number => skipped.get(reason)?.length ?? 0;

  const byQueue = new Map<string, ConfiguredMailbox[]>();
  for (const m of toSend) {
    const url = m.placement === 'vpc' && env.POPDRAIN_VPC_QUEUE_URL !== undefined ? env.POPDRAIN_VPC_QUEUE_URL : env.POPDRAIN_QUEUE_URL;
    byQueue.set(url, [...(byQueue.get(url) ?? []), m]);
  }
  let enqueued = 0;
  let sendFailures = 0;
  const sent: string[] = [];
  for (const [queueUrl, list] of byQueue) {
    for (let i = 0; i < list.length; i += 10) {
      const entries: SendMessageBatchRequestEntry[] = list.slice(i, i + 10).map((m, j) => ({
        Id: String(j),
        MessageGroupId: m.id,
        MessageDeduplicationId: deduplicationId([m.id, tickIso]),
        MessageBody: JSON.stringify({ mailboxId: m.id, tick: tickIso, marker: tickIso } satisfies DrainRequest),
      }));
      const failed: string[] = [];
      try {
        const result = await sqs.send(new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries }));
        enqueued += result.Successful?.length ?? 0;
        for (const s of result.Successful ?? []) {
          const mailboxId = list[i + Number(s.Id)]?.id;
          if (mailboxId !== undefined) sent.push(mailboxId);
        }
        for (const f of result.Failed ?? []) {
          const mailboxId = list[i + Number(f.Id)]?.id;
          logger.error('could not enqueue a mailbox', { mailboxId, code: f.Code });
          if (mailboxId !== undefined) failed.push(mailboxId);
        }
      } catch (error) {
        logger.error('could not enqueue a batch of mailboxes', { error: error instanceof Error ? error.message : String(error) });
        failed.push(...list.slice(i, i + 10).map((m) => m.id));
      }
      sendFailures += failed.length;
      // Not enqueued: give the marker back so the next tick may try (it would expire anyway).
      await Promise.all(failed.map((id) => ledger.releaseRequestMarker(id, tickIso).catch(() => undefined)));
    }
  }
  // Sent: the marker now lives as long as the request can wait, so no later tick duplicates it.
  // Only a marker still this tick's is extended (a fast drainer may have released it already).
  const longExpiry = Date.now() + env.POPDRAIN_REQUEST_MARKER_TTL_SECONDS * 1000;
  await mapBounded(sent, MARKER_CLAIM_CONCURRENCY, (id) =>
    markers.extend(id, tickIso, longExpiry).catch((error: unknown) => {
      logger.warn('could not extend a request marker; it expires early and the drainer ends a duplicate as stale', {
        mailboxId: id,
        error: error instanceof Error ? error.message : String(error),
      });
      return false;
    }),
  );
  for (const m of tripped) logger.warn('UIDL-reset guard tripped: not enqueued until an operator accepts it', { mailboxId: m.id });

  metrics.addMetric('MailboxesDue', MetricUnit.Count, due.length);
  metrics.addMetric('MailboxesEnqueued', MetricUnit.Count, enqueued);
  metrics.addMetric('BusyMailboxes', MetricUnit.Count, count('running'));
  metrics.addMetric('QueuedMailboxes', MetricUnit.Count, count('queued'));
  metrics.addMetric('BackingOffMailboxes', MetricUnit.Count, count('backing-off'));
  metrics.addMetric('StaleMailboxes', MetricUnit.Count, stale);
  metrics.addMetric('UidlResetTripped', MetricUnit.Count, tripped.length);
  if (env.POPDRAIN_MAILBOX_SOURCE === 'registry') metrics.addMetric('PausedMailboxes', MetricUnit.Count, paused.length);
  metrics.publishStoredMetrics();
  const result: TickResult = {
    tick: tickIso,
    due: due.length,
    enqueued,
    busy: count('running'),
    queued: count('queued'),
    backingOff: count('backing-off'),
    tripped: tripped.length,
    stale,
    paused: paused.length,
  };
  logger.info('tick', { ...result });
  if (sendFailures > 0) throw new Error(`${sendFailures} mailbox(es) could not be enqueued for tick ${tickIso}`);
  return result;
}
