/**
 * `npm run bench:sdk-cost`: the CPU the AWS SDK for JavaScript v3 spends in popdrain's process
 * per request of the kinds a drain into S3 sends, and what that allows one Node.js thread.
 *
 * The endpoints (bench/sdk-cost-server.ts) run in a child process and answer after `--delay-ms`
 * (default 20, S3's latency within a region), so this process's CPU is the client's alone:
 * request building, serialization, SigV4 signing, node:http, response parsing, retries'
 * bookkeeping. Requests are shaped like the drain's: a 4 KB PutObject with its SHA-256 checksum
 * and `If-None-Match: *`; a ~3 KB conditional PutItem (the ledger's record); a conditional
 * UpdateItem (the announced mark); a PutEvents of 10 ~1 KB entries. Each kind runs with the
 * drain's concurrency for it (64 stores, 16 ledger writes, 8 publishes), after a warm-up, in
 * alternated rounds; the figures are medians over the rounds.
 *
 * The last lines apply the drain's measured mix per message (docs/benchmarks.md, "S3 at real
 * latency": 1 PutObject, 2.0 DynamoDB writes, 0.13 PutEvents) to get the SDK's CPU per message
 * and the messages per second one thread could reach if popdrain itself cost nothing.
 *
 * Loopback only, fake credentials. Figures only: nothing here passes or fails.
 */
import { fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { DynamoDBClient, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { createS3Client, withHttpTimeouts } from '../lib/adapters/aws/http-timeouts.js';
import type { SdkCostEndpoints } from './sdk-cost-server.js';

process.env.AWS_EC2_METADATA_DISABLED = 'true';
const REGION = 'us-east-1';
const CREDENTIALS = { accessKeyId: 'AKIDSDKCOSTBENCH', secretAccessKey: 'sdk-cost-bench-fake-secret-key-0000000000' };
const SERVER_ENTRY = new URL('../bench/sdk-cost-server.js', import.meta.url);

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const value = i < 0 ? fallback : Number(process.argv[i + 1]);
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} must be a number >= 0`);
  return value;
}

const delayMs = option('delay-ms', 20);
const requests = option('requests', 2000);
const rounds = option('rounds', 3);
/** Requests per message of a drain into S3, as counted on the wire (docs/benchmarks.md). */
const MIX = { PutObject: 1, PutItem: 1, UpdateItem: 1.0, PutEvents: 0.13 } as const;

const child = fork(SERVER_ENTRY, ['--delay-ms', String(delayMs)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
const endpoints = await new Promise<SdkCostEndpoints>((resolve, reject) => {
  child.once('exit', (code) => reject(new Error(`sdk-cost-server exited (${code}) before it was ready`)));
  child.once('message', (message: { ready: SdkCostEndpoints }) => resolve(message.ready));
});
const forget = (): Promise<void> =>
  new Promise((resolve) => {
    child.once('message', () => resolve());
    child.send({ op: 'forget' });
  });

const common = { region: REGION, credentials: CREDENTIALS };
const s3 = createS3Client({ ...common, endpoint: endpoints.s3, forcePathStyle: true });
const dynamodb = new DynamoDBClient(withHttpTimeouts({ ...common, endpoint: endpoints.dynamodb }));
const events = new EventBridgeClient(withHttpTimeouts({ ...common, endpoint: endpoints.events }));

const body = Buffer.alloc(4096, 'x');
const checksum = createHash('sha256').update(body).digest('base64');
const detail = JSON.stringify({ mailboxId: 'bench', uidl: 'u'.repeat(40), subject: 's'.repeat(300), from: 'f'.repeat(200), padding: 'p'.repeat(400) });
let serial = 0;

type Kind = keyof typeof MIX;
const KINDS: Record<Kind, { concurrency: number; send(): Promise<unknown> }> = {
  PutObject: {
    concurrency: 64,
    send: () =>
      s3.send(
        new PutObjectCommand({
          Bucket: 'sdk-cost',
          Key: `messages/bench/${serial++}.eml`,
          Body: body,
          ChecksumSHA256: checksum,
          IfNoneMatch: '*',
          ContentType: 'message/rfc822',
          Metadata: { uidl: `uidl-${serial}`, sha256: checksum, mailbox: 'bench' },
        }),
      ),
  },
  PutItem: {
    concurrency: 16,
    send: () =>
      dynamodb.send(
        new PutItemCommand({
          TableName: 'sdk-cost',
          Item: {
            pk: { S: 'mailbox#bench' },
            sk: { S: `uidl#${serial++}` },
            size: { N: '4096' },
            sha256: { S: checksum },
            status: { S: 'stored' },
            event: { S: detail.repeat(2) },
          },
          ConditionExpression: 'attribute_not_exists(pk) OR #s = :skipped',
          ExpressionAttributeNames: { '#s': 'status' },
          ExpressionAttributeValues: { ':skipped': { S: 'skipped' } },
        }),
      ),
  },
  UpdateItem: {
    concurrency: 16,
    send: () =>
      dynamodb.send(
        new UpdateItemCommand({
          TableName: 'sdk-cost',
          Key: { pk: { S: 'mailbox#bench' }, sk: { S: `uidl#${serial++}` } },
          UpdateExpression: 'SET #a = :t',
          ConditionExpression: 'attribute_exists(pk)',
          ExpressionAttributeNames: { '#a': 'announcedAt' },
          ExpressionAttributeValues: { ':t': { N: String(Date.now()) } },
        }),
      ),
  },
  PutEvents: {
    concurrency: 8,
    send: () =>
      events.send(
        new PutEventsCommand({
          Entries: Array.from({ length: 10 }, () => ({ EventBusName: 'sdk-cost', Source: 'popdrain', DetailType: 'Email Stored', Detail: detail })),
        }),
      ),
  },
};

async function run(kind: Kind, count: number): Promise<{ cpuMs: number; userMs: number; sysMs: number; perSecond: number }> {
  const { concurrency, send } = KINDS[kind];
  let left = count;
  const before = process.cpuUsage();
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (left > 0) {
        left -= 1;
        await send();
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  const { user, system } = process.cpuUsage(before);
  return { cpuMs: (user + system) / 1000 / count, userMs: user / 1000 / count, sysMs: system / 1000 / count, perSecond: count / seconds };
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const kinds = Object.keys(KINDS) as Kind[];
for (const kind of kinds) await run(kind, 200); // warm-up: connections, JIT
const samples = new Map<Kind, Array<Awaited<ReturnType<typeof run>>>>(kinds.map((k) => [k, []]));
for (let round = 0; round < rounds; round++) {
  for (const kind of kinds) samples.get(kind)!.push(await run(kind, kind === 'PutEvents' ? Math.ceil(requests / 10) : requests));
  await forget();
}

console.log(`sdk-cost: node ${process.version}, endpoint delay ${delayMs} ms, ${requests} requests per kind and round, ${rounds} rounds (medians)`);
console.log('request      in flight  CPU ms/request  user ms  sys ms  requests/s');
let perMessage = 0;
for (const kind of kinds) {
  const s = samples.get(kind)!;
  const cpu = median(s.map((x) => x.cpuMs));
  perMessage += cpu * MIX[kind];
  console.log(
    `${kind.padEnd(12)} ${String(KINDS[kind].concurrency).padStart(9)}  ${cpu.toFixed(3).padStart(14)}  ${median(s.map((x) => x.userMs)).toFixed(3).padStart(7)}  ${median(s.map((x) => x.sysMs)).toFixed(3).padStart(6)}  ${median(s.map((x) => x.perSecond)).toFixed(0).padStart(10)}`,
  );
}
console.log(`per message (1 PutObject, 1 PutItem, 1 UpdateItem, 0.13 PutEvents): ${perMessage.toFixed(2)} ms of the SDK's CPU`);
console.log(`one thread's ceiling from the SDK alone: ${(1000 / perMessage).toFixed(0)} msg/s`);
child.disconnect();
s3.destroy();
dynamodb.destroy();
events.destroy();
