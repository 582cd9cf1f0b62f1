/**
 * `popdrain fleet …` (cli/fleet-command.ts) against dynalite (the ledger table with the
 * registry) and local-aws-sqs (the FIFO drain queue and its DLQ), with the real SDK clients the
 * command builds (pointed at the stand-ins by AWS_ENDPOINT_URL_DYNAMODB / _SQS, fake
 * credentials from vitest.config.ts). The deployment is found from a stack-outputs file.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteMessageCommand, SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFleet, type FleetOptions } from '../../cli/fleet-command.js';
import { resolveDeployment, stackOutputs } from '../../cli/fleet-deployment.js';
import { EXIT, UsageError } from '../../cli/exit-codes.js';
import { DEFAULT_REQUEST_MARKER_TTL_SECONDS } from '../../lambdas/schedule.js';
import { DynamoDbLedger } from '../../lib/adapters/aws/dynamodb-ledger.js';
import { DynamoDbMailboxRegistry } from '../../lib/adapters/aws/dynamodb-registry.js';
import { startSqs, type FifoQueue, type SqsStandin } from '../../testkit/aws/sqs-standin.js';
import { startDynalite, type DynamoDbStandin } from '../../testkit/aws/standins.js';

let dynamo: DynamoDbStandin;
let sqsStandin: SqsStandin;
let sqs: SQSClient;
let queue: FifoQueue;
let ledger: DynamoDbLedger;
let registry: DynamoDbMailboxRegistry;
let options: FleetOptions;
const dir = mkdtempSync(join(tmpdir(), 'popdrain-fleet-cli-'));
const TABLE = 'fleet-ledger';
const NOW = Date.UTC(2026, 5, 1, 12, 0, 0);

const entry = (id: string, extra: Record<string, unknown> = {}) => ({ id, host: 'pop.example.com', user: `${id}@example.com`, auth: { secret: `popdrain/${id}` }, ...extra });
function file(name: string, content: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(content));
  return path;
}

async function fleet(...argv: string[]): Promise<{ code: number; out: string; json: () => unknown }> {
  let out = '';
  const code = await runFleet(argv, options, { out: (t) => (out += t), now: () => NOW });
  return { code, out, json: () => JSON.parse(out) as unknown };
}

beforeAll(async () => {
  [dynamo, sqsStandin] = await Promise.all([startDynalite(), startSqs()]);
  await dynamo.createLedgerTable(TABLE);
  process.env.AWS_ENDPOINT_URL_DYNAMODB = dynamo.endpoint;
  process.env.AWS_ENDPOINT_URL_SQS = sqsStandin.endpoint;
  sqs = sqsStandin.client();
  queue = await sqsStandin.createFifoQueue('fleet');
  ledger = new DynamoDbLedger({ client: dynamo.client(), tableName: TABLE });
  registry = new DynamoDbMailboxRegistry(dynamo.client(), TABLE);
  // What `cdk deploy --outputs-file` writes.
  const outputs = file('outputs.json', { PopDrainStack: { LedgerTableName: TABLE, QueueUrl: queue.url, DeadLetterQueueUrl: queue.dlqUrl, BucketName: 'b' } });
  options = { 'stack-outputs': outputs };
}, 120_000);

afterAll(async () => {
  delete process.env.AWS_ENDPOINT_URL_DYNAMODB;
  delete process.env.AWS_ENDPOINT_URL_SQS;
  await Promise.all([dynamo?.stop(), sqsStandin?.stop()]);
});

describe('finding the deployment', () => {
  it('from cdk outputs, describe-stacks output, or explicit names (which win)', () => {
    expect(stackOutputs({ S: { LedgerTableName: 't' } })).toEqual({ LedgerTableName: 't' });
    expect(stackOutputs({ Stacks: [{ StackName: 'S', Outputs: [{ OutputKey: 'QueueUrl', OutputValue: 'q' }] }] })).toEqual({ QueueUrl: 'q' });
    expect(() => stackOutputs({ A: {}, B: {} })).toThrow(/2 stacks \(A, B\); choose one with --stack/);
    expect(stackOutputs({ A: { LedgerTableName: 'a' }, B: { LedgerTableName: 'b' } }, 'B')).toEqual({ LedgerTableName: 'b' });
    expect(resolveDeployment({ table: 'x' }, { LedgerTableName: 't', QueueUrl: 'q' })).toEqual({ table: 'x', queueUrl: 'q' });
    expect(() => resolveDeployment({}, {})).toThrow(UsageError);
  });
});

describe('popdrain fleet', () => {
  it('adds from a mailbox file (defaults applied), refuses a second add, local-only fields, and an update of an unknown id', async () => {
    const seed = file('seed.json', { defaults: { schedule: { everyMinutes: 15 } }, mailboxes: [entry('alpha'), entry('beta')] });
    expect((await fleet('add', seed)).out).toBe('added: alpha, beta\n');
    expect((await registry.get('beta'))?.mailbox.everyMinutes).toBe(15);
    await expect(fleet('add', file('a.json', entry('alpha')))).rejects.toThrow(/"alpha" is already in the registry \(use fleet update\)/);
    await expect(fleet('add', file('evil.json', entry('gamma', { auth: { passwordFile: '/etc/shadow' } })))).rejects.toThrow(/auth\.passwordFile: not allowed in the registry/);
    await expect(fleet('update', file('u.json', entry('nobody')))).rejects.toThrow(/no mailbox "nobody"/);
    // A file that never ends is refused at the bound, not read until memory runs out.
    await expect(fleet('add', '/dev/zero')).rejects.toThrow(/cannot read \/dev\/zero as JSON: \/dev\/zero is larger than \d+ bytes/);
    expect((await fleet('update', file('u2.json', entry('alpha', { schedule: { everyMinutes: 60 } })))).code).toBe(EXIT.OK);
    expect((await registry.get('alpha'))?.mailbox.everyMinutes).toBe(60);
  });

  it('lists state: last success, backlog, queued, backoff, failures, a tripped guard; failures lists the failing ones', async () => {
    await ledger.updateMailboxState('alpha', { lastSuccessAt: NOW - 60_000, backlogSince: NOW - 3_600_000 });
    await ledger.updateMailboxState('beta', {
      nextAttemptAt: NOW + 900_000,
      failureStreak: 2,
      lastFailure: { at: NOW - 1000, stopReason: 'auth-failed', code: 'AUTH_FAILED', message: 'login refused' },
      uidlResetTrippedAt: NOW - 5000,
    });
    const list = (await fleet('list', '--json')).out;
    options.json = true;
    const rows = ((await fleet('list')).json() as { mailboxes: Array<Record<string, unknown>> }).mailboxes;
    delete options.json;
    expect(list).toContain('alpha');
    expect(rows).toEqual([
      expect.objectContaining({ mailboxId: 'alpha', paused: false, lastSuccessAt: new Date(NOW - 60_000).toISOString(), backlogSince: new Date(NOW - 3_600_000).toISOString(), failureStreak: 0, queued: false }),
      expect.objectContaining({ mailboxId: 'beta', nextAttemptAt: new Date(NOW + 900_000).toISOString(), failureStreak: 2, uidlResetTripped: true, lastFailure: expect.objectContaining({ code: 'AUTH_FAILED' }) }),
    ]);
    const failures = (await fleet('failures')).out;
    expect(failures).toMatch(/^beta .*AUTH_FAILED {2}streak 2 .*login refused\n$/);
  });

  it('accept-uidl-reset, pause, resume, remove (the ledger stays)', async () => {
    await fleet('accept-uidl-reset', 'beta');
    expect((await ledger.getMailboxState('beta')).acceptUidlReset).toBe(true);
    await expect(fleet('accept-uidl-reset', 'alpha')).rejects.toThrow(/has not tripped/);
    await fleet('pause', 'beta');
    expect((await registry.get('beta'))?.paused).toBe(true);
    await expect(fleet('drain-now', 'beta')).rejects.toThrow(/paused/);
    await fleet('resume', 'beta');
    expect((await registry.get('beta'))?.paused).toBe(false);
    expect((await fleet('remove', 'beta')).out).toMatch(/ledger and stored messages are kept/);
    expect(await registry.get('beta')).toBeUndefined();
    expect((await ledger.getMailboxState('beta')).failureStreak).toBe(2);
    await expect(fleet('pause', 'beta')).rejects.toThrow(/no mailbox "beta"/);
  });

  it('drain-now claims the request marker, clears the backoff and sends one request; a second is refused while it waits', async () => {
    await fleet('add', file('vpc.json', entry('inside', { placement: 'vpc' })));
    await expect(fleet('drain-now', 'inside')).rejects.toThrow(/drained in the VPC/);
    await ledger.updateMailboxState('alpha', { nextAttemptAt: NOW + 3_600_000 });
    expect((await fleet('drain-now', 'alpha')).code).toBe(EXIT.OK);
    const second = await fleet('drain-now', 'alpha');
    expect(second.code).toBe(EXIT.BUSY);
    const state = await ledger.getMailboxState('alpha');
    expect(state.nextAttemptAt).toBeUndefined();
    expect(state.requestMarker?.token).toMatch(new RegExp(`^manual:${new Date(NOW).toISOString()}:[0-9a-f]{8}$`));
    // Sent, so the marker lives as long as the request can wait in the queue, not the short claim.
    expect(state.requestMarker?.expiresAt).toBe(NOW + DEFAULT_REQUEST_MARKER_TTL_SECONDS * 1000);
    const received = await sqsStandin.receiveAll(queue.url);
    expect(received.map((m) => JSON.parse(m.Body!))).toEqual([{ mailboxId: 'alpha', tick: new Date(NOW).toISOString(), marker: state.requestMarker!.token }]);
    expect(received[0]!.Attributes?.MessageGroupId).toBe('alpha');
    await sqs.send(new DeleteMessageCommand({ QueueUrl: queue.url, ReceiptHandle: received[0]!.ReceiptHandle! }));
  });

  it('redrive-dlq moves every request of the DLQ back to the drain queue, keeping its group and body', async () => {
    for (const id of ['m1', 'm2', 'm3']) {
      await sqs.send(new SendMessageCommand({ QueueUrl: queue.dlqUrl, MessageGroupId: id, MessageDeduplicationId: `${id}:dead`, MessageBody: JSON.stringify({ mailboxId: id, tick: 't', marker: 't' }) }));
    }
    expect((await fleet('redrive-dlq')).out).toBe('moved 3 request(s) from the dead-letter queue back to the drain queue\n');
    expect(await sqsStandin.depth(queue.dlqUrl)).toEqual({ visible: 0, inFlight: 0 });
    const moved = await sqsStandin.receiveAll(queue.url);
    expect(moved.map((m) => [m.Attributes?.MessageGroupId, (JSON.parse(m.Body!) as { mailboxId: string }).mailboxId]).sort()).toEqual([
      ['m1', 'm1'],
      ['m2', 'm2'],
      ['m3', 'm3'],
    ]);
  });
});
