// The drainer with a batch of drain requests in one invocation, as Lambda's SQS event source
// delivers them with drainerBatchSize > 1: the handler, unchanged, in its own process (a Lambda
// instance), against Dovecot, s3rver, dynalite, local-aws-sqs and the Secrets Manager /
// EventBridge endpoint. The batch is built from received messages in the order SQS would hand
// them over (groups interleaved, each group in order) and given to one invocation, as Lambda
// does; the testkit's event-source loop (batches of 1) is not needed for that.
//
// Expectations are about order, never about speed: the runs of one mailbox ran one after the
// other (the first ended before the second began, and the second found nothing left), the runs
// of different mailboxes overlapped (each began before the others ended), from the instants
// the runs' own reports give.
import { createServer } from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import { SendMessageCommand, type Message, type SQSClient } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DrainReport } from '../../lib/drain/report.js';
import { testMessage } from '../../testkit/fixtures/drain-fixtures.js';
import { LambdaInstance } from '../../testkit/lambda/instance.js';
import { blobsWithDimensions, drainReports, emfBlobs, logRecords } from '../../testkit/lambda/output.js';
import { startLambdaStage, type LambdaStage, type StageMailbox } from '../../testkit/lambda/stage.js';
import { runEventSource, sqsEvent, sqsRecord } from '../../testkit/lambda/sqs-event-source.js';
import type { FifoQueue } from '../../testkit/aws/sqs-standin.js';

let stage: LambdaStage;
let sqs: SQSClient;
const instances: LambdaInstance[] = [];
const mb: Record<string, StageMailbox> = {};
let config: string;

/** A loopback port nothing listens on: connecting to it is refused (CONNECT_FAILED, retryable). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

beforeAll(async () => {
  stage = await startLambdaStage();
  sqs = stage.sqs.client();
  for (const name of ['batch-a', 'batch-b', 'batch-c', 'batch-d', 'batch-twice']) {
    mb[name] = await stage.addMailbox(name, [0, 1, 2].map((i) => testMessage(i, name, 800)));
  }
  mb['batch-down'] = await stage.addMailbox('batch-down', [testMessage(0, 'batch-down', 800)]);
  // The file the construct would bundle, with one mailbox whose server refuses connections.
  const path = await stage.writeMailboxFile('batch.json', Object.values(mb));
  const file = JSON.parse(await readFile(path, 'utf8')) as { mailboxes: Array<{ id: string; port?: number }> };
  file.mailboxes.find((m) => m.id === mb['batch-down']!.id)!.port = await closedPort();
  await writeFile(path, `${JSON.stringify(file, null, 2)}\n`);
  config = path;
}, 120_000);

afterAll(async () => {
  await Promise.all(instances.map((i) => i.stop()));
  await stage?.stop();
});

async function send(queue: FifoQueue, mailbox: StageMailbox, dedup: string): Promise<void> {
  await sqs.send(
    new SendMessageCommand({
      QueueUrl: queue.url,
      MessageGroupId: mailbox.id,
      MessageDeduplicationId: dedup,
      MessageBody: JSON.stringify({ mailboxId: mailbox.id, tick: new Date().toISOString() }),
    }),
  );
}

const groupOf = (m: Message): string => m.Attributes?.MessageGroupId ?? '';
const at = (iso: string): number => Date.parse(iso);

describe('drainer, a batch per invocation', () => {
  it('drains the mailboxes of a batch at once, one mailbox runs in order, a failed mailbox skips its later request while the others succeed, each log line names its own mailbox', async () => {
    const queue = await stage.sqs.createFifoQueue('batch', { visibilityTimeoutSeconds: 300 });
    const drainer = await LambdaInstance.start({
      name: 'drainer-batch',
      handler: 'drainer',
      // DEBUG: the most log records from the shared ports, each of which must name its own run's mailbox.
      env: stage.env({ POPDRAIN_CONFIG_PATH: config, POPDRAIN_QUEUE_URL: queue.url, POWERTOOLS_LOG_LEVEL: 'DEBUG' }),
    });
    instances.push(drainer);
    // Two requests of `batch-twice` and of `batch-down` (a tick's and a later one), one of each other.
    const order = ['batch-a', 'batch-twice', 'batch-down', 'batch-b', 'batch-twice', 'batch-c', 'batch-down', 'batch-d'];
    for (const [i, name] of order.entries()) await send(queue, mb[name]!, `${name}:${i}`);
    const received = await stage.sqs.receiveAll(queue.url);
    expect(received.map(groupOf)).toEqual(order.map((n) => mb[n]!.id));
    const records = received.map((m) => sqsRecord(m, queue.arn));
    const byName = (name: string) => records.filter((r) => r.attributes.MessageGroupId === mb[name]!.id);

    const invocation = await drainer.invoke(sqsEvent(records), { remainingMs: 15 * 60_000 });
    expect(invocation.ok, JSON.stringify(invocation.error)).toBe(true);

    // The failed mailbox: its first request failed (connection refused, retryable), its second
    // was not run; both come back, after the backoff of the first. Every other request is done.
    const [down1, down2] = byName('batch-down');
    expect((invocation.result as SQSBatchResponse).batchItemFailures).toEqual([{ itemIdentifier: down1!.messageId }, { itemIdentifier: down2!.messageId }]);
    const changes = stage.sqs.requestsFor('ChangeMessageVisibility', queue.url);
    expect(changes.map((c) => c.body.ReceiptHandle).sort()).toEqual([down1!.receiptHandle, down2!.receiptHandle].sort());
    expect(changes.map((c) => c.body.VisibilityTimeout)).toEqual([60, 60]);
    expect(changes.every((c) => c.status === 200)).toBe(true);

    const reports = drainReports(invocation.output);
    const reportsOf = (name: string): DrainReport[] => reports.filter((r) => r.mailboxId === mb[name]!.id);
    const downReports = reportsOf('batch-down');
    expect(downReports).toHaveLength(1);
    expect(downReports[0]).toMatchObject({ ok: false, error: { code: 'CONNECT_FAILED', retryable: true } });

    // Every other mailbox drained, each message stored once.
    for (const name of ['batch-a', 'batch-b', 'batch-c', 'batch-d', 'batch-twice']) {
      expect((await stage.storedObjects(mb[name]!.id)).size, name).toBe(3);
      expect(stage.storedEvents(mb[name]!.id), name).toHaveLength(3);
    }
    expect(reports).toHaveLength(1 + 4 + 2);

    // One mailbox's requests ran one after the other: the first stored all three messages and
    // ended before the second began; the second found nothing new.
    const twice = reportsOf('batch-twice');
    expect(twice.map((r) => r.fetched)).toEqual([3, 0]);
    expect(at(twice[0]!.finishedAt)).toBeLessThanOrEqual(at(twice[1]!.startedAt));

    // Different mailboxes' runs overlapped: each first run began before any of them ended.
    const firsts = ['batch-a', 'batch-b', 'batch-c', 'batch-d', 'batch-twice', 'batch-down'].map((n) => reportsOf(n)[0]!);
    const lastStart = Math.max(...firsts.map((r) => at(r.startedAt)));
    const firstEnd = Math.min(...firsts.map((r) => at(r.finishedAt)));
    expect(lastStart).toBeLessThan(firstEnd);

    // Each log line names its own mailbox: the run's report line, and any line of the
    // engine or its shared ports (store, ledger, credentials, events) that mentions a mailbox id
    // mentions only its own.
    const lines = logRecords(invocation.output);
    const ids = new Set(Object.values(mb).map((m) => m.id));
    let portLines = 0;
    for (const line of lines) {
      expect(line.function_request_id, line.message).toBe(invocation.awsRequestId);
      const id = line.mailboxId as string | undefined;
      expect(id !== undefined && ids.has(id), `${line.message}: ${String(id)}`).toBe(true);
      const { mailboxId: _own, ...rest } = line;
      const mentioned = new Set(JSON.stringify(rest).match(/mbx-batch-[a-z]+/g) ?? []);
      for (const other of mentioned) expect(other, line.message).toBe(id);
      if (line.message !== 'drain report' && mentioned.size > 0) portLines += 1;
    }
    expect(portLines).toBeGreaterThan(0);
    for (const line of lines.filter((l) => l.message === 'drain report')) {
      expect(line.mailboxId).toBe((line.report as DrainReport).mailboxId);
    }

    // Each run published its own metrics: one aggregate blob per run, naming its mailbox, with its count.
    const aggregate = blobsWithDimensions(emfBlobs(invocation.output), ['service']);
    expect(aggregate).toHaveLength(reports.length);
    for (const report of reports) {
      const blob = aggregate.find((b) => b.raw.runId === report.runId);
      expect(blob?.raw.mailboxId).toBe(report.mailboxId);
      expect(blob?.metrics.get('MessagesStored')).toBe(report.fetched);
    }
  }, 180_000);

  it('through the event source with batches of 10, as the construct configures it: fewer invocations than requests, every mailbox stored once, a mailbox in one invocation at a time', async () => {
    const loop: StageMailbox[] = [];
    for (const i of [1, 2, 3, 4, 5, 6]) loop.push(await stage.addMailbox(`loop-${i}`, [0, 1].map((k) => testMessage(k, `loop-${i}`, 700))));
    const loopConfig = await stage.writeMailboxFile('loop.json', loop);
    const queue = await stage.sqs.createFifoQueue('batch-loop');
    const drainers = await Promise.all(
      [1, 2].map((n) => LambdaInstance.start({ name: `drainer-loop-${n}`, handler: 'drainer', env: stage.env({ POPDRAIN_CONFIG_PATH: loopConfig, POPDRAIN_QUEUE_URL: queue.url }) })),
    );
    instances.push(...drainers);
    for (const m of loop) await send(queue, m, `${m.id}:first`);
    await send(queue, loop[0]!, `${loop[0]!.id}:second`);

    const done = await runEventSource({ sqs, queueUrl: queue.url, queueArn: queue.arn, instances: drainers, remainingMs: 15 * 60_000, batchSize: 10 });
    expect(done).toHaveLength(7);
    expect(done.filter((d) => d.failed)).toEqual([]);
    const invocations = new Map(done.map((d) => [d.invocation, d.batch!]));
    expect(invocations.size).toBeLessThan(done.length);
    for (const batch of invocations.keys()) expect(batch.ok, JSON.stringify(batch.error)).toBe(true);
    for (const m of loop) expect((await stage.storedObjects(m.id)).size, m.id).toBe(2);
    // The first mailbox's two requests: the first stored both messages, the second none.
    const reports = [...invocations.keys()].flatMap((inv) => drainReports(inv.output)).filter((r) => r.mailboxId === loop[0]!.id);
    expect(reports.map((r) => r.fetched).sort()).toEqual([0, 2]);
    expect(reports.map((r) => r.stopReason)).toEqual(['complete', 'complete']);
    // ... in one invocation, or in two that did not overlap.
    const [first, second] = done.filter((d) => d.record.attributes.MessageGroupId === loop[0]!.id);
    if (first!.invocation !== second!.invocation) {
      expect(first!.finishedAt <= second!.startedAt || second!.finishedAt <= first!.startedAt).toBe(true);
    }
    expect(await stage.sqs.depth(queue.url)).toEqual({ visible: 0, inFlight: 0 });
  }, 180_000);
  it('in a batch, a backlog run stops at POPDRAIN_BATCH_RUN_SECONDS and continues in a new request, so the batch does not hold its other mailboxes; alone, the continuation drains the rest', async () => {
    const big = await stage.addMailbox('cap-big', Array.from({ length: 300 }, (_, i) => testMessage(i, 'cap-big', 300)));
    const small = await stage.addMailbox('cap-small', [testMessage(0, 'cap-small', 300)]);
    const capConfig = await stage.writeMailboxFile('cap.json', [big, small]);
    const queue = await stage.sqs.createFifoQueue('batch-cap', { visibilityTimeoutSeconds: 300 });
    const drainer = await LambdaInstance.start({
      name: 'drainer-cap',
      handler: 'drainer',
      env: stage.env({ POPDRAIN_CONFIG_PATH: capConfig, POPDRAIN_QUEUE_URL: queue.url, POPDRAIN_BATCH_RUN_SECONDS: '1' }),
    });
    instances.push(drainer);
    await send(queue, big, 'cap-big:tick');
    await send(queue, small, 'cap-small:tick');
    const batch = (await stage.sqs.receiveAll(queue.url)).map((m) => sqsRecord(m, queue.arn));
    expect(batch).toHaveLength(2);
    const first = await drainer.invoke(sqsEvent(batch), { remainingMs: 15 * 60_000 });
    expect(first.ok, JSON.stringify(first.error)).toBe(true);
    expect((first.result as SQSBatchResponse).batchItemFailures).toEqual([]);
    const [bigRun] = drainReports(first.output).filter((r) => r.mailboxId === big.id);
    const [smallRun] = drainReports(first.output).filter((r) => r.mailboxId === small.id);
    expect(smallRun).toMatchObject({ stopReason: 'complete', fetched: 1 });
    // Capped: it stopped taking messages with most of the mailbox left, and asked for a continuation.
    expect(bigRun).toMatchObject({ stopReason: 'deadline' });
    // (On a loaded machine the 1 s cap can pass before the first message: fetched 0 is a cap too.)
    expect(bigRun!.fetched).toBeLessThan(300);
    expect(bigRun!.remaining).toBe(300 - bigRun!.fetched);
    const continuation = await stage.sqs.receiveAll(queue.url);
    expect(continuation).toHaveLength(1);
    expect(groupOf(continuation[0]!)).toBe(big.id);
    expect(JSON.parse(continuation[0]!.Body ?? '{}')).toMatchObject({ mailboxId: big.id, continuationOf: bigRun!.runId, depth: 1 });

    // Alone in its invocation, the run is not capped: the continuation drains the rest.
    const second = await drainer.invoke(sqsEvent(continuation.map((m) => sqsRecord(m, queue.arn))), { remainingMs: 15 * 60_000 });
    expect(second.ok, JSON.stringify(second.error)).toBe(true);
    const [rest] = drainReports(second.output).filter((r) => r.mailboxId === big.id);
    expect(rest).toMatchObject({ stopReason: 'complete', fetched: 300 - bigRun!.fetched, remaining: 0 });
    expect((await stage.storedObjects(big.id)).size).toBe(300);
  }, 180_000);
});
