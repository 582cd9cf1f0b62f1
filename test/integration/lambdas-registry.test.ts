// The scheduler and drainer Lambdas with the mailboxes in the registry
// (POPDRAIN_MAILBOX_SOURCE=registry), each in its own process, against Dovecot, s3rver,
// dynalite, local-aws-sqs and the Secrets Manager endpoint: the scheduler seeds the registry
// from the mailbox file once per file content; adding, pausing and removing a mailbox is a
// registry write that the next tick honours without a redeploy; a paused mailbox's queued
// request ends without a login; removing keeps the ledger and the stored objects.
import { ReceiveMessageCommand, type Message, type SQSClient } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TickResult } from '../../lambdas/scheduler.js';
import { DynamoDbMailboxRegistry } from '../../lib/adapters/aws/dynamodb-registry.js';
import { testMessage } from '../../testkit/fixtures/drain-fixtures.js';
import { LambdaInstance } from '../../testkit/lambda/instance.js';
import { emfBlobs, logRecords } from '../../testkit/lambda/output.js';
import { startLambdaStage, type LambdaStage, type StageMailbox } from '../../testkit/lambda/stage.js';
import { sqsEvent, sqsRecord } from '../../testkit/lambda/sqs-event-source.js';

let stage: LambdaStage;
let sqs: SQSClient;
let registry: DynamoDbMailboxRegistry;
const instances: LambdaInstance[] = [];
const mb: Record<string, StageMailbox> = {};

const entryOf = (m: StageMailbox) => ({
  id: m.id,
  host: stage.dovecot.host,
  port: stage.dovecot.ports.pop3s,
  tls: 'implicit',
  tlsOptions: { caPem: stage.dovecot.pki.caCertPem, servername: 'localhost' },
  user: m.user,
  auth: { secret: m.secretId },
});

beforeAll(async () => {
  stage = await startLambdaStage();
  sqs = stage.sqs.client();
  for (const name of ['reg-a', 'reg-b', 'reg-c', 'reg-new']) mb[name] = await stage.addMailbox(name, [testMessage(0, name, 300), testMessage(1, name, 300)]);
  registry = new DynamoDbMailboxRegistry(stage.dynamo.client(), stage.table);
}, 120_000);

afterAll(async () => {
  await Promise.all(instances.map((i) => i.stop()));
  await stage?.stop();
});

async function start(handler: 'scheduler' | 'drainer', queueUrl: string, config: string): Promise<LambdaInstance> {
  const instance = await LambdaInstance.start({
    name: `${handler}-registry`,
    handler,
    env: stage.env({
      POPDRAIN_CONFIG_PATH: config,
      POPDRAIN_QUEUE_URL: queueUrl,
      POPDRAIN_TICK_MINUTES: '5',
      POPDRAIN_MAILBOX_SOURCE: 'registry',
      // No caching: each invocation sees the registry as the test left it.
      POPDRAIN_REGISTRY_CACHE_SECONDS: '0',
    }),
  });
  instances.push(instance);
  return instance;
}

async function drainQueue(queueUrl: string): Promise<Array<{ mailboxId: string; raw: Message }>> {
  const out: Array<{ mailboxId: string; raw: Message }> = [];
  for (;;) {
    const { Messages } = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, AttributeNames: ['All'], MessageSystemAttributeNames: ['All'] }));
    if (Messages === undefined || Messages.length === 0) return out;
    for (const m of Messages) out.push({ mailboxId: (JSON.parse(m.Body!) as { mailboxId: string }).mailboxId, raw: m });
  }
}

describe('mailboxes in the registry', () => {
  it('seeds from the file once, then adds, pauses, resumes and removes through registry writes only', async () => {
    const queue = await stage.sqs.createFifoQueue('registry');
    const config = await stage.writeMailboxFile('seed.json', [mb['reg-a']!, mb['reg-b']!, mb['reg-c']!]);
    const scheduler = await start('scheduler', queue.url, config);
    const tickAt = (n: number) => new Date(Date.UTC(2026, 0, 1, 0, 5 * n)).toISOString();

    // Tick 1: seeded from the file, all three enqueued.
    const t1 = await scheduler.invoke({ time: tickAt(1) }, { remainingMs: 120_000 });
    expect(t1.error).toBeUndefined();
    expect((t1.result as TickResult).enqueued).toBe(3);
    expect((await registry.list()).entries.map((e) => e.mailbox.id).sort()).toEqual(['mbx-reg-a', 'mbx-reg-b', 'mbx-reg-c']);
    expect(logRecords(t1.output).find((r) => r.message === 'registry seeded from the mailbox file')).toMatchObject({ written: 3 });
    const first = await drainQueue(queue.url);
    expect(first.map((r) => r.mailboxId).sort()).toEqual(['mbx-reg-a', 'mbx-reg-b', 'mbx-reg-c']);

    // A drainer run for one of them, then pause reg-b while its request is still unprocessed.
    const drainer = await start('drainer', queue.url, config);
    const a = first.find((r) => r.mailboxId === 'mbx-reg-a')!;
    const ran = await drainer.invoke(sqsEvent([sqsRecord(a.raw, queue.arn)]), { remainingMs: 15 * 60_000 });
    expect((ran.result as SQSBatchResponse).batchItemFailures).toEqual([]);
    expect((await stage.storedObjects('mbx-reg-a')).size).toBe(2);

    expect(await registry.setPaused('mbx-reg-b', true)).toBe(true);
    const b = first.find((r) => r.mailboxId === 'mbx-reg-b')!;
    const dropped = await drainer.invoke(sqsEvent([sqsRecord(b.raw, queue.arn)]), { remainingMs: 15 * 60_000 });
    expect((dropped.result as SQSBatchResponse).batchItemFailures).toEqual([]);
    expect(logRecords(dropped.output).some((r) => r.message === 'mailbox paused; dropping the request' && r.mailboxId === 'mbx-reg-b')).toBe(true);
    expect(logRecords(dropped.output).some((r) => r.message === 'drain report')).toBe(false);
    expect((await stage.storedObjects('mbx-reg-b')).size).toBe(0);
    expect((await stage.ledger.getMailboxState('mbx-reg-b')).requestMarker).toBeUndefined();

    // Add reg-new, remove reg-a, and a repeated seed (a new cold start) changes nothing.
    await registry.put(entryOf(mb['reg-new']!));
    expect(await registry.remove('mbx-reg-a')).toBe(true);
    await stage.ledger.releaseRequestMarker('mbx-reg-c', tickAt(1));
    const scheduler2 = await start('scheduler', queue.url, config);
    const t2 = await scheduler2.invoke({ time: tickAt(2) }, { remainingMs: 120_000 });
    expect(t2.error).toBeUndefined();
    expect(t2.result).toMatchObject({ paused: 1 });
    expect(logRecords(t2.output).some((r) => r.message === 'registry seeded from the mailbox file')).toBe(false);
    expect((await drainQueue(queue.url)).map((r) => r.mailboxId).sort()).toEqual(['mbx-reg-c', 'mbx-reg-new']);
    const blob = emfBlobs(t2.output).find((x) => x.metrics.has('PausedMailboxes'));
    expect(blob?.metrics.get('PausedMailboxes')).toBe(1);

    // Removed: its ledger and stored objects stay.
    expect((await stage.storedObjects('mbx-reg-a')).size).toBe(2);
    expect((await stage.ledger.getMailboxState('mbx-reg-a')).lastSuccessAt).toBeDefined();

    // Resumed: the next tick enqueues it again.
    expect(await registry.setPaused('mbx-reg-b', false)).toBe(true);
    const t3 = await scheduler2.invoke({ time: tickAt(3) }, { remainingMs: 120_000 });
    expect((t3.result as TickResult).paused).toBe(0);
    expect((await drainQueue(queue.url)).map((r) => r.mailboxId)).toContain('mbx-reg-b');
  }, 240_000);
});
