/** The tools the benchmark measures, each as a command to run in a fresh process. */
import { randomUUID } from 'node:crypto';
import { chmod, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Workload } from './workloads.js';

/**
 * The loopback AWS stand-ins the orchestrator starts once (s3rver in a child process; dynalite,
 * the recording EventBridge endpoint and the S3 latency endpoint in another, see
 * bench/aws-services.ts) and keeps across runs. Never in the measured process.
 */
export interface BenchAwsServices {
  region: string;
  /** Fake credentials the stand-ins accept (s3rver's own pair). */
  accessKeyId: string;
  secretAccessKey: string;
  s3Endpoint: string;
  bucket: string;
  dynamodbEndpoint: string;
  table: string;
  eventsEndpoint: string;
  bus: string;
  /** Objects stored under `messages/<mailboxId>/` (to check a run really stored everything). */
  countObjects(mailboxId: string): Promise<number>;
  /** The in-memory S3 endpoint that answers after a delay (testkit/aws/s3-latency-endpoint.ts). */
  s3LatencyEndpoint: string;
  /** Its bucket. */
  latencyBucket: string;
  /** The in-memory DynamoDB endpoint that answers after 5 ms (testkit/aws/dynamodb-memory.ts). */
  latencyDynamodbEndpoint: string;
  /** Objects under `messages/<mailboxId>/` on the latency endpoint. */
  countLatencyObjects(mailboxId: string): Promise<number>;
  /** Forgets them (the endpoint keeps objects in memory). */
  forgetLatencyObjects(mailboxId: string): Promise<void>;
  /** `Email Stored` events the endpoint accepted for a mailbox. */
  countStoredEvents(mailboxId: string): Promise<number>;
  /** CPU seconds (user + system) the process of dynalite and the endpoints has used so far. */
  standinsCpuSeconds(): Promise<number>;
}

/** Where a storing run writes: a folder under /dev/shm, or under the disk's temp dir. */
export type Medium = 'tmpfs' | 'disk';

export interface BenchContext {
  /** The medium of `runDir` (`none` for the tools that store nothing locally). */
  medium: Medium | 'none';
  host: string;
  port: number;
  user: string;
  password: string;
  caPath: string;
  servername: string;
  workload: Workload;
  run: number;
  scratch: string;
  /** Repository root. */
  root: string;
  /** Started when a selected tool `needsAws`. */
  aws?: BenchAwsServices;
}

export interface ToolResult {
  messages: number;
  /** Seconds from the first RETR sent to the end of the last body, when the tool reports it. */
  transferSeconds?: number;
  [extra: string]: unknown;
}

export interface PreparedRun {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  parse(stdout: string): ToolResult | Promise<ToolResult>;
  cleanup?(): Promise<void>;
}

export interface BenchTool {
  name: string;
  workloads: ReadonlyArray<Workload['id']>;
  withLatency: boolean;
  /** When given, only these rows (`a+5ms`, `b`, ...) among the workloads and latencies above. */
  rows?: ReadonlyArray<string>;
  /** It writes files locally: measured once per medium (tmpfs, disk) in each run. */
  storesLocally: boolean;
  /**
   * A rerun row's tool: `prime` drains the mailbox once into `dir` (not measured); each measured
   * run then runs again in the same `dir`, where nothing is new. Rerun tools take part only in
   * `<workload>-rerun` rows, the others never.
   */
  rerun?: { prime(ctx: BenchContext, dir: string): Promise<void> };
  /** The orchestrator must start the AWS stand-ins (BenchContext.aws) for it. */
  needsAws?: boolean;
  prepare(ctx: BenchContext, runDir: string): Promise<PreparedRun>;
}

export const baseEnv = (): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH,
  HOME: process.env.HOME,
  AWS_EC2_METADATA_DISABLED: 'true',
});

function lastJsonLine(stdout: string): Record<string, unknown> {
  const line = stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as Record<string, unknown>;
}

/**
 * A row that reads every message and hashes it, storing nothing: a script in dist/bench/ taking
 * the connection facts, printing one JSON line with messages, transferSeconds and digest.
 */
function readerTool(name: string, script: string): BenchTool {
  return {
    name,
    workloads: ['a', 'a20k', 'b', 'c', 'd'],
    withLatency: true,
    storesLocally: false,
    prepare: async (ctx) => ({
      command: process.execPath,
      args: [
        join(ctx.root, 'dist/bench', script),
        '--host', ctx.host,
        '--port', String(ctx.port),
        '--user', ctx.user,
        '--ca', ctx.caPath,
        '--servername', ctx.servername,
      ],
      env: { ...baseEnv(), POPDRAIN_BENCH_PASSWORD: ctx.password },
      parse: (stdout) => {
        const r = lastJsonLine(stdout);
        return { messages: Number(r.messages), transferSeconds: Number(r.transferSeconds), digest: r.digest };
      },
    }),
  };
}

/** The POP3 client alone: stream every message into a hashing sink. */
const popdrainClient = readerTool('popdrain', 'pop3-worker.js');

/**
 * mpop's rc file: its default settings, except what the bench needs: implicit TLS on the
 * Dovecot port with its CA (`tls_starttls off`, `tls_trust_file`, `tls_host_override`), `keep on`
 * (the mailbox is drained again by every run; mpop's default deletes), and the run's own
 * `uidls_file` and `delivery maildir`. Pipelining, `auth` and `only_new` are left at their
 * defaults (`auto`, `auto`, `on`): with a fresh uidls file every message is new.
 */
export async function writeMpopRc(ctx: BenchContext, dir: string): Promise<{ rc: string; maildir: string }> {
  const maildir = join(dir, 'Maildir');
  for (const sub of ['cur', 'new', 'tmp']) await mkdir(join(maildir, sub), { recursive: true });
  const rc = join(dir, 'mpoprc');
  await writeFile(
    rc,
    [
      'defaults',
      'tls on',
      'tls_starttls off',
      `tls_trust_file ${ctx.caPath}`,
      `tls_host_override ${ctx.servername}`,
      'keep on',
      `uidls_file ${join(dir, 'uidls')}`,
      `delivery maildir ${maildir}`,
      '',
      'account bench',
      `host ${ctx.host}`,
      `port ${ctx.port}`,
      `user ${ctx.user}`,
      `password ${ctx.password}`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  await chmod(rc, 0o600);
  return { rc, maildir };
}

/** Messages in a maildir (new/ and cur/). */
export async function maildirCount(maildir: string): Promise<number> {
  return (await readdir(join(maildir, 'new'))).length + (await readdir(join(maildir, 'cur'))).length;
}

/** mpop 1.4 with its default settings (see writeMpopRc), delivering to a fresh maildir. */
const mpop: BenchTool = {
  name: 'mpop',
  workloads: ['a', 'a20k', 'b', 'c', 'd'],
  withLatency: true,
  storesLocally: true,
  prepare: async (ctx, runDir) => {
    const { rc, maildir } = await writeMpopRc(ctx, runDir);
    return {
      command: 'mpop',
      args: ['-q', '-C', rc, 'bench'],
      env: baseEnv(),
      parse: async () => ({ messages: await maildirCount(maildir) }),
    };
  },
};

/**
 * The `node-floor` row: bench/node-floor.ts, a minimal pipelined reader on plain node:tls
 * (USER/PASS, UIDL + LIST, RETRs in a window of 512, sha256 per body, nothing stored).
 */
const nodeFloor = readerTool('node-floor', 'node-floor.js');

function drainWorkerArgs(ctx: BenchContext, mailboxId: string): string[] {
  return [
    join(ctx.root, 'dist/bench/drain-worker.js'),
    '--mailbox-id', mailboxId,
    '--host', ctx.host,
    '--port', String(ctx.port),
    '--user', ctx.user,
    '--ca', ctx.caPath,
    '--servername', ctx.servername,
  ];
}

function awsWorkerArgs(aws: BenchAwsServices, s3Endpoint: string, bucket: string, spoolDir: string, dynamodbEndpoint = aws.dynamodbEndpoint): string[] {
  return [
    '--adapters', 'aws',
    '--region', aws.region,
    '--s3-endpoint', s3Endpoint,
    '--bucket', bucket,
    '--dynamodb-endpoint', dynamodbEndpoint,
    '--table', aws.table,
    '--events-endpoint', aws.eventsEndpoint,
    '--bus', aws.bus,
    '--spool-dir', spoolDir,
  ];
}

function awsWorkerEnv(ctx: BenchContext, aws: BenchAwsServices): NodeJS.ProcessEnv {
  return {
    ...baseEnv(),
    POPDRAIN_BENCH_PASSWORD: ctx.password,
    POPDRAIN_BENCH_AWS_ACCESS_KEY_ID: aws.accessKeyId,
    POPDRAIN_BENCH_AWS_SECRET_ACCESS_KEY: aws.secretAccessKey,
  };
}

function drainResult(stdout: string): ToolResult {
  const r = lastJsonLine(stdout);
  return {
    messages: Number(r.messages),
    ...(typeof r.transferSeconds === 'number' ? { transferSeconds: r.transferSeconds } : {}),
    announced: r.announced,
    ...(r.requests === undefined ? {} : { requests: r.requests }),
  };
}

/**
 * An AWS row's run, told on stderr beside the orchestrator's line: HTTP requests per message by
 * service (the worker counts them), and the CPU the stand-ins' process used during the run.
 */
function logAwsRun(tool: string, result: ToolResult, standinsCpuSeconds: number): void {
  const requests = (result.requests ?? {}) as Record<string, number>;
  const perMessage = Object.entries(requests)
    .map(([service, n]) => `${service} ${(n / Math.max(1, result.messages)).toFixed(2)}`)
    .join(', ');
  process.stderr.write(`    ${tool}: requests per message: ${perMessage}; stand-ins' CPU ${standinsCpuSeconds.toFixed(2)} s\n`);
}

/**
 * The whole drain (drainMailbox) into the local adapters: a fresh output folder per run, so
 * every message is new (stored with fsync, recorded in the ledger, announced in events.jsonl).
 * The run's figures count only if every message is on disk as a .eml file afterwards.
 */
const popdrainDrainLocal: BenchTool = {
  name: 'popdrain-drain-local',
  workloads: ['a', 'a20k', 'c'],
  withLatency: true,
  storesLocally: true,
  prepare: async (ctx, runDir) => {
    const out = join(runDir, 'out');
    const mailboxId = `bench-${ctx.workload.id}`;
    return {
      command: process.execPath,
      args: [...drainWorkerArgs(ctx, mailboxId), '--adapters', 'local', '--out', out],
      env: { ...baseEnv(), POPDRAIN_BENCH_PASSWORD: ctx.password },
      parse: async (stdout) => {
        const result = drainResult(stdout);
        const files = await emlCount(join(out, mailboxId));
        if (files !== result.messages) throw new Error(`popdrain-drain-local reported ${result.messages} messages but stored ${files}`);
        return result;
      },
    };
  },
};

/**
 * The whole drain into the AWS adapters (S3MessageStore on s3rver, DynamoDbLedger on dynalite,
 * EventBridgeSink on the recording endpoint), run by the orchestrator. A fresh mailbox id per
 * run gives fresh object keys and a fresh ledger partition, so every message is new. The
 * worker gets the endpoints, the region and fake credentials explicitly.
 */
const popdrainDrainS3: BenchTool = {
  name: 'popdrain-drain-s3',
  workloads: ['a', 'c'],
  withLatency: false,
  storesLocally: false,
  needsAws: true,
  prepare: async (ctx, runDir) => {
    const aws = ctx.aws;
    if (aws === undefined) throw new Error('popdrain-drain-s3 needs the AWS stand-ins');
    const mailboxId = `bench-${ctx.workload.id}-${ctx.run}-${randomUUID().slice(0, 8)}`;
    const cpuBefore = await aws.standinsCpuSeconds();
    return {
      command: process.execPath,
      args: [...drainWorkerArgs(ctx, mailboxId), ...awsWorkerArgs(aws, aws.s3Endpoint, aws.bucket, runDir)],
      env: awsWorkerEnv(ctx, aws),
      parse: async (stdout) => {
        const result = drainResult(stdout);
        result.standinsCpuSeconds = (await aws.standinsCpuSeconds()) - cpuBefore;
        logAwsRun('popdrain-drain-s3', result, result.standinsCpuSeconds as number);
        const objects = await aws.countObjects(mailboxId);
        const events = await aws.countStoredEvents(mailboxId);
        if (objects !== result.messages || events !== result.messages) {
          throw new Error(`popdrain-drain-s3 reported ${result.messages} messages but stored ${objects} objects and announced ${events}`);
        }
        return result;
      },
    };
  },
};

/**
 * The command-line tool as a user runs it: `popdrain drain pop3s://USER@HOST:PORT --out DIR`
 * (dist/cli/main.js, the whole process timed from spawn to exit), into a fresh output folder
 * per run, so every message is new. The password comes from POPDRAIN_PASSWORD. The run counts
 * only if the JSON report says it completed and every message is on disk as a .eml file.
 */
const popdrainCli: BenchTool = {
  name: 'popdrain-cli',
  workloads: ['a', 'a20k', 'b', 'c'],
  withLatency: true,
  storesLocally: true,
  prepare: async (ctx, runDir) => {
    const out = join(runDir, 'out');
    const mailboxId = `bench-cli-${ctx.workload.id}`;
    return {
      ...cliDrainCommand(ctx, out, mailboxId),
      parse: async (stdout) => {
        const report = parseCliReport(stdout);
        const files = await emlCount(join(out, mailboxId));
        if (files !== report.fetched) throw new Error(`popdrain-cli reported ${report.fetched} messages but stored ${files}`);
        return { messages: report.fetched, announced: report.announced };
      },
    };
  },
};

/**
 * `popdrain drain pop3s://USER@HOST:PORT --out OUT --id ID --json --quiet`, password in the
 * environment. dist/cli/main.js runs as a program, through its shebang (and the node flags
 * there), as npm's bin link and `npx popdrain` run it.
 */
export function cliDrainCommand(ctx: BenchContext, out: string, mailboxId: string): Pick<PreparedRun, 'command' | 'args' | 'env'> {
  return {
    command: join(ctx.root, 'dist/cli/main.js'),
    args: [
      'drain',
      `pop3s://${encodeURIComponent(ctx.user)}@${ctx.host}:${ctx.port}`,
      '--ca', ctx.caPath,
      '--servername', ctx.servername,
      '--id', mailboxId,
      '--out', out,
      '--json',
      '--quiet',
    ],
    env: { ...baseEnv(), POPDRAIN_PASSWORD: ctx.password },
  };
}

export interface CliReport {
  fetched: number;
  fetchedBytes: number;
  alreadyKnown: number;
  announced: number;
  stopReason: string;
  ok: boolean;
}

/** The CLI's JSON report; throws unless the run completed cleanly. */
export function parseCliReport(stdout: string): CliReport {
  const report = JSON.parse(stdout) as CliReport;
  if (report.stopReason !== 'complete' || !report.ok) throw new Error(`popdrain-cli stopped: ${report.stopReason}`);
  return report;
}

/** .eml files in a folder. */
export async function emlCount(dir: string): Promise<number> {
  return (await readdir(dir)).filter((n) => n.endsWith('.eml')).length;
}

/**
 * The whole drain into the AWS adapters with S3 at real latency: S3MessageStore on the
 * in-memory endpoint that answers every request after 20 ms (testkit/aws/s3-latency-endpoint.ts),
 * the ledger on the in-memory DynamoDB endpoint that answers after 5 ms
 * (testkit/aws/dynamodb-memory.ts; on dynalite the row measured dynalite's ~60 writes a second)
 * and the events on the recording endpoint.
 * Each run also tells its requests per message and the stand-ins' CPU on stderr.
 * Rows (a)+5 ms and (b). Objects are checked, then forgotten to bound the endpoint's memory.
 */
const popdrainDrainS3Latency: BenchTool = {
  name: 'popdrain-drain-s3-latency',
  workloads: ['a', 'b'],
  withLatency: true,
  rows: ['a+5ms', 'b'],
  storesLocally: false,
  needsAws: true,
  prepare: async (ctx, runDir) => {
    const aws = ctx.aws;
    if (aws === undefined) throw new Error('popdrain-drain-s3-latency needs the AWS stand-ins');
    const mailboxId = `bench-lat-${ctx.workload.id}-${ctx.run}-${randomUUID().slice(0, 8)}`;
    const cpuBefore = await aws.standinsCpuSeconds();
    return {
      command: process.execPath,
      args: [...drainWorkerArgs(ctx, mailboxId), ...awsWorkerArgs(aws, aws.s3LatencyEndpoint, aws.latencyBucket, runDir, aws.latencyDynamodbEndpoint)],
      env: awsWorkerEnv(ctx, aws),
      parse: async (stdout) => {
        const result = drainResult(stdout);
        result.standinsCpuSeconds = (await aws.standinsCpuSeconds()) - cpuBefore;
        logAwsRun('popdrain-drain-s3-latency', result, result.standinsCpuSeconds as number);
        const objects = await aws.countLatencyObjects(mailboxId);
        const events = await aws.countStoredEvents(mailboxId);
        if (objects !== result.messages || events !== result.messages) {
          throw new Error(`popdrain-drain-s3-latency reported ${result.messages} messages but stored ${objects} objects and announced ${events}`);
        }
        return result;
      },
      cleanup: async () => aws.forgetLatencyObjects(mailboxId),
    };
  },
};

export const benchTools: BenchTool[] = [nodeFloor, popdrainClient, mpop, popdrainDrainLocal, popdrainCli, popdrainDrainS3, popdrainDrainS3Latency];
