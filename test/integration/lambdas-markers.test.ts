// The request marker when drainers fall behind: the scheduler and drainer Lambdas, each in its
// own process, against Dovecot, s3rver, dynalite, local-aws-sqs and the Secrets Manager
// endpoint. Each scheduler instance reads a clock set hours or days ahead (the fleet bench's
// scaled clock at speed 1, installed before the handler loads), so "a request left waiting past
// the old 90-minute marker" is a real tick of the real handler, not an edited ledger item.
// Logins are counted from the drainer's own records: every run that logs in (or tries to)
// writes one "drain report" line.
import { fileURLToPath } from 'node:url';
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TickResult } from '../../lambdas/scheduler.js';
import { GET_SECRET_VALUE } from '../../testkit/aws/json-endpoint.js';
import { scaledClockEnv } from '../../testkit/clock/scaled-clock.js';
import { testMessage } from '../../testkit/fixtures/drain-fixtures.js';
import { LambdaInstance, type InvocationResult } from '../../testkit/lambda/instance.js';
import { logRecords } from '../../testkit/lambda/output.js';
import { sqsEvent, sqsRecord } from '../../testkit/lambda/sqs-event-source.js';
import { startLambdaStage, type LambdaStage, type StageMailbox } from '../../testkit/lambda/stage.js';

const HOUR_MS = 60 * 60_000;
const DAY_MS = 24 * HOUR_MS;
const OLD_MARKER_TTL_MS = 90 * 60_000;
const LONG_REMAINING_MS = 15 * 60_000;
const CLOCK_HOST = fileURLToPath(new URL('../../bench/fleet-lambda-host.ts', import.meta.url));

let stage: LambdaStage;
let sqs: SQSClient;
const instances: LambdaInstance[] = [];
const mb: Record<string, StageMailbox> = {};
let config: string;
/** The schedulers see only the mailbox of the first test. */
let schedulerConfig: string;

beforeAll(async () => {
  stage = await startLambdaStage();
  sqs = stage.sqs.client();
  for (const name of ['behind', 'redriven']) mb[name] = await stage.addMailbox(name, [testMessage(0, name, 300), testMessage(1, name, 300)]);
  config = await stage.writeMailboxFile('mailboxes.json', Object.values(mb));
  schedulerConfig = await stage.writeMailboxFile('behind.json', [mb.behind!]);
}, 120_000);

afterAll(async () => {
  await Promise.all(instances.map((i) => i.stop()));
  await stage?.stop();
});

/** An instance whose clock reads `aheadMs` later than the wall clock. */
async function start(handler: 'scheduler' | 'drainer', queueUrl: string, aheadMs = 0): Promise<LambdaInstance> {
  const wall = Date.now();
  const instance = await LambdaInstance.start({
    name: `${handler}-ahead-${aheadMs}`,
    handler,
    env: stage.env({
      POPDRAIN_CONFIG_PATH: handler === 'scheduler' ? schedulerConfig : config,
      POPDRAIN_QUEUE_URL: queueUrl,
      POPDRAIN_TICK_MINUTES: '5',
      ...scaledClockEnv({ epochMs: wall + aheadMs, originMs: wall, speed: 1 }),
    }),
    host: { command: process.execPath, args: ['--import', 'tsx', CLOCK_HOST] },
  });
  instances.push(instance);
  return instance;
}

const tickAt = (ms: number) => ({ time: new Date(ms).toISOString(), 'detail-type': 'Scheduled Event', source: 'aws.events' });
const reports = (inv: InvocationResult) => logRecords(inv.output).filter((r) => r.message === 'drain report');
const staleLines = (inv: InvocationResult) => logRecords(inv.output).filter((r) => typeof r.message === 'string' && r.message.startsWith('stale drain request'));

describe('request markers when drainers fall behind', () => {
  it('a waiting request is not duplicated by later ticks; a duplicate enqueued after its marker ran out is ended without a login', async () => {
    const queue = await stage.sqs.createFifoQueue('behind');
    const id = mb.behind!.id;
    const now = Date.now();
    const first = await start('scheduler', queue.url);
    const t0 = await first.invoke(tickAt(now), { remainingMs: 120_000 });
    expect(t0.ok, JSON.stringify(t0.error)).toBe(true);
    expect((t0.result as TickResult).enqueued).toBe(1);
    const marker = (await stage.ledger.getMailboxState(id)).requestMarker!;
    // Sent: the marker holds for the queue's retention plus a visibility timeout, not 15 minutes.
    expect(marker.expiresAt).toBeGreaterThan(now + 4 * DAY_MS);

    // Nobody drains. Ticks two hours and three days later (past the old 90-minute marker) enqueue nothing.
    for (const ahead of [OLD_MARKER_TTL_MS + 30 * 60_000, 3 * DAY_MS]) {
      const later = await start('scheduler', queue.url, ahead);
      const t = await later.invoke(tickAt(now + ahead), { remainingMs: 120_000 });
      expect(t.ok, JSON.stringify(t.error)).toBe(true);
      expect(t.result as TickResult).toMatchObject({ enqueued: 0, queued: 1 });
    }
    expect(await stage.sqs.depth(queue.url)).toEqual({ visible: 1, inFlight: 0 });

    // Past the retention the marker is gone and a new tick enqueues again: the old request (had
    // it survived) is now stale. Its mailbox's queue holds both.
    const muchLater = 4 * DAY_MS + 3 * HOUR_MS;
    const late = await start('scheduler', queue.url, muchLater);
    const t4 = await late.invoke(tickAt(now + muchLater), { remainingMs: 120_000 });
    expect(t4.result as TickResult).toMatchObject({ enqueued: 1, queued: 0 });
    const newToken = (await stage.ledger.getMailboxState(id)).requestMarker!.token;
    expect(newToken).not.toBe(marker.token);

    // A drainer on the wall clock takes the requests in order: the old one is ended without a
    // login (no drain report, the newer marker untouched), the newer one drains the mailbox.
    const drainer = await start('drainer', queue.url);
    const messages = await stage.sqs.receiveAll(queue.url);
    expect(messages.map((m) => (JSON.parse(m.Body!) as { marker: string }).marker)).toEqual([marker.token, newToken]);
    const stale = await drainer.invoke(sqsEvent([sqsRecord(messages[0]!, queue.arn)]), { remainingMs: LONG_REMAINING_MS });
    expect(stale.result).toEqual({ batchItemFailures: [] });
    expect(reports(stale)).toHaveLength(0);
    expect(staleLines(stale)).toHaveLength(1);
    expect(staleLines(stale)[0]).toMatchObject({ mailboxId: id, marker: marker.token, holder: newToken });
    expect((await stage.ledger.getMailboxState(id)).requestMarker?.token).toBe(newToken);
    expect((await stage.storedObjects(id)).size).toBe(0);

    const fresh = await drainer.invoke(sqsEvent([sqsRecord(messages[1]!, queue.arn)]), { remainingMs: LONG_REMAINING_MS });
    expect(fresh.result).toEqual({ batchItemFailures: [] });
    expect(reports(fresh)).toHaveLength(1);
    expect(staleLines(fresh)).toHaveLength(0);
    expect((await stage.storedObjects(id)).size).toBe(2);
    expect((await stage.ledger.getMailboxState(id)).requestMarker).toBeUndefined();
  }, 180_000);

  it('on the last allowed receive the marker is released first, so a request bound for the DLQ leaves its mailbox schedulable; redriven, it runs if nothing newer holds the mailbox, else it is stale', async () => {
    const queue = await stage.sqs.createFifoQueue('redriven', { visibilityTimeoutSeconds: 30 });
    const id = mb.redriven!.id;
    const drainer = await start('drainer', queue.url);
    const token = 'redriven-tick-1';
    const send = async (dedup: string, marker: string) => {
      await sqs.send(
        new SendMessageCommand({
          QueueUrl: queue.url,
          MessageGroupId: id,
          MessageDeduplicationId: dedup,
          MessageBody: JSON.stringify({ mailboxId: id, tick: new Date().toISOString(), marker }),
        }),
      );
      const [message] = await stage.sqs.receiveAll(queue.url);
      return sqsRecord(message!, queue.arn);
    };
    const run = async (record: ReturnType<typeof sqsRecord>, receiveCount: number) => {
      record.attributes.ApproximateReceiveCount = String(receiveCount);
      return drainer.invoke(sqsEvent([record]), { remainingMs: LONG_REMAINING_MS });
    };
    expect(await stage.ledger.claimRequestMarker(id, { token, expiresAt: Date.now() + DAY_MS }, Date.now())).toBe(true);

    // An infrastructure error before the last receive: SQS retries, the marker stays.
    stage.aws.failNext(20, { kind: 'error', type: 'ThrottlingException', message: 'Rate exceeded' }, GET_SECRET_VALUE);
    const fourth = await run(await send('r4', token), 4);
    stage.aws.clearFaults();
    expect((fourth.result as { batchItemFailures: unknown[] }).batchItemFailures).toHaveLength(1);
    expect((await stage.ledger.getMailboxState(id)).requestMarker?.token).toBe(token);

    // The same on the fifth (maxReceiveCount 5): the request is bound for the DLQ, the marker is gone.
    stage.aws.failNext(20, { kind: 'error', type: 'ThrottlingException', message: 'Rate exceeded' }, GET_SECRET_VALUE);
    const fifth = await run(await send('r5', token), 5);
    stage.aws.clearFaults();
    expect((fifth.result as { batchItemFailures: unknown[] }).batchItemFailures).toHaveLength(1);
    expect((await stage.ledger.getMailboxState(id)).requestMarker).toBeUndefined();

    // Redriven while nothing newer holds the mailbox: it runs and drains.
    const redriven = await run(await send('redrive-1', token), 1);
    expect(redriven.result).toEqual({ batchItemFailures: [] });
    expect(reports(redriven)).toHaveLength(1);
    expect((await stage.storedObjects(id)).size).toBe(2);

    // Redriven after a newer request claimed the mailbox: stale, no login, the newer marker kept.
    expect(await stage.ledger.claimRequestMarker(id, { token: 'redriven-tick-2', expiresAt: Date.now() + DAY_MS }, Date.now())).toBe(true);
    const again = await run(await send('redrive-2', token), 1);
    expect(again.result).toEqual({ batchItemFailures: [] });
    expect(reports(again)).toHaveLength(0);
    expect(staleLines(again)).toHaveLength(1);
    expect((await stage.ledger.getMailboxState(id)).requestMarker?.token).toBe('redriven-tick-2');
  }, 180_000);
});
