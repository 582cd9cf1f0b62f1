// The shared set-up of lambdas.test.ts: the Lambda stage (Dovecot, s3rver, dynalite,
// local-aws-sqs, the EventBridge / Secrets Manager endpoint) with its mailboxes, the scheduler and
// drainer instances every test starts (kept, so the last test can scan all their output),
// enqueueing as the scheduler does, and the expectations on what a drain stored and printed.
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, expect } from 'vitest';
import type { DrainReport } from '../../lib/drain/report.js';
import { servedForm, testMessage } from '../../testkit/fixtures/drain-fixtures.js';
import { LambdaInstance, startInstances, type InvocationResult, type OutputLine } from '../../testkit/lambda/instance.js';
import { blobsWithDimensions, drainReports, emfBlobs, logRecords, type EmfBlob } from '../../testkit/lambda/output.js';
import { sha256Hex, startLambdaStage, type LambdaStage, type StageMailbox } from '../../testkit/lambda/stage.js';
import type { FifoQueue } from '../../testkit/aws/sqs-standin.js';

export const LONG_REMAINING_MS = 15 * 60_000;
const AGGREGATE_METRICS = [
  'MessagesStored',
  'BytesStored',
  'MessagesSkipped',
  'RunDurationMs',
  'BacklogAgeSeconds',
  'RunFailures',
  'AuthFailures',
  'BusyMailboxes',
];
export const SCHEDULER_METRICS = [
  'MailboxesDue',
  'MailboxesEnqueued',
  'BusyMailboxes',
  'QueuedMailboxes',
  'BackingOffMailboxes',
  'StaleMailboxes',
  'UidlResetTripped',
];

// Live bindings: they hold the stage and its mailboxes once beforeAll ran.
export let stage: LambdaStage;
export let sqs: SQSClient;
export const instances: LambdaInstance[] = [];

// The mailboxes: three drained every 5 minutes, three every 15, one whose lease another run
// holds, a backlog, one drained twice at once, one whose secret holds a wrong password.
export const mb: Record<string, StageMailbox> = {};
let fanoutConfig: string;
let drainConfig: string;

export const messages = (tag: string, n: number, bodyBytes = 600): Buffer[] => Array.from({ length: n }, (_, i) => testMessage(i, tag, bodyBytes));

/** Registers the hooks: the stage and its mailboxes for the file, every instance stopped after it. */
export function setUpLambdaWorld(): void {
  beforeAll(async () => {
    stage = await startLambdaStage();
    sqs = stage.sqs.client();
    for (const i of [1, 2, 3]) mb[`every5-${i}`] = await stage.addMailbox(`every5-${i}`, messages(`e5-${i}`, 3));
    for (const i of [1, 2, 3]) mb[`every15-${i}`] = await stage.addMailbox(`every15-${i}`, messages(`e15-${i}`, 3), { everyMinutes: 15 });
    mb.held = await stage.addMailbox('held', messages('held', 3));
    mb.backlog = await stage.addMailbox('backlog', messages('backlog', 400));
    mb.twin = await stage.addMailbox('twin', messages('twin', 300));
    mb.badpw = await stage.addMailbox('badpw', messages('badpw', 2), { wrongSecretPassword: true });
    mb.runaway = await stage.addMailbox('runaway', messages('runaway', 5));
    mb.throttled = await stage.addMailbox('throttled', messages('throttled', 2));
    fanoutConfig = await stage.writeMailboxFile('fanout.json', ['every5-1', 'every5-2', 'every5-3', 'every15-1', 'every15-2', 'every15-3', 'held'].map((k) => mb[k]!));
    drainConfig = await stage.writeMailboxFile('mailboxes.json', Object.values(mb));
  }, 120_000);

  afterAll(async () => {
    await Promise.all(instances.map((i) => i.stop()));
    await stage?.stop();
  });
}

export async function schedulerInstance(queue: FifoQueue, config: string = fanoutConfig): Promise<LambdaInstance> {
  const instance = await LambdaInstance.start({
    name: 'scheduler',
    handler: 'scheduler',
    env: stage.env({ POPDRAIN_CONFIG_PATH: config, POPDRAIN_QUEUE_URL: queue.url, POPDRAIN_TICK_MINUTES: '5' }),
  });
  instances.push(instance);
  return instance;
}

export async function drainerInstances(queue: FifoQueue, count: number, extra: Record<string, string> = {}): Promise<LambdaInstance[]> {
  const started = await startInstances(count, {
    namePrefix: `drainer-${queue.name}`,
    handler: 'drainer',
    // DEBUG: the most log records, so the "never a password" check sees the most.
    env: stage.env({ POPDRAIN_CONFIG_PATH: drainConfig, POPDRAIN_QUEUE_URL: queue.url, POWERTOOLS_LOG_LEVEL: 'DEBUG', ...extra }),
  });
  instances.push(...started);
  return started;
}

export async function enqueue(queue: FifoQueue, mailbox: StageMailbox, dedup: string, extra: { marker?: string } = {}): Promise<void> {
  await sqs.send(
    new SendMessageCommand({
      QueueUrl: queue.url,
      MessageGroupId: mailbox.id,
      MessageDeduplicationId: dedup,
      MessageBody: JSON.stringify({ mailboxId: mailbox.id, tick: new Date().toISOString(), ...extra }),
    }),
  );
}

/** Enqueue as the scheduler does: claim the mailbox's request marker first, send a request holding it. */
export async function enqueueWithMarker(queue: FifoQueue, mailbox: StageMailbox, token: string): Promise<void> {
  expect(await stage.ledger.claimRequestMarker(mailbox.id, { token, expiresAt: Date.now() + 60 * 60_000 }, Date.now())).toBe(true);
  await enqueue(queue, mailbox, `${mailbox.id}:${token}`, { marker: token });
}

/** Every message of the mailbox is in S3 exactly once, byte for byte, and announced once. */
export async function expectStoredOnce(mailbox: StageMailbox): Promise<void> {
  const objects = await stage.storedObjects(mailbox.id);
  expect(objects.size).toBe(mailbox.messages.length);
  const expected = mailbox.messages.map((m) => sha256Hex(servedForm(m))).sort();
  expect([...objects.values()].map(sha256Hex).sort()).toEqual(expected);
  for (const key of objects.keys()) expect(stage.s3Puts.puts.get(`/${stage.bucket}/${key}`), key).toBe(1);
  const events = stage.storedEvents(mailbox.id);
  expect(events).toHaveLength(mailbox.messages.length);
  expect(new Set(events.map((e) => (JSON.parse(e.Detail!) as { id: string }).id)).size).toBe(mailbox.messages.length);
}

/**
 * The EMF of one drain run: one aggregate blob with `service` only that names the mailbox as a
 * property (not a dimension), failures with `service` + `errorCode`, nothing else: no
 * per-mailbox series unless POPDRAIN_PER_MAILBOX_METRICS opts in.
 */
export function expectDrainMetrics(output: readonly OutputLine[], report: DrainReport): EmfBlob[] {
  const blobs = emfBlobs(output);
  for (const b of blobs) {
    expect(b.namespace).toBe('popdrain');
    expect(b.dimensionValues.service).toBe('popdrain');
  }
  const aggregate = blobsWithDimensions(blobs, ['service']);
  expect(aggregate).toHaveLength(1);
  expect([...aggregate[0]!.metrics.keys()].sort()).toEqual([...AGGREGATE_METRICS].sort());
  expect(aggregate[0]!.metrics.get('MessagesStored')).toBe(report.fetched);
  expect(aggregate[0]!.metrics.get('BytesStored')).toBe(report.fetchedBytes);
  expect(aggregate[0]!.raw).toMatchObject({ mailboxId: report.mailboxId, runId: report.runId, stopReason: report.stopReason });
  const byCode = blobsWithDimensions(blobs, ['service', 'errorCode']);
  expect(aggregate.length + byCode.length).toBe(blobs.length);
  return blobs;
}

/** Every log record of a drain invocation is JSON from Powertools and names the mailbox. */
export function expectDrainLogs(output: readonly OutputLine[], mailboxId: string): void {
  for (const line of output.filter((l) => l.stream === 'stdout')) expect(line.json, line.text).toBeDefined();
  const records = logRecords(output);
  expect(records.length).toBeGreaterThan(0);
  for (const r of records) {
    expect(r.service).toBe('popdrain');
    expect(r.mailboxId, r.message).toBe(mailboxId);
    // The Lambda context, from logger.addContext: the request id on every line.
    expect(typeof r.function_request_id, r.message).toBe('string');
  }
  const run = records.filter((r) => r.message === 'drain report');
  for (const r of run) expect(['ok', 'failed', 'busy']).toContain(r.outcome);
}

export function reportOf(invocation: InvocationResult): DrainReport {
  const reports = drainReports(invocation.output);
  expect(reports).toHaveLength(1);
  return reports[0]!;
}
