/**
 * The drainer: triggered by the FIFO queue, one mailbox per message. Drains until the Lambda's
 * remaining time minus a margin; when the mailbox has more, it enqueues a continuation at once
 * so a backlog drains across invocations. A busy mailbox (lease held, [IN-USE], [LOGIN-DELAY])
 * is a normal outcome, recorded in metrics. A failed run is reported as a batch item failure
 * with a growing visibility timeout (backoff); after maxReceiveCount it lands in the DLQ.
 */
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ChangeMessageVisibilityCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import * as z from 'zod';
import { EventBridgeSink } from '../lib/adapters/aws/eventbridge-sink.js';
import { S3MessageStore } from '../lib/adapters/aws/s3-store.js';
import { SecretsManagerCredentials } from '../lib/adapters/aws/secrets-manager-credentials.js';
import { drainMailbox } from '../lib/drain/drain-mailbox.js';
import type { DrainPorts } from '../lib/drain/ports.js';
import { NORMAL_STOPS, type DrainReport } from '../lib/drain/report.js';
import { createS3Client } from '../lib/adapters/aws/http-timeouts.js';
import { recordReportMetrics, runOutcome } from './report-metrics.js';
import { clientConfig, createLedger, createLogger, createMetrics, drainLogger, loadMailboxes, readEnvironment } from './runtime.js';
import { deduplicationId, parseDrainRequest, type DrainRequest } from './schedule.js';

const env = readEnvironment({
  POPDRAIN_BUCKET: z.string().min(1),
  POPDRAIN_PREFIX: z.string().default('messages/'),
  POPDRAIN_KMS_KEY_ID: z.string().min(1).optional(),
  POPDRAIN_EVENT_BUS: z.string().min(1),
  POPDRAIN_QUEUE_URL: z.string().url(),
  POPDRAIN_DEADLINE_MARGIN_MS: z.coerce.number().int().min(1000).default(60_000),
  POPDRAIN_RETENTION_DAYS: z.coerce.number().int().min(1).default(30),
  // Opt-in per-mailbox metric series (4 custom metrics per mailbox, billed monthly).
  POPDRAIN_PER_MAILBOX_METRICS: z.enum(['true', 'false']).default('false'),
});

const logger = createLogger();
const metrics = createMetrics();
const s3 = createS3Client();
const sqs = new SQSClient(clientConfig());
const mailboxes = await loadMailboxes(env, () => s3);
const ports: DrainPorts = {
  store: new S3MessageStore({
    client: s3,
    bucket: env.POPDRAIN_BUCKET,
    prefix: env.POPDRAIN_PREFIX,
    logger: drainLogger(logger),
    ...(env.POPDRAIN_KMS_KEY_ID === undefined ? {} : { kmsKeyId: env.POPDRAIN_KMS_KEY_ID }),
  }),
  ledger: createLedger(env.POPDRAIN_LEDGER_TABLE),
  events: new EventBridgeSink({ client: new EventBridgeClient(clientConfig()), eventBusName: env.POPDRAIN_EVENT_BUS }),
  // With the logger: a rotated refresh token that could not be saved is a warning, not silence.
  credentials: new SecretsManagerCredentials({ client: new SecretsManagerClient(clientConfig()), logger: drainLogger(logger) }),
  logger: drainLogger(logger),
};

/** Seconds a failed mailbox waits before its message is visible again: 1, 2, 4 ... 15 min. */
export function backoffSeconds(receiveCount: number): number {
  return Math.min(900, 60 * 2 ** Math.max(0, receiveCount - 1));
}

class RetryableRunError extends Error {
  override readonly name = 'RetryableRunError';
}

async function drainOne(record: SQSRecord, request: DrainRequest, context: Context): Promise<void> {
  const mailbox = mailboxes.byId.get(request.mailboxId);
  if (mailbox === undefined) {
    // The configuration changed since the message was sent: nothing to retry.
    logger.warn('mailbox not in the configuration; dropping the request', { mailboxId: request.mailboxId });
    return;
  }
  logger.appendKeys({ mailboxId: mailbox.id });
  const now = Date.now();
  const remaining = context.getRemainingTimeInMillis();
  const report: DrainReport = await drainMailbox(
    mailbox,
    ports,
    {
      deadline: now + remaining - env.POPDRAIN_DEADLINE_MARGIN_MS,
      hardDeadline: now + remaining - Math.min(10_000, env.POPDRAIN_DEADLINE_MARGIN_MS / 2),
    },
    { runId: `${context.awsRequestId}:${record.messageId}`, retentionDays: env.POPDRAIN_RETENTION_DAYS },
  );
  recordReportMetrics(metrics, report, { perMailbox: env.POPDRAIN_PER_MAILBOX_METRICS === 'true' });
  // The run's one line: what the Contributor Insights rules and the saved query read.
  logger.info('drain report', {
    outcome: runOutcome(report),
    ...(report.error === undefined ? {} : { errorCode: report.error.code }),
    report: { ...report, failures: report.failures.slice(0, 20) },
  });

  if (report.retryLater) return; // busy: the next tick tries again
  if (report.moreRemaining && NORMAL_STOPS.has(report.stopReason) && report.stopReason !== 'cancelled') {
    await sqs.send(
      new SendMessageCommand({
        QueueUrl: env.POPDRAIN_QUEUE_URL,
        MessageGroupId: mailbox.id,
        MessageDeduplicationId: deduplicationId([mailbox.id, 'cont', report.runId]),
        MessageBody: JSON.stringify({ mailboxId: mailbox.id, tick: report.finishedAt, continuationOf: report.runId } satisfies DrainRequest),
      }),
    );
    logger.info('more remains: continuation enqueued', { remaining: report.remaining });
    return;
  }
  if (!NORMAL_STOPS.has(report.stopReason)) {
    throw new RetryableRunError(`drain of ${mailbox.id} stopped: ${report.stopReason}${report.error ? ` (${report.error.message})` : ''}`);
  }
}

export async function handler(event: SQSEvent, context: Context): Promise<SQSBatchResponse> {
  // The request id, function name and version, cold start on every log line of this invocation.
  logger.addContext(context);
  const failures: SQSBatchResponse['batchItemFailures'] = [];
  for (const record of event.Records) {
    // FIFO: once a record fails, the rest of the batch must fail too, to keep the order.
    if (failures.length > 0) {
      failures.push({ itemIdentifier: record.messageId });
      continue;
    }
    const request = parseDrainRequest(record.body);
    if (request === undefined) {
      logger.error('malformed drain request; dropping it', { messageId: record.messageId });
      continue;
    }
    try {
      await drainOne(record, request, context);
    } catch (error) {
      logger.error('drain failed; will retry with backoff', { error: error instanceof Error ? error.message : String(error) });
      failures.push({ itemIdentifier: record.messageId });
      const receiveCount = Number(record.attributes.ApproximateReceiveCount ?? '1');
      await sqs
        .send(
          new ChangeMessageVisibilityCommand({
            QueueUrl: queueUrlOf(record),
            ReceiptHandle: record.receiptHandle,
            VisibilityTimeout: backoffSeconds(receiveCount),
          }),
        )
        .catch((e: unknown) => logger.warn('could not set the retry delay', { error: e instanceof Error ? e.message : String(e) }));
    } finally {
      logger.removeKeys(['mailboxId']);
      metrics.publishStoredMetrics();
    }
  }
  return { batchItemFailures: failures };
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
