// The scheduler and drainer Lambdas, unchanged, each in its own process as a Lambda instance
// (module scope runs once with the construct's environment), invoked with scheduler- and
// SQS-shaped events and a Lambda context, against Dovecot, s3rver, dynalite, local-aws-sqs
// (a FIFO queue with its DLQ per test) and the EventBridge / Secrets Manager endpoint. A small
// event-source loop (testkit/lambda/sqs-event-source.ts) stands in for Lambda's SQS trigger.
//
// What local-aws-sqs cannot show (see testkit/aws/sqs-standin.ts): deduplication after the
// first message was deleted (it dedups only while that message is still in the queue), the
// FIFO group lock (the event-source loop enforces it; the concurrency test relies on its
// absence), and ApproximateReceiveCount after ChangeMessageVisibility (it counts the change as
// a receive). The DLQ exists as the deployment's does, but no message is moved into it here:
// the first retry is a minute away.
//
// Every expectation here is about what happened (which requests were sent, what the ledger
// holds), never about how long something took: the chains of continuations stop on the
// deadline the test sets through the Lambda context, not on the machine's speed.
//
// The set-up (the stage, its mailboxes, the instances) is test/support/lambdas-world.ts.
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SQSBatchResponse } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import type { TickResult } from '../../lambdas/scheduler.js';
import { failureBackoffMs } from '../../lambdas/failure-backoff.js';
import { GET_SECRET_VALUE, PUT_SECRET_VALUE } from '../../testkit/aws/json-endpoint.js';
import { blobsWithDimensions, emfBlobs, logRecords } from '../../testkit/lambda/output.js';
import { startTokenServer } from '../../testkit/oauth2/token-server.js';
import { runEventSource, sqsEvent, sqsRecord, type EventSourceInvocation } from '../../testkit/lambda/sqs-event-source.js';
import type { SqsRequest } from '../../testkit/aws/sqs-standin.js';
import {
  drainerInstances,
  enqueue,
  enqueueWithMarker,
  expectDrainLogs,
  expectDrainMetrics,
  expectStoredOnce,
  instances,
  LONG_REMAINING_MS,
  mb,
  messages,
  reportOf,
  SCHEDULER_METRICS,
  schedulerInstance,
  setUpLambdaWorld,
  sqs,
  stage,
} from '../support/lambdas-world.js';

setUpLambdaWorld();

describe('scheduler', () => {
  it('fans out one message per due mailbox (group = mailbox, dedup = mailbox + tick), never a second while one is queued, skips a held lease, enqueues a repeated tick once; drainers drain them and free the mailboxes', async () => {
    const queue = await stage.sqs.createFifoQueue('tick');
    // Another run holds the lease of one mailbox.
    const lease = await stage.ledger.acquireLease(mb.held!.id, 'another-run', 10 * 60_000, Date.now());
    expect(lease).toBeDefined();
    const scheduler = await schedulerInstance(queue);

    const base = Date.UTC(2026, 0, 5, 10, 0, 0);
    const ticks = [0, 1, 2].map((k) => new Date(base + k * 5 * 60_000).toISOString());
    const results: TickResult[] = [];
    const sentByTick = new Map<string, Array<{ group: string; dedup: string; body: { mailboxId: string; tick: string } }>>();
    const batchesByTick = new Map<string, SqsRequest[]>();
    for (const tick of ticks) {
      const before = stage.sqs.requestsFor('SendMessageBatch', queue.url).length;
      const invocation = await scheduler.invoke({ time: tick, 'detail-type': 'Scheduled Event', source: 'aws.events' }, { remainingMs: 120_000 });
      expect(invocation.ok, JSON.stringify(invocation.error)).toBe(true);
      const result = invocation.result as TickResult;
      results.push(result);
      const batches = stage.sqs.requestsFor('SendMessageBatch', queue.url).slice(before);
      batchesByTick.set(tick, batches);
      const sent = batches
        .flatMap((r) => r.body.Entries as Array<{ MessageGroupId: string; MessageDeduplicationId: string; MessageBody: string }>)
        .map((e) => ({ group: e.MessageGroupId, dedup: e.MessageDeduplicationId, body: JSON.parse(e.MessageBody) as { mailboxId: string; tick: string; marker?: string } }));
      sentByTick.set(tick, sent);

      // One message per due mailbox; the group is the mailbox, the dedup id mailbox + tick, and
      // it holds the request marker the scheduler claimed (named by the tick).
      for (const s of sent) {
        expect(s.group).toBe(s.body.mailboxId);
        expect(s.body.tick).toBe(tick);
        expect(s.body.marker).toBe(tick);
        expect(s.dedup).toBe(`${s.body.mailboxId}:${tick}`);
        expect((await stage.ledger.getMailboxState(s.group)).requestMarker?.token).toBe(tick);
      }
      expect(new Set(sent.map((s) => s.group)).size).toBe(sent.length);
      expect(sent.map((s) => s.group)).not.toContain(mb.held!.id);
      // Nothing drains between these ticks: the 5-minute mailboxes enqueued on the first tick
      // are still queued on the next two, and are not enqueued again.
      const queued = tick === ticks[0] ? 0 : 3;
      expect(result).toMatchObject({ tick, busy: 1, queued, backingOff: 0, tripped: 0, enqueued: sent.length, due: sent.length + 1 + queued });

      // The scheduler's metrics: aggregates with the `service` dimension only.
      const blobs = emfBlobs(invocation.output);
      expect(blobs).toHaveLength(1);
      expect(blobs[0]!.dimensions).toEqual(['service']);
      expect([...blobs[0]!.metrics.keys()].sort()).toEqual([...SCHEDULER_METRICS].sort());
      expect(blobs[0]!.metrics.get('BusyMailboxes')).toBe(1);
      expect(blobs[0]!.metrics.get('MailboxesEnqueued')).toBe(sent.length);
      expect(blobs[0]!.metrics.get('QueuedMailboxes')).toBe(queued);
      // The tick's log line carries the Lambda context.
      const tickLine = logRecords(invocation.output).find((r) => r.message === 'tick');
      expect(tickLine?.function_request_id).toEqual(expect.any(String));
      expect(tickLine?.function_name).toBe('popdrain-scheduler');
    }

    // The first tick enqueues the 5-minute mailboxes, the later ones do not (still queued);
    // each 15-minute mailbox is due on exactly one of three consecutive 5-minute ticks; the
    // held one on none.
    const enqueuedIds = (tick: string) => sentByTick.get(tick)!.map((s) => s.group).sort();
    const every5 = ['every5-1', 'every5-2', 'every5-3'].map((k) => mb[k]!.id);
    const every15 = ['every15-1', 'every15-2', 'every15-3'].map((k) => mb[k]!.id);
    expect(enqueuedIds(ticks[0]!).filter((id) => every5.includes(id))).toEqual([...every5].sort());
    for (const tick of ticks.slice(1)) expect(enqueuedIds(tick).filter((id) => every5.includes(id))).toEqual([]);
    for (const id of every15) expect(ticks.filter((t) => enqueuedIds(t).includes(id))).toHaveLength(1);
    const total = ticks.reduce((n, t) => n + sentByTick.get(t)!.length, 0);
    expect(total).toBe(3 + 3);
    expect(await stage.sqs.depth(queue.url)).toEqual({ visible: total, inFlight: 0 });

    // The same tick again (an EventBridge retry, delivered 90 s into the tick): the same
    // messages are sent and SQS deduplicates them. (local-aws-sqs deduplicates only while
    // the first messages are still in the queue, as they are here.)
    const before = stage.sqs.requestsFor('SendMessageBatch', queue.url).length;
    const repeat = await scheduler.invoke({ time: new Date(base + 90_000).toISOString() }, { remainingMs: 120_000 });
    expect(repeat.ok).toBe(true);
    const messageIds = (batches: SqsRequest[]) => batches.flatMap((r) => (r.response?.Successful as Array<{ MessageId: string }>).map((e) => e.MessageId));
    const firstIds = new Set(messageIds(batchesByTick.get(ticks[0]!)!));
    const repeatIds = messageIds(stage.sqs.requestsFor('SendMessageBatch', queue.url).slice(before));
    expect((repeat.result as TickResult).tick).toBe(ticks[0]);
    expect(repeatIds.length).toBe(sentByTick.get(ticks[0]!)!.length);
    expect(repeatIds.every((id) => firstIds.has(id))).toBe(true);
    expect(await stage.sqs.depth(queue.url)).toEqual({ visible: total, inFlight: 0 });

    // Drainers drain what was enqueued: each message once, every mailbox stored once.
    const drainers = await drainerInstances(queue, 2);
    const done = await runEventSource({ sqs, queueUrl: queue.url, queueArn: queue.arn, instances: drainers, remainingMs: LONG_REMAINING_MS });
    expect(done).toHaveLength(total);
    expect(done.filter((d) => d.failed)).toEqual([]);
    for (const d of done) {
      expect(d.record.attributes.MessageGroupId).toBe((JSON.parse(d.record.body) as { mailboxId: string }).mailboxId);
      expect((d.invocation.result as SQSBatchResponse).batchItemFailures).toEqual([]);
      const report = reportOf(d.invocation);
      expect(report.stopReason).toBe('complete');
      expectDrainMetrics(d.invocation.output, report);
      expectDrainLogs(d.invocation.output, report.mailboxId);
    }
    expect(await stage.sqs.depth(queue.url)).toEqual({ visible: 0, inFlight: 0 });
    for (const id of [...every5, ...every15]) {
      const runs = done.filter((d) => d.record.attributes.MessageGroupId === id).map((d) => reportOf(d.invocation));
      // The first run stores the three messages; later ticks find them all known.
      expect(runs.map((r) => r.fetched)).toEqual([3, ...runs.slice(1).map(() => 0)]);
    }
    for (const k of [...['every5-1', 'every5-2', 'every5-3'], ...['every15-1', 'every15-2', 'every15-3']]) await expectStoredOnce(mb[k]!);
    // The drains released the markers: the next tick enqueues the 5-minute mailboxes again.
    for (const id of [...every5, ...every15]) expect((await stage.ledger.getMailboxState(id)).requestMarker).toBeUndefined();
    const next = await scheduler.invoke({ time: new Date(base + 3 * 5 * 60_000).toISOString() }, { remainingMs: 120_000 });
    expect(next.ok, JSON.stringify(next.error)).toBe(true);
    expect(next.result).toMatchObject({ queued: 0, busy: 1 });
    expect((next.result as TickResult).enqueued).toBeGreaterThanOrEqual(3);
    expect((await stage.storedObjects(mb.held!.id)).size).toBe(0);
    // The logins came from Secrets Manager.
    const secretIds = new Set(stage.aws.requestsFor(GET_SECRET_VALUE).map((r) => r.body.SecretId));
    for (const id of [...every5, ...every15]) expect(secretIds).toContain(`popdrain/${id.slice('mbx-'.length)}`);
    await stage.ledger.releaseLease(lease!);
  }, 120_000);

  it('skips a mailbox whose UIDL-reset guard tripped, but enqueues one whose reset an operator accepted', async () => {
    const queue = await stage.sqs.createFifoQueue('uidl-reset');
    const tripped = await stage.addMailbox('uidl-tripped', []);
    const accepted = await stage.addMailbox('uidl-accepted', []);
    const config = await stage.writeMailboxFile('uidl-reset.json', [tripped, accepted]);
    // Both runs stopped at the guard; the operator accepted one reset (README: set
    // `acceptUidlReset` on the state item). Only a drain run clears the trip.
    const trippedAt = Date.now() - 60 * 60_000;
    await stage.ledger.updateMailboxState(tripped.id, { uidlResetTrippedAt: trippedAt });
    await stage.ledger.updateMailboxState(accepted.id, { uidlResetTrippedAt: trippedAt, acceptUidlReset: true });
    const scheduler = await schedulerInstance(queue, config);

    const tick = new Date(Date.UTC(2026, 0, 6, 10, 0, 0)).toISOString();
    const invocation = await scheduler.invoke({ time: tick, 'detail-type': 'Scheduled Event', source: 'aws.events' }, { remainingMs: 120_000 });
    expect(invocation.ok, JSON.stringify(invocation.error)).toBe(true);
    const sent = stage.sqs
      .requestsFor('SendMessageBatch', queue.url)
      .flatMap((r) => r.body.Entries as Array<{ MessageGroupId: string; MessageBody: string }>);
    expect(sent.map((e) => e.MessageGroupId)).toEqual([accepted.id]);
    expect(JSON.parse(sent[0]!.MessageBody)).toEqual({ mailboxId: accepted.id, tick, marker: tick });
    expect(invocation.result).toMatchObject({ tick, due: 2, enqueued: 1, busy: 0, queued: 0, backingOff: 0, tripped: 1 });
    expect(emfBlobs(invocation.output)[0]!.metrics.get('UidlResetTripped')).toBe(1);
    const warnings = logRecords(invocation.output).filter((r) => r.message.startsWith('UIDL-reset guard tripped'));
    expect(warnings.map((r) => r.mailboxId)).toEqual([tripped.id]);
    expect(await stage.sqs.depth(queue.url)).toEqual({ visible: 1, inFlight: 0 });
  }, 120_000);
});

describe('drainer', () => {
  it('drains a backlog larger than one invocation in continuations, storing every message once', async () => {
    const queue = await stage.sqs.createFifoQueue('backlog');
    // Each run may fetch 100 messages (limits.maxMessagesPerRun): 400 need four runs, whatever
    // the machine's speed. (A chain stopped by the deadline is the depth-cap test's.)
    const PER_RUN = 100;
    const config = await stage.writeMailboxFile('backlog.json', [mb.backlog!]);
    const file = JSON.parse(await readFile(config, 'utf8')) as { mailboxes: Array<Record<string, unknown>> };
    file.mailboxes[0]!.limits = { maxMessagesPerRun: PER_RUN };
    await writeFile(config, JSON.stringify(file));
    const [drainer] = await drainerInstances(queue, 1, { POPDRAIN_CONFIG_PATH: config });
    await enqueue(queue, mb.backlog!, `${mb.backlog!.id}:first`);
    const done = await runEventSource({
      sqs,
      queueUrl: queue.url,
      queueArn: queue.arn,
      instances: [drainer!],
      remainingMs: LONG_REMAINING_MS,
      maxInvocations: 20,
    });
    expect(done.filter((d) => d.failed)).toEqual([]);
    const reports = done.map((d) => reportOf(d.invocation));
    expect(reports).toHaveLength(mb.backlog!.messages.length / PER_RUN);
    // Every run but the last stopped at its deadline with more left and enqueued a continuation
    // naming it; the last completed.
    const continuations = stage.sqs.requestsFor('SendMessage', queue.url).filter((r) => String(r.body.MessageBody).includes('continuationOf'));
    expect(continuations).toHaveLength(reports.length - 1);
    reports.forEach((report, i) => {
      const d = done[i]!;
      expect(report.runId).toBe(`${d.invocation.awsRequestId}:${d.record.messageId}`);
      if (i < reports.length - 1) {
        expect(report).toMatchObject({ stopReason: 'max-messages', moreRemaining: true, fetched: PER_RUN });
        const next = JSON.parse(done[i + 1]!.record.body) as { mailboxId: string; continuationOf?: string; depth?: number };
        expect(next).toMatchObject({ mailboxId: mb.backlog!.id, continuationOf: report.runId, depth: i + 1 });
        const sent = continuations[i]!.body;
        expect(sent.MessageGroupId).toBe(mb.backlog!.id);
        expect(typeof sent.MessageDeduplicationId).toBe('string');
        expect(logRecords(d.invocation.output).map((r) => r.message)).toContain('more remains: continuation enqueued');
      } else {
        expect(report).toMatchObject({ stopReason: 'complete', moreRemaining: false, remaining: 0 });
      }
      expectDrainMetrics(d.invocation.output, report);
      expectDrainLogs(d.invocation.output, mb.backlog!.id);
    });
    expect(reports.reduce((n, r) => n + r.fetched, 0)).toBe(mb.backlog!.messages.length);
    expect(await stage.sqs.depth(queue.url)).toEqual({ visible: 0, inFlight: 0 });
    await expectStoredOnce(mb.backlog!);
  }, 120_000);

  it('never drains one mailbox in two invocations at once: the second reports busy, counted in metrics, not a failure', async () => {
    const queue = await stage.sqs.createFifoQueue('twin');
    const drainers = await drainerInstances(queue, 2);
    await enqueue(queue, mb.twin!, `${mb.twin!.id}:a`);
    await enqueue(queue, mb.twin!, `${mb.twin!.id}:b`);
    // SQS would hold the second message back while the first is in flight (same group);
    // local-aws-sqs hands out both, which is what a stale redelivery or a second trigger
    // would look like. The lease is what keeps the two runs apart.
    const received = await stage.sqs.receiveAll(queue.url);
    expect(received).toHaveLength(2);
    const records = received.map((m) => sqsRecord(m, queue.arn));
    const [a, b] = await Promise.all(records.map((r, i) => drainers[i]!.invoke(sqsEvent([r]), { remainingMs: LONG_REMAINING_MS })));
    const invocations = [a!, b!];
    for (const inv of invocations) {
      expect(inv.ok).toBe(true);
      expect((inv.result as SQSBatchResponse).batchItemFailures).toEqual([]);
    }
    const reports = invocations.map(reportOf);
    const busy = reports.findIndex((r) => r.stopReason === 'busy');
    expect(busy).toBeGreaterThanOrEqual(0);
    const drained = 1 - busy;
    expect(reports[busy]).toMatchObject({ retryLater: true, fetched: 0, serverMessages: 0 });
    expect(reports[drained]).toMatchObject({ stopReason: 'complete', fetched: mb.twin!.messages.length });
    expect(logRecords(invocations[busy]!.output).map((r) => r.message)).toContain('mailbox is busy: another run holds its lease');
    const busyBlobs = expectDrainMetrics(invocations[busy]!.output, reports[busy]!);
    const busyAggregate = blobsWithDimensions(busyBlobs, ['service'])[0]!;
    expect(busyAggregate.metrics.get('BusyMailboxes')).toBe(1);
    expect(busyAggregate.metrics.get('RunFailures')).toBe(0);
    expect(blobsWithDimensions(busyBlobs, ['service', 'errorCode'])).toEqual([]);
    const drainedAggregate = blobsWithDimensions(expectDrainMetrics(invocations[drained]!.output, reports[drained]!), ['service'])[0]!;
    expect(drainedAggregate.metrics.get('BusyMailboxes')).toBe(0);
    for (const inv of invocations) expectDrainLogs(inv.output, mb.twin!.id);
    await expectStoredOnce(mb.twin!);
  }, 120_000);

  it('ends the request of a refused login and backs the mailbox off (nextAttemptAt, growing), which the scheduler honours; the marker is released', async () => {
    const queue = await stage.sqs.createFifoQueue('badpw');
    const [drainer] = await drainerInstances(queue, 1);
    await enqueueWithMarker(queue, mb.badpw!, 'badpw-tick-1');
    const before = Date.now();
    const done: EventSourceInvocation[] = await runEventSource({ sqs, queueUrl: queue.url, queueArn: queue.arn, instances: [drainer!], remainingMs: LONG_REMAINING_MS });
    const after = Date.now();
    expect(done).toHaveLength(1);
    const first = done[0]!;
    // Not a batch item failure: SQS does not retry it, the message is gone, nothing hides it.
    expect(first.failed).toBe(false);
    expect(first.invocation.result).toEqual({ batchItemFailures: [] });
    const report = reportOf(first.invocation);
    expect(report).toMatchObject({ stopReason: 'auth-failed', ok: false, fetched: 0 });
    expect(report.error?.code).toBe('AUTH_FAILED');
    expect(stage.sqs.requestsFor('ChangeMessageVisibility', queue.url)).toEqual([]);
    expect(await stage.sqs.depth(queue.url)).toEqual({ visible: 0, inFlight: 0 });

    // The backoff is in the mailbox state; the marker is gone.
    const state = await stage.ledger.getMailboxState(mb.badpw!.id);
    expect(state.requestMarker).toBeUndefined();
    expect(state.failureStreak).toBe(1);
    expect(state.lastFailure).toMatchObject({ stopReason: 'auth-failed', code: 'AUTH_FAILED' });
    expect(state.nextAttemptAt).toBeGreaterThanOrEqual(before + failureBackoffMs(1));
    expect(state.nextAttemptAt).toBeLessThanOrEqual(after + failureBackoffMs(1));

    // The metrics of a failed run: RunFailures and AuthFailures, and Failures by errorCode.
    const blobs = expectDrainMetrics(first.invocation.output, report);
    const aggregate = blobsWithDimensions(blobs, ['service'])[0]!;
    expect(aggregate.metrics.get('RunFailures')).toBe(1);
    expect(aggregate.metrics.get('AuthFailures')).toBe(1);
    expect(aggregate.metrics.get('BusyMailboxes')).toBe(0);
    const byCode = blobsWithDimensions(blobs, ['service', 'errorCode']);
    expect(byCode.map((b) => [b.dimensionValues.errorCode, b.metrics.get('Failures')])).toEqual([['AUTH_FAILED', 1]]);
    expectDrainLogs(first.invocation.output, mb.badpw!.id);
    const logged = logRecords(first.invocation.output).find((r) => r.message === 'drain failed in a way retrying soon cannot fix; the mailbox backs off');
    expect(logged).toMatchObject({ level: 'ERROR', failureStreak: 1, stopReason: 'auth-failed' });

    // A second refused run (an operator's "drain now", without a marker) doubles the wait.
    await enqueue(queue, mb.badpw!, `${mb.badpw!.id}:2`);
    const again = await runEventSource({ sqs, queueUrl: queue.url, queueArn: queue.arn, instances: [drainer!], remainingMs: LONG_REMAINING_MS });
    expect(again.map((d) => d.failed)).toEqual([false]);
    const second = await stage.ledger.getMailboxState(mb.badpw!.id);
    expect(second.failureStreak).toBe(2);
    expect(second.nextAttemptAt! - second.lastFailure!.at).toBe(failureBackoffMs(2));

    // The scheduler skips it while it backs off.
    const config = await stage.writeMailboxFile('badpw.json', [mb.badpw!]);
    const scheduler = await schedulerInstance(queue, config);
    const tick = await scheduler.invoke({ time: new Date().toISOString() }, { remainingMs: 120_000 });
    expect(tick.ok, JSON.stringify(tick.error)).toBe(true);
    expect(tick.result).toMatchObject({ due: 1, enqueued: 0, backingOff: 1 });
    expect(emfBlobs(tick.output)[0]!.metrics.get('BackingOffMailboxes')).toBe(1);
    expect((await stage.storedObjects(mb.badpw!.id)).size).toBe(0);
  }, 120_000);

  it('lets SQS redrive an infrastructure error (Secrets Manager throttling) with a growing visibility timeout; the marker stays', async () => {
    // The SDK's own retries of the throttled call take seconds: the queue's visibility timeout
    // outlasts them, so the drainer's receipt handle is still valid when it sets the delay.
    const queue = await stage.sqs.createFifoQueue('throttled', { visibilityTimeoutSeconds: 30 });
    const [drainer] = await drainerInstances(queue, 1);
    // Every GetSecretValue of this run is throttled (the SDK's own retries included).
    stage.aws.failNext(20, { kind: 'error', type: 'ThrottlingException', message: 'Rate exceeded' }, GET_SECRET_VALUE);
    await enqueueWithMarker(queue, mb.throttled!, 'throttled-tick-1');
    const done = await runEventSource({ sqs, queueUrl: queue.url, queueArn: queue.arn, instances: [drainer!], remainingMs: LONG_REMAINING_MS });
    stage.aws.clearFaults();
    expect(done).toHaveLength(1);
    const first = done[0]!;
    expect(first.failed).toBe(true);
    expect(first.invocation.result).toEqual({ batchItemFailures: [{ itemIdentifier: first.record.messageId }] });
    const report = reportOf(first.invocation);
    expect(report).toMatchObject({ stopReason: 'credentials-failed', ok: false });
    expect(report.error).toMatchObject({ code: 'CREDENTIALS_FAILED', retryable: true });
    const changes = () => stage.sqs.requestsFor('ChangeMessageVisibility', queue.url);
    expect(changes()).toHaveLength(1);
    expect(changes()[0]!.body).toMatchObject({ ReceiptHandle: first.record.receiptHandle, VisibilityTimeout: 60 });
    expect(changes()[0]!.status).toBe(200);
    expect(await stage.sqs.depth(queue.url)).toEqual({ visible: 0, inFlight: 1 });
    expect(logRecords(first.invocation.output).find((r) => r.message === 'drain failed; will retry with backoff')?.level).toBe('ERROR');
    // No backoff recorded (SQS retries), and the request is still outstanding.
    const state = await stage.ledger.getMailboxState(mb.throttled!.id);
    expect(state.failureStreak).toBeUndefined();
    expect(state.nextAttemptAt).toBeUndefined();
    expect(state.requestMarker?.token).toBe('throttled-tick-1');

    // Later deliveries wait longer: 4 min on the third, at most 15 min.
    for (const [count, seconds] of [
      ['3', 240],
      ['7', 900],
    ] as const) {
      stage.aws.failNext(20, { kind: 'error', type: 'ThrottlingException', message: 'Rate exceeded' }, GET_SECRET_VALUE);
      await enqueue(queue, mb.throttled!, `${mb.throttled!.id}:${count}`, { marker: 'throttled-tick-1' });
      const [message] = await stage.sqs.receiveAll(queue.url);
      const record = sqsRecord(message!, queue.arn);
      record.attributes.ApproximateReceiveCount = count;
      const inv = await drainer!.invoke(sqsEvent([record]), { remainingMs: LONG_REMAINING_MS });
      stage.aws.clearFaults();
      expect(inv.result).toEqual({ batchItemFailures: [{ itemIdentifier: record.messageId }] });
      expect(changes().at(-1)!.body).toMatchObject({ ReceiptHandle: record.receiptHandle, VisibilityTimeout: seconds });
    }
    expect((await stage.storedObjects(mb.throttled!.id)).size).toBe(0);
  }, 120_000);

  it('ends a chain of continuations at its depth cap with a clear state (chainCappedAt), releasing the marker', async () => {
    const queue = await stage.sqs.createFifoQueue('runaway');
    // Every invocation starts past its deadline (remaining time = the margin): each run stops
    // at once with everything left, as a chain that makes no progress would, run after run.
    const MARGIN_MS = 10_000;
    const [drainer] = await drainerInstances(queue, 1, { POPDRAIN_DEADLINE_MARGIN_MS: String(MARGIN_MS), POPDRAIN_MAX_CONTINUATIONS: '2' });
    await enqueueWithMarker(queue, mb.runaway!, 'runaway-tick-1');
    const done = await runEventSource({ sqs, queueUrl: queue.url, queueArn: queue.arn, instances: [drainer!], remainingMs: MARGIN_MS, maxInvocations: 10 });
    expect(done.filter((d) => d.failed)).toEqual([]);
    const reports = done.map((d) => reportOf(d.invocation));
    // The request and two continuations; the third run ends the chain.
    expect(reports).toHaveLength(3);
    for (const r of reports) expect(r).toMatchObject({ stopReason: 'deadline', moreRemaining: true });
    expect(done.map((d) => (JSON.parse(d.record.body) as { depth?: number }).depth ?? 0)).toEqual([0, 1, 2]);
    expect(done.map((d) => (JSON.parse(d.record.body) as { marker?: string }).marker)).toEqual(['runaway-tick-1', 'runaway-tick-1', 'runaway-tick-1']);
    const last = done[2]!.invocation;
    expect(logRecords(last.output).find((r) => r.message.startsWith('continuation chain reached its cap'))).toMatchObject({ level: 'WARN', depth: 2 });
    expect(blobsWithDimensions(emfBlobs(last.output), ['service'])[0]!.metrics.get('ContinuationChainsCapped')).toBe(1);
    expect(await stage.sqs.depth(queue.url)).toEqual({ visible: 0, inFlight: 0 });
    const state = await stage.ledger.getMailboxState(mb.runaway!.id);
    expect(state.requestMarker).toBeUndefined();
    expect(state.chainCappedAt).toBeGreaterThan(0);
  }, 120_000);
});

describe('drainer with an OAuth2 mailbox', () => {
  it('warns (never quoting a token) when a rotated refresh token cannot be saved to Secrets Manager; the run still drains', async () => {
    const client = { clientId: 'lambda-oauth-client', clientSecret: `lambda-client-secret-${randomBytes(6).toString('hex')}` };
    const refreshToken = `lambda-refresh-${randomBytes(12).toString('hex')}`;
    const tokens = await startTokenServer({ clients: [client], refreshTokens: [refreshToken], rotate: true });
    const mailbox = await stage.addMailbox('oauth-rotating', messages('oauth', 2));
    // The token endpoint, behind a pass-through that tells Dovecot's introspection about each
    // access token issued (as a real identity provider would).
    const idp = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const headers: Record<string, string> = { 'content-type': String(req.headers['content-type'] ?? '') };
        if (req.headers.authorization !== undefined) headers.authorization = req.headers.authorization;
        fetch(tokens.url, { method: 'POST', headers, body: Buffer.concat(chunks) })
          .then(async (upstream) => {
            const text = await upstream.text();
            const issued = (JSON.parse(text) as { access_token?: string }).access_token;
            if (issued !== undefined) stage.dovecot.addOAuthToken(mailbox.user, issued);
            res.writeHead(upstream.status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
            res.end(text);
          })
          .catch(() => res.destroy());
      });
    });
    await new Promise<void>((resolve) => idp.listen(0, '127.0.0.1', () => resolve()));
    try {
      const tokenEndpoint = `http://127.0.0.1:${(idp.address() as AddressInfo).port}/tenant/oauth2/v2.0/token`;
      const secret = JSON.stringify({ oauth2: { tokenEndpoint, ...client, refreshToken } });
      stage.aws.putSecret(mailbox.secretId, secret);
      // The deployment may not write the secret (a missing grant, a resource policy).
      stage.aws.failNext(1, { kind: 'error', type: 'AccessDeniedException', message: 'not authorized to PutSecretValue' }, PUT_SECRET_VALUE);
      const config = await stage.writeMailboxFile('oauth.json', [mailbox]);
      const queue = await stage.sqs.createFifoQueue('oauth');
      const [drainer] = await drainerInstances(queue, 1, { POPDRAIN_CONFIG_PATH: config });
      await enqueue(queue, mailbox, `${mailbox.id}:1`);
      const done = await runEventSource({ sqs, queueUrl: queue.url, queueArn: queue.arn, instances: [drainer!], remainingMs: LONG_REMAINING_MS });
      expect(done).toHaveLength(1);
      const { invocation } = done[0]!;
      expect(invocation.result).toEqual({ batchItemFailures: [] });
      expect(reportOf(invocation)).toMatchObject({ stopReason: 'complete', fetched: 2 });

      // The token rotated, the write-back was refused: the secret still holds the old token.
      expect(tokens.issued).toHaveLength(1);
      expect(stage.aws.requestsFor(PUT_SECRET_VALUE).filter((r) => r.body.SecretId === mailbox.secretId)).toHaveLength(1);
      expect(stage.aws.secretString(mailbox.secretId)).toBe(secret);
      const warning = logRecords(invocation.output).find((r) => r.message.startsWith('could not save a rotated OAuth2 refresh token'));
      expect(warning, JSON.stringify(logRecords(invocation.output).map((r) => r.message))).toMatchObject({
        level: 'WARN',
        mailboxId: mailbox.id,
        secretId: mailbox.secretId,
      });
      expect(String(warning!.error)).toContain('AccessDeniedException');
      expectDrainLogs(invocation.output, mailbox.id);
      // No token or client secret in anything the instance printed.
      const secrets = [refreshToken, ...tokens.validRefreshTokens(), ...tokens.issued, client.clientSecret];
      expect(secrets.length).toBeGreaterThanOrEqual(4);
      for (const line of drainer!.allOutput) for (const s of secrets) expect(line.text.includes(s), line.text.slice(0, 200)).toBe(false);
    } finally {
      await new Promise<void>((resolve) => {
        idp.closeAllConnections();
        idp.close(() => resolve());
      });
      await tokens.close();
    }
  }, 120_000);
});

describe('output of every instance', () => {
  it('never holds a password, and stdout is JSON only (log records and EMF)', () => {
    expect(instances.length).toBeGreaterThan(0);
    const secrets = stage.secrets();
    expect(secrets.length).toBeGreaterThan(10);
    let lines = 0;
    for (const instance of instances) {
      for (const line of instance.allOutput) {
        lines += 1;
        for (const secret of secrets) expect(line.text.includes(secret), `${instance.name}: ${line.text.slice(0, 200)}`).toBe(false);
        if (line.stream === 'stdout') expect(line.json, `${instance.name}: ${line.text.slice(0, 200)}`).toBeDefined();
      }
    }
    expect(lines).toBeGreaterThan(100);
    // The scan saw the drains' records: every drained mailbox (and the failing one) is named.
    const text = instances.flatMap((i) => i.allOutput.map((l) => l.text)).join('\n');
    for (const m of [mb['every5-1']!, mb.backlog!, mb.twin!, mb.badpw!, mb.throttled!, mb.runaway!]) expect(text).toContain(m.id);
  });
});
