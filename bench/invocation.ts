/**
 * `npm run bench:invocation`: what one drainer invocation bills (its wall time) with a batch of
 * 1, 5 and 10 drain requests (5: the fill the cost model assumes), each mailbox with 0 or 1 new
 * message. The real drainer handler in
 * a Lambda-like process (bench/lambda-host.ts), against Dovecot behind a latency proxy (POP3 at
 * `--pop3-delay-ms` each way, 20 by default: a 40 ms round trip, a mail server in another
 * region or at another provider), and s3rver, dynalite, local-aws-sqs and the EventBridge /
 * Secrets Manager endpoint each behind a proxy of `--aws-delay-ms` each way (2 by default: an
 * in-region round trip of 4 ms).
 *
 *   npm run bench:invocation
 *   npm run bench:invocation -- --rounds 7 --pop3-delay-ms 20 --aws-delay-ms 2 --json
 *
 * Prints, per case, the median (and the range) over the rounds of: the invocation's wall time
 * (the handler's, what Lambda bills), that time per drained mailbox, the median run's own
 * duration (its report's durationMs), and per run the client-to-server flights on the POP3
 * connections (TLS handshake included: each is about one round trip the run waits for) and the
 * AWS requests by service (HTTP request lines through the proxies). The first invocation (the
 * cold start, and the first drain of each mailbox) is not measured. Each run is checked: it
 * completed and stored exactly the new messages.
 *
 * Everything shares this machine, the stand-ins in this process: the figures are of this setup.
 */
import { dirname, join } from 'node:path';
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { DeleteMessageBatchCommand, SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse } from 'aws-lambda';
import { testMessage } from '../testkit/fixtures/drain-fixtures.js';
import { LambdaInstance, tsxHostCommand, type HostCommand } from '../testkit/lambda/instance.js';
import { drainReports } from '../testkit/lambda/output.js';
import { startLambdaStage, type LambdaStage, type StageMailbox } from '../testkit/lambda/stage.js';
import { sqsEvent, sqsRecord } from '../testkit/lambda/sqs-event-source.js';
import { startLatencyProxy, type LatencyProxy } from './latency-proxy.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    'pop3-delay-ms': { type: 'string', default: '20' },
    'aws-delay-ms': { type: 'string', default: '2' },
    json: { type: 'boolean', default: false },
  },
});
const ROUNDS = Number(values.rounds);
const POP3_DELAY_MS = Number(values['pop3-delay-ms']);
const AWS_DELAY_MS = Number(values['aws-delay-ms']);
const MAILBOXES = 10;
const BATCH_SIZES = [1, 5, MAILBOXES];
const MESSAGE_BODY_BYTES = 4000;
const REMAINING_MS = 15 * 60_000;
const HTTP_REQUEST_LINE = /(?:^|\r\n)(?:GET|PUT|POST|HEAD|DELETE) \S+ HTTP\/1\.1\r\n/g;
const AWS_SERVICES = ['S3', 'DYNAMODB', 'SQS', 'EVENTBRIDGE+SECRETS'] as const;
type AwsService = (typeof AWS_SERVICES)[number];

const log = (line: string): void => void process.stderr.write(`${line}\n`);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (n: number, digits = 1): number => Number(n.toFixed(digits));

/** The compiled host beside this file, or the TypeScript one through tsx when run unbuilt. */
function hostCommand(): HostCommand {
  const self = fileURLToPath(import.meta.url);
  return self.endsWith('.ts') ? tsxHostCommand() : { command: process.execPath, args: [join(dirname(self), 'lambda-host.js')] };
}

/** What the proxies saw since the last reset. */
class Counters {
  pop3Flights = 0;
  aws = new Map<AwsService, number>();
  reset(): void {
    this.pop3Flights = 0;
    this.aws = new Map();
  }
  awsTotal(): number {
    return [...this.aws.values()].reduce((a, b) => a + b, 0);
  }
}

async function proxyAws(url: string, service: AwsService, counters: Counters, proxies: LatencyProxy[]): Promise<string> {
  const { hostname, port } = new URL(url);
  const proxy = await startLatencyProxy(hostname, Number(port), AWS_DELAY_MS, (chunk) => {
    const n = chunk.toString('latin1').match(HTTP_REQUEST_LINE)?.length ?? 0;
    if (n > 0) counters.aws.set(service, (counters.aws.get(service) ?? 0) + n);
  });
  proxies.push(proxy);
  return `http://127.0.0.1:${proxy.port}`;
}

interface CaseResult {
  batch: number;
  newMessages: number;
  invocations: number;
  wallMs: number;
  wallMsMin: number;
  wallMsMax: number;
  msPerRun: number;
  runMs: number;
  pop3FlightsPerRun: number;
  awsRequestsPerRun: number;
  awsByService: Record<string, number>;
}

async function main(): Promise<void> {
  if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error('--rounds must be a whole number >= 1');
  log('starting Dovecot, s3rver, dynalite, local-aws-sqs and the EventBridge / Secrets Manager endpoint ...');
  const stage = await startLambdaStage();
  const proxies: LatencyProxy[] = [];
  let drainer: LambdaInstance | undefined;
  try {
    const counters = new Counters();
    const mailboxes: StageMailbox[] = [];
    for (let i = 0; i < MAILBOXES; i++) mailboxes.push(await stage.addMailbox(`inv-${i}`, [testMessage(0, `inv-${i}-0`, MESSAGE_BODY_BYTES)]));
    const pop3 = await startLatencyProxy(stage.dovecot.host, stage.dovecot.ports.pop3s, POP3_DELAY_MS, () => {
      counters.pop3Flights += 1;
    });
    proxies.push(pop3);
    const configPath = await stage.writeMailboxFile('invocation.json', mailboxes);
    const file = JSON.parse(await readFile(configPath, 'utf8')) as { defaults: { port: number } };
    file.defaults.port = pop3.port;
    await writeFile(configPath, `${JSON.stringify(file, null, 2)}\n`);

    const queue = await stage.sqs.createFifoQueue('invocation', { visibilityTimeoutSeconds: 900 });
    const base = stage.env({ POPDRAIN_CONFIG_PATH: configPath, POPDRAIN_QUEUE_URL: queue.url });
    const env: NodeJS.ProcessEnv = {
      ...base,
      AWS_ENDPOINT_URL_S3: await proxyAws(base.AWS_ENDPOINT_URL_S3!, 'S3', counters, proxies),
      AWS_ENDPOINT_URL_DYNAMODB: await proxyAws(base.AWS_ENDPOINT_URL_DYNAMODB!, 'DYNAMODB', counters, proxies),
      AWS_ENDPOINT_URL_SQS: await proxyAws(base.AWS_ENDPOINT_URL_SQS!, 'SQS', counters, proxies),
    };
    const jsonEndpoint = await proxyAws(base.AWS_ENDPOINT_URL_EVENTBRIDGE!, 'EVENTBRIDGE+SECRETS', counters, proxies);
    env.AWS_ENDPOINT_URL_EVENTBRIDGE = jsonEndpoint;
    env.AWS_ENDPOINT_URL_SECRETS_MANAGER = jsonEndpoint;
    drainer = await LambdaInstance.start({ name: 'drainer-invocation', handler: 'drainer', env, host: hostCommand() });
    const sqs = stage.sqs.client();
    let sequence = 0;
    let delivered = 1;

    /** One invocation with a request for each of `batch`; checks every run stored `newMessages`. */
    const invoke = async (batch: StageMailbox[], newMessages: number) => {
      for (const m of batch) {
        if (newMessages > 0) await stage.dovecot.deliverMany(m.user, [testMessage(delivered, `${m.user}-${delivered}`, MESSAGE_BODY_BYTES)]);
      }
      delivered += 1;
      await sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: queue.url,
          Entries: batch.map((m, i) => ({
            Id: String(i),
            MessageGroupId: m.id,
            MessageDeduplicationId: `${m.id}:${(sequence += 1)}`,
            MessageBody: JSON.stringify({ mailboxId: m.id, tick: new Date().toISOString() }),
          })),
        }),
      );
      const received = await stage.sqs.receiveAll(queue.url);
      if (received.length !== batch.length) throw new Error(`received ${received.length} drain requests, sent ${batch.length}`);
      const records = received.map((m) => sqsRecord(m, queue.arn));
      counters.reset();
      const invocation = await drainer!.invoke(sqsEvent(records), { remainingMs: REMAINING_MS });
      const pop3Flights = counters.pop3Flights;
      const aws = new Map(counters.aws);
      await sqs.send(new DeleteMessageBatchCommand({ QueueUrl: queue.url, Entries: received.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }));
      if (!invocation.ok) throw new Error(`the invocation failed: ${invocation.error?.message}`);
      const failures = (invocation.result as SQSBatchResponse).batchItemFailures;
      if (failures.length > 0) throw new Error(`${failures.length} drain requests failed`);
      const reports = drainReports(invocation.output);
      if (reports.length !== batch.length) throw new Error(`${reports.length} drain reports for ${batch.length} requests`);
      for (const r of reports) if (r.stopReason !== 'complete') throw new Error(`${r.mailboxId}: ${r.stopReason}`);
      return { invocation, reports, pop3Flights, aws };
    };

    log('warming up: the cold start and the first drain of every mailbox ...');
    const warm = await invoke(mailboxes, 0);
    if (warm.reports.some((r) => r.fetched !== 1)) throw new Error('the warm-up did not store the first message of every mailbox');

    const results: CaseResult[] = [];
    for (const newMessages of [0, 1]) {
      for (const size of BATCH_SIZES) {
        const walls: number[] = [];
        const runs: number[] = [];
        let flights = 0;
        const byService = new Map<AwsService, number>();
        for (let r = 0; r < ROUNDS; r++) {
          // Mailboxes taken in turn, so each round's batch holds different ones than the last.
          const batch = Array.from({ length: size }, (_, k) => mailboxes[(r * size + k) % MAILBOXES]!);
          const out = await invoke(batch, newMessages);
          for (const report of out.reports) {
            if (report.fetched !== newMessages) throw new Error(`${report.mailboxId} stored ${report.fetched} messages, expected ${newMessages}`);
            runs.push(report.durationMs);
          }
          walls.push(out.invocation.durationMs);
          flights += out.pop3Flights;
          for (const [k, v] of out.aws) byService.set(k, (byService.get(k) ?? 0) + v);
        }
        const runCount = ROUNDS * size;
        const awsTotal = [...byService.values()].reduce((a, b) => a + b, 0);
        const row: CaseResult = {
          batch: size,
          newMessages,
          invocations: ROUNDS,
          wallMs: median(walls),
          wallMsMin: Math.min(...walls),
          wallMsMax: Math.max(...walls),
          msPerRun: round(median(walls) / size),
          runMs: median(runs),
          pop3FlightsPerRun: round(flights / runCount),
          awsRequestsPerRun: round(awsTotal / runCount),
          awsByService: Object.fromEntries(AWS_SERVICES.map((s) => [s, round((byService.get(s) ?? 0) / runCount)])),
        };
        results.push(row);
        log(`batch ${size}, ${newMessages} new: ${row.wallMs} ms per invocation (${row.wallMsMin}-${row.wallMsMax}), ${row.msPerRun} ms per run`);
      }
    }
    print(results);
  } finally {
    await drainer?.stop();
    await Promise.all(proxies.map((p) => p.close()));
    await stage.stop();
  }
}

function print(results: CaseResult[]): void {
  const setting = {
    date: new Date().toISOString(),
    cores: availableParallelism(),
    loadAverage1m: round(loadavg()[0]!, 2),
    rounds: ROUNDS,
    pop3DelayMsEachWay: POP3_DELAY_MS,
    awsDelayMsEachWay: AWS_DELAY_MS,
  };
  if (values.json) {
    for (const r of results) process.stdout.write(`${JSON.stringify({ tool: 'popdrain-invocation', ...setting, ...r })}\n`);
    return;
  }
  const out: string[] = [];
  out.push(
    `${setting.date}, ${setting.cores} cores, load average ${setting.loadAverage1m}; POP3 ${POP3_DELAY_MS} ms each way, AWS stand-ins ${AWS_DELAY_MS} ms each way; median of ${ROUNDS} invocations`,
    '',
    '| batch | new messages per mailbox | wall ms per invocation (min-max) | wall ms per run | run ms (report) | POP3 flights per run | AWS requests per run (S3 / DynamoDB / SQS / EventBridge+Secrets) |',
    '|---:|---:|---:|---:|---:|---:|---|',
  );
  for (const r of results) {
    const by = AWS_SERVICES.map((s) => r.awsByService[s]).join(' / ');
    out.push(`| ${r.batch} | ${r.newMessages} | ${r.wallMs} (${r.wallMsMin}-${r.wallMsMax}) | ${r.msPerRun} | ${r.runMs} | ${r.pop3FlightsPerRun} | ${r.awsRequestsPerRun} (${by}) |`);
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

await main();
