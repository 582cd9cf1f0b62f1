/**
 * The drainer: triggered by the FIFO queue, one mailbox per message, a batch of messages per
 * invocation (the event source's `batchSize`, drainerBatchSize). The batch's mailboxes (message
 * groups) drain at once, as many as the memory holds at worst (drain-slots.ts), the records of
 * one mailbox one after the other; once one fails, the later ones of its group are reported
 * failed without a run (batch-groups.ts). Each run has its own child logger naming its mailbox
 * (run-logger.ts) and its own metrics, published when it ends. Each run drains until the Lambda's
 * remaining time minus a margin; when the mailbox has more, it enqueues a continuation at once
 * (one deeper, up to POPDRAIN_MAX_CONTINUATIONS) so a backlog drains across invocations. What
 * follows a run is decided by run-verdict.ts: a busy mailbox (lease held, [IN-USE],
 * [LOGIN-DELAY]) is a normal outcome, recorded in metrics; a failure retrying soon cannot fix
 * (login refused, TLS, configuration, credentials) ends the message and backs the mailbox off
 * (`nextAttemptAt` in its state, failure-backoff.ts); an infrastructure error is a batch item
 * failure with a growing visibility timeout, and after maxReceiveCount lands in the DLQ. The
 * request marker the scheduler claimed is released when the chain of runs ends, or before the
 * run on the last allowed receive; a request whose mailbox a newer request holds is ended
 * without a login (request-start.ts).
 *
 * Nothing here does network I/O at import: the mailbox file is read on the first invocation.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { EventBridgeSink } from '../lib/adapters/aws/eventbridge-sink.js';
import { DEFAULT_S3_STORE_CONCURRENCY, S3MessageStore } from '../lib/adapters/aws/s3-store.js';
import { SecretsManagerCredentials } from '../lib/adapters/aws/secrets-manager-credentials.js';
import { drainMailbox } from '../lib/drain/drain-mailbox.js';
import type { DrainPorts } from '../lib/drain/ports.js';
import type { DrainReport } from '../lib/drain/report.js';
import { createS3Client } from '../lib/adapters/aws/http-timeouts.js';
import type { Logger } from '@aws-lambda-powertools/logger';
import { MetricUnit, type Metrics } from '@aws-lambda-powertools/metrics';
import { batchItemFailures, groupBatch, retryPlan, type RecordOutcome } from './batch-groups.js';
import { DEFAULT_BATCH_RUN_SECONDS, runDeadlines } from './run-deadline.js';
import { runBatch } from './drain-batch.js';
import { drainSlots } from './drain-slots.js';
import { redriveDelaySeconds } from './failure-backoff.js';
import { MailboxStanding } from './mailbox-standing.js';
import { recordReportMetrics, runOutcome } from './report-metrics.js';
import { decideRequestStart } from './request-start.js';
import { decideRunVerdict } from './run-verdict.js';
import { runLogger } from './run-logger.js';
import { clientConfig, createLedger, createLogger, createMailboxSource, createMetrics, drainLogger, readEnvironment } from './runtime.js';
import { DEFAULT_REQUEST_MARKER_TTL_SECONDS, deduplicationId, parseDrainRequest, type DrainRequest } from './schedule.js';
import { withoutUndefined } from '../lib/drain/without-undefined.js';
import * as z from '../lib/drain/zod.js';

/** The drain queue's maxReceiveCount unless POPDRAIN_MAX_RECEIVE_COUNT says (infra/constructs/drain-queues.ts). */
export const DEFAULT_MAX_RECEIVE_COUNT = 5;

/** Continuations one scheduler request may lead to before the chain is ended (runaway guard). */
export const DEFAULT_MAX_CONTINUATIONS = 200;

const env = readEnvironment({
  POPDRAIN_BUCKET: z.string().check(z.minLength(1)),
  POPDRAIN_PREFIX: z._default(z.string(), 'messages/'),
  POPDRAIN_KMS_KEY_ID: z.optional(z.string().check(z.minLength(1))),
  POPDRAIN_EVENT_BUS: z.string().check(z.minLength(1)),
  POPDRAIN_QUEUE_URL: z.string().check(z.url()),
  POPDRAIN_DEADLINE_MARGIN_MS: z._default(z.coerce.number().check(z.int(), z.minimum(1000)), 60_000),
  // A run that shares its invocation with other mailboxes stops taking messages after this (run-deadline.ts).
  POPDRAIN_BATCH_RUN_SECONDS: z._default(z.coerce.number().check(z.int(), z.minimum(1)), DEFAULT_BATCH_RUN_SECONDS),
  POPDRAIN_RETENTION_DAYS: z._default(z.coerce.number().check(z.int(), z.minimum(1)), 30),
  POPDRAIN_MAX_CONTINUATIONS: z._default(z.coerce.number().check(z.int(), z.minimum(0)), DEFAULT_MAX_CONTINUATIONS),
  POPDRAIN_REQUEST_MARKER_TTL_SECONDS: z._default(z.coerce.number().check(z.int(), z.minimum(60)), DEFAULT_REQUEST_MARKER_TTL_SECONDS),
  // The drain queue's maxReceiveCount: on that receive the marker is released before the run.
  POPDRAIN_MAX_RECEIVE_COUNT: z._default(z.coerce.number().check(z.int(), z.minimum(1)), DEFAULT_MAX_RECEIVE_COUNT),
  // Opt-in per-mailbox metric series (4 custom metrics per mailbox, billed monthly).
  POPDRAIN_PER_MAILBOX_METRICS: z._default(z.enum(['true', 'false']), 'false'),
});

const logger = createLogger();
// The ports are shared by the runs of an invocation; their lines name their mailbox themselves (run-logger.ts).
const portLogger = drainLogger(logger);
const s3 = createS3Client();
type SqsModule = typeof import('@aws-sdk/client-sqs');
// Loaded and built when a continuation or a retry delay is first sent: most runs send neither
// (the Lambda bundle keeps the SQS client in a chunk of its own, infra/constructs/lambda-bundle.ts).
let sqsLoading: Promise<{ sqs: SqsModule; client: InstanceType<SqsModule['SQSClient']> }> | undefined;
function sqs(): NonNullable<typeof sqsLoading> {
  sqsLoading ??= import('@aws-sdk/client-sqs').then(
    (module) => ({ sqs: module, client: new module.SQSClient(clientConfig()) }),
    (error: unknown) => {
      sqsLoading = undefined;
      throw error;
    },
  );
  return sqsLoading;
}
const dynamo = new DynamoDBClient(clientConfig());
const mailboxSource = createMailboxSource(env, () => s3, { client: dynamo, logger: portLogger, seed: false });
const ports: DrainPorts = {
  store: new S3MessageStore({
    client: s3,
    bucket: env.POPDRAIN_BUCKET,
    prefix: env.POPDRAIN_PREFIX,
    logger: portLogger,
    ...withoutUndefined({ kmsKeyId: env.POPDRAIN_KMS_KEY_ID }),
  }),
  ledger: createLedger(env.POPDRAIN_LEDGER_TABLE, dynamo, portLogger),
  events: new EventBridgeSink({ client: new EventBridgeClient(clientConfig()), eventBusName: env.POPDRAIN_EVENT_BUS }),
  // With the logger: a rotated refresh token that could not be saved is a warning, not silence.
  credentials: new SecretsManagerCredentials({ client: new SecretsManagerClient(clientConfig()), logger: portLogger }),
  logger: portLogger,
};
const standing = new MailboxStanding(ports.ledger, env.POPDRAIN_REQUEST_MARKER_TTL_SECONDS * 1000);

class RetryableRunError extends Error {
  override readonly name = 'RetryableRunError';
}

/** The memory Lambda gives the function (the context's memoryLimitInMB), for drain-slots.ts. */
const DEFAULT_MEMORY_MIB = 1024;

async function drainOne(record: SQSRecord, request: DrainRequest, context: Context, groupsInBatch: number, logger: Logger, metrics: Metrics): Promise<void> {
  // Before any login: a request whose mailbox a newer request holds is a duplicate (stale).
  const start = decideRequestStart({
    requestToken: request.marker,
    marker: request.marker === undefined ? undefined : (await ports.ledger.getMailboxState(request.mailboxId)).requestMarker,
    now: Date.now(),
    receiveCount: Number(record.attributes.ApproximateReceiveCount ?? '1'),
    maxReceiveCount: env.POPDRAIN_MAX_RECEIVE_COUNT,
  });
  if (start.kind === 'stale') {
    metrics.addMetric('StaleRequestsSkipped', MetricUnit.Count, 1);
    logger.info('stale drain request: a newer request holds the mailbox; ended without a login', { mailboxId: request.mailboxId, marker: request.marker, holder: start.holder });
    return;
  }
  // The last allowed receive: if this run fails into the DLQ, the mailbox stays schedulable.
  if (start.releaseFirst) await standing.releaseMarker(request.mailboxId, request.marker);
  const found = await mailboxSource.lookup(request.mailboxId);
  if (!('mailbox' in found)) {
    // Removed, paused or invalid since the message was sent: nothing to retry (a paused mailbox's
    // chain ends here, after the run that was going when it was paused).
    logger.warn(`mailbox ${found.missing}; dropping the request`, { mailboxId: request.mailboxId, ...withoutUndefined({ problem: found.problem }) });
    await standing.releaseMarker(request.mailboxId, request.marker);
    return;
  }
  const mailbox = found.mailbox;
  // In a batch, a run is capped so a backlog does not hold the other mailboxes' groups (run-deadline.ts).
  const deadlines = runDeadlines({
    now: Date.now(),
    remainingMs: context.getRemainingTimeInMillis(),
    marginMs: env.POPDRAIN_DEADLINE_MARGIN_MS,
    groupsInBatch,
    batchRunCapMs: env.POPDRAIN_BATCH_RUN_SECONDS * 1000,
  });
  const report: DrainReport = await drainMailbox(
    mailbox,
    ports,
    deadlines,
    // S3 is tens of ms away: more stores in flight than the local default (s3-store.ts).
    { runId: `${context.awsRequestId}:${record.messageId}`, retentionDays: env.POPDRAIN_RETENTION_DAYS, storeConcurrency: DEFAULT_S3_STORE_CONCURRENCY },
  );
  recordReportMetrics(metrics, report, { perMailbox: env.POPDRAIN_PER_MAILBOX_METRICS === 'true' });
  // The run's one line: what the Contributor Insights rules and the saved query read.
  logger.info('drain report', {
    outcome: runOutcome(report),
    ...(report.error === undefined ? {} : { errorCode: report.error.code }),
    report: { ...report, failures: report.failures.slice(0, 20) },
  });

  const depth = request.depth ?? 0;
  const verdict = decideRunVerdict({ report, depth, maxDepth: env.POPDRAIN_MAX_CONTINUATIONS });
  const ended = Date.now();
  switch (verdict.kind) {
    case 'continue': {
      await standing.succeeded(mailbox.id, report);
      await standing.extendMarker(mailbox.id, request.marker, ended);
      const next: DrainRequest = {
        mailboxId: mailbox.id,
        tick: report.finishedAt,
        continuationOf: report.runId,
        ...withoutUndefined({ marker: request.marker }),
        depth: verdict.depth,
      };
      const queue = await sqs();
      await queue.client.send(
        new queue.sqs.SendMessageCommand({
          QueueUrl: env.POPDRAIN_QUEUE_URL,
          MessageGroupId: mailbox.id,
          MessageDeduplicationId: deduplicationId([mailbox.id, 'cont', report.runId]),
          MessageBody: JSON.stringify(next),
        }),
      );
      logger.info('more remains: continuation enqueued', { remaining: report.remaining, depth: verdict.depth });
      return;
    }
    case 'done':
      await standing.succeeded(mailbox.id, report);
      await standing.releaseMarker(mailbox.id, request.marker);
      return;
    case 'chain-capped':
      await standing.succeeded(mailbox.id, report);
      await standing.chainCapped(mailbox.id, ended);
      await standing.releaseMarker(mailbox.id, request.marker);
      metrics.addMetric('ContinuationChainsCapped', MetricUnit.Count, 1);
      logger.warn('continuation chain reached its cap: ended; the next scheduled tick starts a new one', {
        depth: verdict.depth,
        maxContinuations: env.POPDRAIN_MAX_CONTINUATIONS,
        remaining: report.remaining,
      });
      return;
    case 'retry-later':
      // Busy or in use: the next tick tries again. A login delay (CAPA LOGIN-DELAY) is honoured:
      // the scheduler does not enqueue the mailbox before it has passed.
      if (verdict.afterSeconds !== undefined) await standing.notBefore(mailbox.id, ended + verdict.afterSeconds * 1000);
      await standing.releaseMarker(mailbox.id, request.marker);
      return;
    case 'needs-operator':
      // The UIDL-reset guard: the scheduler waits for an operator.
      await standing.releaseMarker(mailbox.id, request.marker);
      return;
    case 'back-off': {
      const { nextAttemptAt, streak } = await standing.failed(mailbox.id, report, ended);
      await standing.releaseMarker(mailbox.id, request.marker);
      logger.error('drain failed in a way retrying soon cannot fix; the mailbox backs off', {
        stopReason: report.stopReason,
        code: report.error?.code,
        failureStreak: streak,
        nextAttemptAt: new Date(nextAttemptAt).toISOString(),
      });
      return;
    }
    case 'redrive':
      // Not after a release on the last receive: the request is bound for the DLQ.
      if (!start.releaseFirst) await standing.extendMarker(mailbox.id, request.marker, ended).catch(() => undefined);
      throw new RetryableRunError(`drain of ${mailbox.id} stopped: ${report.stopReason}${report.error ? ` (${report.error.message})` : ''}`);
  }
}

export async function handler(event: SQSEvent, context: Context): Promise<SQSBatchResponse> {
  // The request id, function name and version, cold start on every log line of this invocation
  // (each run's child logger copies them).
  logger.addContext(context);
  const groups = groupBatch(event.Records).length;
  const slots = drainSlots(groups, Number(context.memoryLimitInMB) || DEFAULT_MEMORY_MIB);
  const outcomes = await runBatch(event.Records, slots, (record) => runRecord(record, context, groups));
  // The failed records, and the later ones of their groups that were not run (FIFO order).
  await Promise.all(retryPlan(event.Records, outcomes).map(({ record, delayOf }) => setRetryDelay(record, delayOf)));
  return { batchItemFailures: batchItemFailures(event.Records, outcomes).map((id) => ({ itemIdentifier: id })) };
}

/** One record's run, with its own logger and metrics (published when it ends, once). */
async function runRecord(record: SQSRecord, context: Context, groupsInBatch: number): Promise<RecordOutcome> {
  const request = parseDrainRequest(record.body);
  if (request === undefined) {
    logger.error('malformed drain request; dropping it', { messageId: record.messageId });
    return 'done';
  }
  const log = runLogger(logger, request.mailboxId);
  const metrics = createMetrics();
  try {
    await drainOne(record, request, context, groupsInBatch, log, metrics);
    return 'done';
  } catch (error) {
    log.error('drain failed; will retry with backoff', { error: error instanceof Error ? error.message : String(error) });
    return 'failed';
  } finally {
    metrics.publishStoredMetrics();
  }
}

/** A reported record comes back after the backoff of its group's failed record (its receive count). */
async function setRetryDelay(record: SQSRecord, delayOf: SQSRecord): Promise<void> {
  const receiveCount = Number(delayOf.attributes.ApproximateReceiveCount ?? '1');
  await sqs()
    .then((queue) =>
      queue.client.send(
        new queue.sqs.ChangeMessageVisibilityCommand({
          QueueUrl: queueUrlOf(record),
          ReceiptHandle: record.receiptHandle,
          VisibilityTimeout: redriveDelaySeconds(receiveCount),
        }),
      ),
    )
    .catch((e: unknown) => logger.warn('could not set the retry delay', { messageId: record.messageId, error: e instanceof Error ? e.message : String(e) }));
}

/** The queue URL from the record's ARN (arn:aws:sqs:region:account:name). */
function queueUrlOf(record: SQSRecord): string {
  const [, partition, , region, account, name] = record.eventSourceARN.split(':');
  if (record.eventSourceARN === env.POPDRAIN_QUEUE_URL || name === undefined) return env.POPDRAIN_QUEUE_URL;
  const suffix = partition === 'aws-cn' ? 'amazonaws.com.cn' : 'amazonaws.com';
  const fromArn = `https://sqs.${region}.${suffix}/${account}/${name}`;
  // The configured URL is authoritative when it names the same queue (it honours endpoint overrides).
  return env.POPDRAIN_QUEUE_URL.endsWith(`/${account}/${name}`) ? env.POPDRAIN_QUEUE_URL : fromArn;
}
