/**
 * `npm run bench:scale`: the AWS deployment's fan-out at scale, on loopback. 200 Dovecot users
 * with a few messages each; one scheduler tick (the real scheduler handler) enqueues them on a
 * FIFO queue (local-aws-sqs); drainer instances (the real drainer handler, each in its own
 * process, one invocation at a time, as Lambda runs them) drain the queue with bounded
 * concurrency through the event-source loop of testkit/lambda/sqs-event-source.ts, into s3rver,
 * dynalite and the EventBridge / Secrets Manager endpoint.
 *
 *   npm run bench:scale
 *   npm run bench:scale -- --mailboxes 200 --messages 5 --size 4096 --concurrency 8
 *
 * Prints one JSON row on stdout (progress on stderr):
 *   {"tool":"popdrain-scale","mailboxes":200,"messages":1000,"seconds":S,"mailboxesPerMinute":R,...}
 * `seconds` runs from the scheduler invocation to the deletion of the last drain request;
 * instances are started (cold starts done) before it. Afterwards it checks every message was
 * stored exactly once (one object per message in s3rver, byte for byte, one PUT per key, one
 * `Email Stored` event per message) and fails otherwise.
 *
 * Everything shares this machine: Dovecot, s3rver, the drainer processes, and this process,
 * which hosts dynalite, local-aws-sqs, the JSON endpoint and the event-source loop
 * (`benchProcessCpuPercent` says how busy it was). The figures are of this setup, not of AWS.
 */
import { spawnSync } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { TickResult } from '../lambdas/scheduler.js';
import { LambdaInstance, startInstances, tsxHostCommand, type HostCommand } from '../testkit/lambda/instance.js';
import { servedForm } from '../testkit/fixtures/drain-fixtures.js';
import { drainReports } from '../testkit/lambda/output.js';
import { sha256Hex, startLambdaStage, type LambdaStage } from '../testkit/lambda/stage.js';
import { runEventSource } from '../testkit/lambda/sqs-event-source.js';
import { makeMessage } from './workloads.js';

const { values } = parseArgs({
  options: {
    mailboxes: { type: 'string', default: '200' },
    messages: { type: 'string', default: '5' },
    size: { type: 'string', default: '4096' },
    concurrency: { type: 'string', default: '8' },
  },
});

const MAILBOXES = Number(values.mailboxes);
const PER_MAILBOX = Number(values.messages);
const SIZE = Number(values.size);
const CONCURRENCY = Number(values.concurrency);
const SETUP_CONCURRENCY = 16;
const VERIFY_CONCURRENCY = 16;
/** Six drainer timeouts of 15 minutes, as the construct sets the queue's visibility timeout. */
const VISIBILITY_TIMEOUT_S = 6 * 15 * 60;
const DRAINER_REMAINING_MS = 15 * 60_000;

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};
const round = (n: number, digits = 2): number => Number(n.toFixed(digits));

function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

/** The compiled host beside this file, or the TypeScript one through tsx when run unbuilt. */
function hostCommand(): HostCommand {
  const self = fileURLToPath(import.meta.url);
  return self.endsWith('.ts') ? tsxHostCommand() : { command: process.execPath, args: [join(dirname(self), 'lambda-host.js')] };
}

function doveconf(stage: LambdaStage, setting: string): string {
  const r = spawnSync('doveconf', ['-c', stage.dovecot.configPath, '-h', setting], { encoding: 'utf8', env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } });
  return r.status === 0 ? r.stdout.trim() : `? (${r.stderr.trim()})`;
}

async function verifyStoredOnce(stage: LambdaStage, expected: Map<string, Set<string>>): Promise<number> {
  const client = stage.s3.client();
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: stage.bucket, Prefix: stage.prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) keys.push(o.Key!);
    token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
  const total = [...expected.values()].reduce((n, s) => n + s.size, 0);
  if (keys.length !== total) throw new Error(`s3rver holds ${keys.length} objects, expected ${total}`);
  const seen = new Map<string, Set<string>>();
  await mapLimit(keys, VERIFY_CONCURRENCY, async (key) => {
    const puts = stage.s3Puts.puts.get(`/${stage.bucket}/${key}`);
    if (puts !== 1) throw new Error(`${key} was PUT ${puts ?? 0} times`);
    const mailboxId = key.slice(stage.prefix.length).split('/')[0]!;
    const o = await client.send(new GetObjectCommand({ Bucket: stage.bucket, Key: key }));
    const digest = sha256Hex(Buffer.from(await o.Body!.transformToByteArray()));
    if (!expected.get(mailboxId)?.has(digest)) throw new Error(`${key} does not hold one of ${mailboxId}'s messages`);
    const s = seen.get(mailboxId) ?? new Set<string>();
    if (s.has(digest)) throw new Error(`${mailboxId} has one message stored twice`);
    s.add(digest);
    seen.set(mailboxId, s);
  });
  for (const [id, digests] of expected) {
    if (seen.get(id)?.size !== digests.size) throw new Error(`${id}: ${seen.get(id)?.size ?? 0} of ${digests.size} messages stored`);
    const events = stage.storedEvents(id);
    const ids = new Set(events.map((e) => (JSON.parse(e.Detail!) as { id: string }).id));
    if (events.length !== digests.size || ids.size !== digests.size) {
      throw new Error(`${id}: ${events.length} Email Stored events (${ids.size} distinct) for ${digests.size} messages`);
    }
  }
  return keys.length;
}

async function main(): Promise<void> {
  for (const [name, v] of [['mailboxes', MAILBOXES], ['messages', PER_MAILBOX], ['size', SIZE], ['concurrency', CONCURRENCY]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive whole number`);
  }
  log('starting Dovecot, s3rver, dynalite, local-aws-sqs and the EventBridge / Secrets Manager endpoint ...');
  const stage = await startLambdaStage();
  const instances: LambdaInstance[] = [];
  try {
    log(`creating ${MAILBOXES} users with ${PER_MAILBOX} messages of ~${SIZE} bytes each ...`);
    const expected = new Map<string, Set<string>>();
    let servedBytes = 0;
    const users = Array.from({ length: MAILBOXES }, (_, i) => `scale-${String(i + 1).padStart(4, '0')}`);
    await mapLimit(users, SETUP_CONCURRENCY, async (user) => {
      const messages = Array.from({ length: PER_MAILBOX }, (_, j) => makeMessage(j, SIZE, user));
      const mailbox = await stage.addMailbox(user, messages);
      const served = messages.map(servedForm);
      servedBytes += served.reduce((n, b) => n + b.length, 0);
      expected.set(mailbox.id, new Set(served.map(sha256Hex)));
    });
    const configPath = await stage.writeMailboxFile('mailboxes.json', stage.mailboxes);
    const queue = await stage.sqs.createFifoQueue('scale', { visibilityTimeoutSeconds: VISIBILITY_TIMEOUT_S });
    const env = stage.env({ POPDRAIN_CONFIG_PATH: configPath, POPDRAIN_QUEUE_URL: queue.url, POPDRAIN_TICK_MINUTES: '5' });
    const host = hostCommand();

    log(`starting 1 scheduler and ${CONCURRENCY} drainer instances ...`);
    const [scheduler, drainers] = await Promise.all([
      LambdaInstance.start({ name: 'scheduler', handler: 'scheduler', env, host }),
      startInstances(CONCURRENCY, { namePrefix: 'drainer', handler: 'drainer', env, host }),
    ]);
    instances.push(scheduler, ...drainers);

    log('tick, then drain ...');
    const load1m = loadavg()[0]!;
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const tick = await scheduler.invoke({ time: new Date().toISOString(), source: 'aws.events', 'detail-type': 'Scheduled Event' }, { remainingMs: 120_000 });
    if (!tick.ok) throw new Error(`the scheduler failed: ${tick.error?.message}`);
    const tickResult = tick.result as TickResult;
    if (tickResult.enqueued !== MAILBOXES) throw new Error(`the tick enqueued ${tickResult.enqueued} of ${MAILBOXES} mailboxes`);
    const tTick = process.hrtime.bigint();
    const sqs = stage.sqs.client();
    const done = await runEventSource({ sqs, queueUrl: queue.url, queueArn: queue.arn, instances: drainers, remainingMs: DRAINER_REMAINING_MS });
    const t1 = process.hrtime.bigint();
    const cpu = process.cpuUsage(cpu0);
    const seconds = Number(t1 - t0) / 1e9;

    log('checking that every message was stored exactly once ...');
    const failed = done.filter((d) => d.failed);
    if (failed.length > 0) throw new Error(`${failed.length} drain requests failed, e.g. ${JSON.stringify(drainReports(failed[0]!.invocation.output)[0]?.error)}`);
    const reports = done.flatMap((d) => drainReports(d.invocation.output));
    if (reports.length !== MAILBOXES || reports.some((r) => r.stopReason !== 'complete')) {
      throw new Error(`expected ${MAILBOXES} complete runs, got ${reports.length}: ${[...new Set(reports.map((r) => r.stopReason))].join(', ')}`);
    }
    const fetched = reports.reduce((n, r) => n + r.fetched, 0);
    if (fetched !== MAILBOXES * PER_MAILBOX) throw new Error(`fetched ${fetched} messages, expected ${MAILBOXES * PER_MAILBOX}`);
    const depth = await stage.sqs.depth(queue.url);
    if (depth.visible + depth.inFlight !== 0) throw new Error(`the queue still holds ${JSON.stringify(depth)}`);
    const objects = await verifyStoredOnce(stage, expected);
    const limitHits = ((await stage.dovecot.logTail(100_000)).match(/Maximum number of (connections|concurrent)|process_limit|client_limit/gi) ?? []).length;

    const runMs = reports.map((r) => r.durationMs);
    const invocationMs = done.map((d) => d.finishedAt - d.startedAt);
    const row = {
      tool: 'popdrain-scale',
      mailboxes: MAILBOXES,
      messages: objects,
      bytes: servedBytes,
      concurrency: CONCURRENCY,
      seconds: round(seconds, 3),
      mailboxesPerMinute: round((MAILBOXES / seconds) * 60, 1),
      messagesPerSecond: round(objects / seconds, 1),
      tickSeconds: round(Number(tTick - t0) / 1e9, 3),
      invocations: done.length,
      runMsP50: percentile(runMs, 50),
      runMsP95: percentile(runMs, 95),
      runMsMax: Math.max(...runMs),
      invocationMsP50: percentile(invocationMs, 50),
      coldStartMsMedian: percentile(drainers.map((d) => d.coldStartMs), 50),
      benchProcessCpuPercent: round(((cpu.user + cpu.system) / 1e3 / (seconds * 1e3)) * 100, 1),
      cpus: availableParallelism(),
      /** The machine's 1-minute load average when the tick started: other work skews the figures. */
      loadAverage1m: round(load1m, 1),
      // What could bound the sessions on Dovecot's side: per user and IP; POP3 processes; login
      // processes (one per TLS session, which it proxies; 0 means default_process_limit).
      dovecot: {
        mailMaxUseripConnections: Number(doveconf(stage, 'mail_max_userip_connections')),
        pop3ProcessLimit: Number(doveconf(stage, 'service/pop3/process_limit')),
        pop3LoginProcessLimit: Number(doveconf(stage, 'service/pop3-login/process_limit')) || Number(doveconf(stage, 'default_process_limit')),
        limitMessagesInLog: limitHits,
      },
    };
    process.stdout.write(`${JSON.stringify(row)}\n`);
    log(
      `${MAILBOXES} mailboxes, ${objects} messages in ${row.seconds} s with ${CONCURRENCY} drainers: ` +
        `${row.mailboxesPerMinute} mailboxes/min, ${row.messagesPerSecond} msg/s (run p50 ${row.runMsP50} ms, p95 ${row.runMsP95} ms)`,
    );
  } finally {
    await Promise.all(instances.map((i) => i.stop()));
    await stage.stop();
  }
}

main().catch((error: unknown) => {
  log(`bench:scale failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exit(1);
});
