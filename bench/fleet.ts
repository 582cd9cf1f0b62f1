/**
 * `npm run bench:fleet [-- --json] [--mailboxes N] [--hours H] [--batch-size N]`: the fleet simulation of
 * issue 13 item 9. The REAL scheduler and drainer handlers (lambdas/), each in a Lambda-like
 * child process (testkit/lambda/), run against Dovecot, dynalite, the SQS stand-in, the
 * in-memory S3 endpoint and the AWS JSON endpoint on loopback, under compressed time: every
 * process reads the same scaled clock (testkit/clock/scaled-clock.ts), and the SQS stand-in's
 * visibility timeouts, delays and retention run in it too. The bench ticks the scheduler every
 * 5 simulated minutes, an event source feeds the drainers from the queue in batches (the
 * construct's default batch size unless `--batch-size` says), mail keeps arriving
 * for some mailboxes, some secrets hold a wrong password, some mailboxes are held busy by a side
 * POP3 session, one holds 20,000 messages with a per-run budget, and one mailbox is added and
 * one paused mid-run through `popdrain fleet add/pause` (runFleet). It prints one JSON row.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SQSClient } from '@aws-sdk/client-sqs';
import { runFleet } from '../cli/fleet-command.js';
import { DEFAULT_DRAINER_BATCH_SIZE, MAX_FIFO_BATCH_SIZE } from '../infra/constructs/drainer-concurrency.js';
import { simulatedNow, type ScaledClockSpec } from '../testkit/clock/scaled-clock.js';
import { servedForm, sha256 } from '../testkit/fixtures/drain-fixtures.js';
import { LambdaInstance, startInstances } from '../testkit/lambda/instance.js';
import { holdMailbox, type BusyHolder } from './fleet-busy-holder.js';
import { compareStored, failedLoginAttempts, waitingAtSample } from './fleet-checks.js';
import { startEventSource } from './fleet-event-source.js';
import { planFleet, type FleetMailboxPlan } from './fleet-plan.js';
import { FLEET_BUCKET, FLEET_PREFIX, FLEET_TABLE, createMailboxes, fleetMessage, lambdaEnv, registryEntry, startFleetSqs, startFleetWorld, writeSeedFile } from './fleet-world.js';

const TICK_MINUTES = 5;
const TICK_MS = TICK_MINUTES * 60_000;
const HOUR_MS = 3_600_000;
/** A drainer invocation's budget (Lambda's 15 minutes), in simulated ms. */
const DRAINER_REMAINING_MS = 900_000;
/** The construct's visibility timeout (6 x the drainer's 15 minutes). */
const VISIBILITY_TIMEOUT_SECONDS = 5400;
/** Wall time allowed after the last tick for the queue to empty. */
const SETTLE_WALL_MS = 120_000;
const SIM_EPOCH_MS = Date.UTC(2026, 0, 5, 0, 0, 0);
/** Wall time given to starting the SQS and Lambda-like processes before the clock's origin. */
const STARTUP_ALLOWANCE_MS = 20_000;

const { values: args } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    mailboxes: { type: 'string', default: '1000' },
    hours: { type: 'string', default: '24' },
    speed: { type: 'string' },
    'wall-minutes': { type: 'string', default: '15' },
    drainers: { type: 'string', default: '4' },
    'batch-size': { type: 'string', default: String(DEFAULT_DRAINER_BATCH_SIZE) },
    'bulk-every': { type: 'string', default: '240' },
    'big-messages': { type: 'string', default: '20000' },
    'big-per-run': { type: 'string', default: '1000' },
  },
});
const hours = Number(args.hours);
const batchSize = Number(args['batch-size']);
if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_FIFO_BATCH_SIZE) throw new Error(`--batch-size must be a whole number from 1 to ${MAX_FIFO_BATCH_SIZE}`);
const speed = args.speed === undefined ? (hours * HOUR_MS) / (Number(args['wall-minutes']) * 60_000) : Number(args.speed);
const plan = planFleet({
  mailboxes: Number(args.mailboxes),
  bulkEveryMinutes: Number(args['bulk-every']),
  failing: 10,
  busy: 5,
  active: 10,
  bigMessages: Number(args['big-messages']),
  bigPerRun: Number(args['big-per-run']),
});
// Progress goes to stderr in both modes (the JSON row is stdout's only line).
const log = (text: string): void => {
  process.stderr.write(`${text}\n`);
};
const here = fileURLToPath(new URL('.', import.meta.url));
const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const tsx = ext === '.ts' ? ['--import', 'tsx'] : [];

const wallStart = Date.now();
const dir = await mkdtemp(join(tmpdir(), 'popdrain-fleet-'));
// The clock starts once the processes that read it are up (set below); before, simulated time is before the epoch.
const clock: ScaledClockSpec = { epochMs: SIM_EPOCH_MS, originMs: Number.MAX_SAFE_INTEGER, speed };
const world = await startFleetWorld();
const instances: LambdaInstance[] = [];
const holders: BusyHolder[] = [];
// Interrupted: stop Dovecot (a daemon) and the child processes before exiting.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void Promise.allSettled([...instances.map((i) => i.stop()), world.stop(), rm(dir, { recursive: true, force: true })]).finally(() => process.exit(130));
  });
}
try {
  const initial = plan.filter((m) => m.role !== 'added');
  log(`creating ${plan.length} mailboxes (${plan.reduce((n, m) => n + m.initialMessages, 0)} messages)`);
  await createMailboxes(world, plan);
  const seed = await writeSeedFile(world, dir, initial);
  // Starting the SQS process and the Lambda-like processes takes seconds; the simulation starts after.
  clock.originMs = Date.now() + STARTUP_ALLOWANCE_MS + Number(args.drainers) * 3_000;
  await startFleetSqs(world, join(here, `fleet-sqs-host${ext}`), clock, VISIBILITY_TIMEOUT_SECONDS);
  const host = { command: process.execPath, args: [...tsx, join(here, `fleet-lambda-host${ext}`)] };
  const env = (extra: Record<string, string>) => lambdaEnv(world, clock, { POPDRAIN_CONFIG_PATH: seed, ...extra });
  const [scheduler] = await startInstances(1, { namePrefix: 'scheduler', handler: 'scheduler', env: env({ POPDRAIN_TICK_MINUTES: String(TICK_MINUTES) }), host });
  instances.push(scheduler!);
  instances.push(...(await startInstances(Number(args.drainers), { namePrefix: 'drainer', handler: 'drainer', env: env({}), host })));
  for (const m of plan.filter((p) => p.role === 'busy')) {
    holders.push(await holdMailbox(world.dovecot.host, world.dovecot.ports.pop3, m.user, world.passwords.get(m.user)!));
  }
  const setupWallMs = Date.now() - wallStart;
  if (Date.now() > clock.originMs) throw new Error(`set-up took ${setupWallMs} ms, past the clock's origin; the simulation would start late`);
  await sleepUntil(clock.originMs);

  const sqs = new SQSClient({ region: 'us-east-1', endpoint: world.sqs.endpoint, credentials: { accessKeyId: 'fleet-fake-key', secretAccessKey: 'fleet-fake-secret' } });
  const bigId = plan.find((m) => m.role === 'big')!.id;
  let bigContinuations = 0;
  let bigRuns = 0;
  let drainerErrors = 0;
  const runsByRole = new Map<string, number>();
  const outcomes = new Map<string, number>();
  const roleOf = new Map(plan.map((m) => [m.id, m.role]));
  const source = startEventSource({
    sqs,
    queueUrl: world.sqs.queueUrl,
    queueArn: world.sqs.queueArn,
    instances: instances.slice(1),
    remainingMs: DRAINER_REMAINING_MS,
    batchSize,
    onBatch: (b) => {
      if (!b.invocation.ok) drainerErrors += 1;
      const bodies = b.records.map((r) => JSON.parse(r.body) as { mailboxId: string; depth?: number });
      for (const body of bodies) {
        const role = roleOf.get(body.mailboxId) ?? 'unknown';
        runsByRole.set(role, (runsByRole.get(role) ?? 0) + 1);
        if (body.mailboxId === bigId) {
          bigRuns += 1;
          if ((body.depth ?? 0) > 0) bigContinuations += 1;
        }
      }
      // The invocation's output holds the lines of all its runs: each drain report names its mailbox.
      for (const line of b.invocation.output) {
        if (line.json?.message !== 'drain report') continue;
        const mailboxId = String(line.json.mailboxId);
        const role = roleOf.get(mailboxId) ?? 'unknown';
        const key = `${role}:${String(line.json.outcome)}${line.json.errorCode === undefined ? '' : `:${String(line.json.errorCode)}`}`;
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
        if (process.env.FLEET_DEBUG === '1' && mailboxId === bigId) {
          const r = line.json.report as { stopReason?: string; fetched?: number; stored?: number; remaining?: number };
          const depth = bodies.find((body) => body.mailboxId === bigId)?.depth ?? 0;
          process.stderr.write(`big: depth ${depth} ${r.stopReason} ${JSON.stringify(r).slice(0, 300)} batch ${b.records.length} wall ${b.finishedAt - b.startedAt} ms\n`);
        }
      }
    },
  });

  const ticks = Math.round((hours * 60) / TICK_MINUTES);
  const midTick = Math.round(ticks / 4);
  const releaseTick = Math.round(ticks / 2);
  const lastMailTick = ticks - Math.round(60 / TICK_MINUTES);
  let maxQueueDepth = 0;
  let maxQueuedPerMailbox = 0;
  // The mailboxes with most messages in the queue at the first sample that reached the maximum.
  let maxQueuedAt: Array<[string, number]> = [];
  // Per mailbox, its messages in the queue not handed to an invocation (a request whose run has
  // ended stays in the queue until the rest of its batch has ended): the requests waiting.
  let maxWaitingPerMailbox = 0;
  let maxCountMismatch = 0;
  let late = 0;
  let pausedAtTick = -1;
  const delivered = new Map<string, number>(plan.map((m) => [m.user, m.initialMessages]));
  const fleetIo = { out: () => undefined, now: () => simulatedNow(clock, Date.now()) };
  const fleetOptions = { table: FLEET_TABLE, 'queue-url': world.sqs.queueUrl, 'aws-region': 'us-east-1', 'aws-endpoint': world.dynamo.endpoint };
  process.env.AWS_ACCESS_KEY_ID ??= 'fleet-fake-key';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'fleet-fake-secret';
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
  const sample = async (): Promise<void> => {
    const sampledFrom = Date.now();
    const s = await world.sqs.sample();
    // A mailbox with one message has at most one waiting; one with several, those not in an invocation.
    const waiting = s.several.map((g) => waitingAtSample(g.messageIds, (id) => source.takenAt(id), sampledFrom));
    maxWaitingPerMailbox = Math.max(maxWaitingPerMailbox, Math.min(s.maxPerMailbox, 1), ...waiting);
    maxQueueDepth = Math.max(maxQueueDepth, s.visible + s.inFlight);
    if (s.maxPerMailbox > maxQueuedPerMailbox) maxQueuedAt = s.top.filter(([, n]) => n > 1);
    maxQueuedPerMailbox = Math.max(maxQueuedPerMailbox, s.maxPerMailbox);
    maxCountMismatch = Math.max(maxCountMismatch, Math.abs(s.countedTotal - (s.visible + s.inFlight)));
  };

  for (let k = 1; k <= ticks; k++) {
    const tickAt = SIM_EPOCH_MS + k * TICK_MS;
    const wallAt = clock.originMs + (k * TICK_MS) / speed;
    if (Date.now() > wallAt + TICK_MS / speed) late += 1;
    await sleepUntil(wallAt);
    if (k === midTick) {
      const added = plan.find((m) => m.role === 'added')!;
      const paused = plan.find((m) => m.role === 'paused')!;
      const file = join(dir, 'added.json');
      await writeFile(file, JSON.stringify(registryEntry(world, added)));
      await runFleet(['add', file], fleetOptions, fleetIo);
      await runFleet(['pause', paused.id], fleetOptions, fleetIo);
      pausedAtTick = k;
      log(`tick ${k}: added ${added.id}, paused ${paused.id}`);
    }
    if (k === releaseTick) {
      for (const h of holders.splice(0)) await h.release();
      log(`tick ${k}: busy mailboxes released`);
    }
    if (k <= lastMailTick && k % (60 / TICK_MINUTES) === 0) {
      // New mail every simulated hour for the active mailboxes, the paused one and a few bulk ones.
      // Bulk ones only while a scheduled run of theirs is still to come before the end.
      const bulkLast = ticks - Math.ceil(Number(args['bulk-every']) / TICK_MINUTES) - 1;
      const targets = plan.filter((m) => m.role === 'active' || m.role === 'paused' || (m.role === 'bulk' && k <= bulkLast && Number(m.user.slice(4)) % 50 === 0));
      for (const m of targets) {
        const n = delivered.get(m.user)!;
        await world.dovecot.deliver(m.user, fleetMessage(m.user, n));
        delivered.set(m.user, n + 1);
      }
    }
    const result = await scheduler!.invoke({ time: new Date(tickAt).toISOString() }, { remainingMs: 60_000 });
    if (!result.ok) log(`tick ${k}: scheduler failed: ${result.error?.message}`);
    await sample();
    if (k % 12 === 0) log(`simulated hour ${k / 12}: queue ${maxQueueDepth} max, per mailbox ${maxQueuedPerMailbox} max, ${source.records} drainer runs in ${source.invocations} invocations, big mailbox ${bigRuns} runs`);
  }
  const simulatedHours = (simulatedNow(clock, Date.now()) - SIM_EPOCH_MS) / HOUR_MS;
  // Let what is queued finish (the ticks have stopped), sampling as it goes.
  const settleUntil = Date.now() + SETTLE_WALL_MS;
  for (;;) {
    await sample();
    const s = await world.sqs.sample();
    if (s.visible + s.inFlight === 0 || Date.now() > settleUntil) break;
    await sleep(500);
  }
  await source.stop();
  if (source.error !== undefined) throw source.error;
  const simWallMs = Date.now() - clock.originMs;

  // What Dovecot held vs what S3 holds, per reachable mailbox.
  let missing = 0;
  let duplicates = 0;
  let unexpected = 0;
  let checkedMessages = 0;
  const pausedPlan = plan.find((m) => m.role === 'paused')!;
  let bigCompleted = false;
  let pausedStoredAfterPause = 0;
  let pausedUndrainedAtPause = 0;
  const problems: string[] = [];
  for (const m of plan) {
    const files = await world.dovecot.listMaildir(m.user);
    // One file at a time: 20,000 at once exhaust the open-file limit.
    const held: string[] = [];
    for (const f of files) held.push(sha256(servedForm(await readFile(f))));
    const keys = world.s3.keys(FLEET_BUCKET, `${FLEET_PREFIX}${m.id}/`);
    const stored = keys.map((k) => sha256(world.s3.object(FLEET_BUCKET, k)!.body));
    if (m.role === 'failing') {
      unexpected += stored.length;
      continue;
    }
    if (m.role === 'paused') {
      // Paused mid-run: nothing delivered after the pause may be stored; what was stored, once.
      // Mail it held but had not drained when it was paused is reported, not counted missing.
      const before = new Set(Array.from({ length: m.initialMessages + Math.floor((pausedAtTick - 1) / 12) }, (_, i) => sha256(fleetMessage(m.user, i))));
      const heldBefore = held.filter((h) => before.has(h));
      pausedStoredAfterPause = stored.filter((s) => !before.has(s)).length;
      const c = compareStored(heldBefore, stored.filter((s) => before.has(s)));
      pausedUndrainedAtPause = c.missing;
      duplicates += c.duplicates;
      unexpected += c.unexpected + pausedStoredAfterPause;
      checkedMessages += heldBefore.length - c.missing;
      continue;
    }
    const c = compareStored(held, stored);
    if (c.missing + c.duplicates + c.unexpected > 0) problems.push(`${m.id}: ${c.missing} missing, ${c.duplicates} duplicated, ${c.unexpected} unexpected of ${held.length}`);
    missing += c.missing;
    duplicates += c.duplicates;
    unexpected += c.unexpected;
    checkedMessages += held.length;
    if (m.role === 'big') bigCompleted = c.missing === 0 && c.duplicates === 0 && c.unexpected === 0 && held.length >= Number(args['big-messages']);
  }
  const logText = await readFile(world.dovecot.logPath, 'utf8');
  const attempts = failedLoginAttempts(logText);
  const failing = plan.filter((m) => m.role === 'failing');
  const failingAttempts = failing.reduce((n, m) => n + (attempts.get(m.user) ?? 0), 0);
  const row = {
    tool: 'popdrain-fleet',
    mailboxes: plan.length,
    simulatedHours: Math.round(simulatedHours * 100) / 100,
    maxQueueDepth,
    maxQueuedPerMailbox,
    maxQueuedMailboxes: Object.fromEntries(maxQueuedAt),
    maxWaitingPerMailbox,
    loginsPerFailingMailboxPerHour: Math.round((failingAttempts / failing.length / simulatedHours) * 1000) / 1000,
    bigMailboxContinuations: bigContinuations,
    bigMailboxCompleted: bigCompleted,
    storedExactlyOnce: missing === 0 && duplicates === 0 && unexpected === 0,
    wallSeconds: Math.round((Date.now() - wallStart) / 1000),
    setupWallSeconds: Math.round(setupWallMs / 1000),
    simulationWallSeconds: Math.round(simWallMs / 1000),
    speed: Math.round(speed * 10) / 10,
    handlers: 'lambda-like processes',
    drainers: Number(args.drainers),
    batchSize,
    invocations: source.invocations,
    recordsPerInvocation: source.invocations === 0 ? 0 : Math.round((source.records / source.invocations) * 100) / 100,
    tickMinutes: TICK_MINUTES,
    bulkEveryMinutes: Number(args['bulk-every']),
    fastEveryMinutes: 5,
    failingMailboxes: failing.length,
    failingLoginAttempts: failingAttempts,
    busyMailboxes: plan.filter((m) => m.role === 'busy').length,
    bigMailboxMessages: Number(args['big-messages']),
    bigMailboxRuns: bigRuns,
    checkedMessages,
    missing,
    duplicates,
    unexpected,
    pausedStoredAfterPause,
    pausedUndrainedAtPause,
    drainerRuns: source.records,
    expiredDeletes: source.expiredDeletes,
    drainerRunsByRole: Object.fromEntries(runsByRole),
    outcomes: Object.fromEntries([...outcomes].sort()),
    drainerInvocationErrors: drainerErrors,
    lateTicks: late,
    maxQueueCountMismatch: maxCountMismatch,
    s3PutObjects: world.s3.counts.PutObject ?? 0,
    problems: problems.slice(0, 10),
  };
  if (args.json) process.stdout.write(`${JSON.stringify(row)}\n`);
  else process.stdout.write(summary(row));
} finally {
  for (const h of holders) await h.release().catch(() => undefined);
  await Promise.all(instances.map((i) => i.stop()));
  await world.stop();
  await rm(dir, { recursive: true, force: true });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function sleepUntil(wallMs: number): Promise<void> {
  const wait = wallMs - Date.now();
  if (wait > 0) await sleep(wait);
}

function summary(row: Record<string, unknown>): string {
  const lines = [
    `popdrain fleet simulation: ${String(row.mailboxes)} mailboxes, ${String(row.simulatedHours)} simulated hours in ${String(row.wallSeconds)} s (x${String(row.speed)})`,
    `  queue depth max ${String(row.maxQueueDepth)}; per mailbox max ${String(row.maxQueuedPerMailbox)}, waiting to run max ${String(row.maxWaitingPerMailbox)} (target <= 1)`,
    `  ${String(row.drainerRuns)} drainer runs in ${String(row.invocations)} invocations (batch size ${String(row.batchSize)}, ${String(row.recordsPerInvocation)} records on average)`,
    `  login attempts per failing mailbox per hour ${String(row.loginsPerFailingMailboxPerHour)} (target <= 2), by Dovecot's log`,
    `  big mailbox: ${String(row.bigMailboxRuns)} runs, ${String(row.bigMailboxContinuations)} continuations, completed: ${String(row.bigMailboxCompleted)}`,
    `  stored exactly once (${String(row.checkedMessages)} messages checked against Dovecot's maildirs): ${String(row.storedExactlyOnce)}`,
  ];
  return `${lines.join('\n')}\n`;
}
