/** The tools the benchmark measures, each as a command to run in a fresh process. */
import { randomUUID } from 'node:crypto';
import { chmod, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Workload } from './workloads.js';

/**
 * The loopback AWS stand-ins the orchestrator starts once (s3rver in a child process, dynalite
 * and the recording EventBridge endpoint in the orchestrator) and keeps across runs. Never in
 * the measured process.
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
  /** `Email Stored` events the endpoint accepted for a mailbox. */
  countStoredEvents(mailboxId: string): number;
}

export interface BenchContext {
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
  /** The orchestrator must start the AWS stand-ins (BenchContext.aws) for it. */
  needsAws?: boolean;
  prepare(ctx: BenchContext, runDir: string): Promise<PreparedRun>;
}

const baseEnv = (): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH,
  HOME: process.env.HOME,
  AWS_EC2_METADATA_DISABLED: 'true',
});

function lastJsonLine(stdout: string): Record<string, unknown> {
  const line = stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as Record<string, unknown>;
}

/** The POP3 client alone: stream every message into a hashing sink. */
const popdrainClient: BenchTool = {
  name: 'popdrain',
  workloads: ['a', 'b', 'c', 'd'],
  withLatency: true,
  prepare: async (ctx) => ({
    command: process.execPath,
    args: [
      join(ctx.root, 'dist/bench/pop3-worker.js'),
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

/** mpop 1.4 with pipelining, delivering to a maildir; a fresh UIDL file per run. */
const mpop: BenchTool = {
  name: 'mpop',
  workloads: ['a', 'b', 'c', 'd'],
  withLatency: true,
  prepare: async (ctx, runDir) => {
    const maildir = join(runDir, 'Maildir');
    for (const sub of ['cur', 'new', 'tmp']) await mkdir(join(maildir, sub), { recursive: true });
    const rc = join(runDir, 'mpoprc');
    await writeFile(
      rc,
      [
        'defaults',
        'tls on',
        'tls_starttls off',
        `tls_trust_file ${ctx.caPath}`,
        `tls_host_override ${ctx.servername}`,
        'pipelining on',
        'auth user',
        'keep on',
        'only_new off',
        `uidls_file ${join(runDir, 'uidls')}`,
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
    return {
      command: 'mpop',
      args: ['-q', '-C', rc, 'bench'],
      env: baseEnv(),
      parse: async () => {
        const n = (await readdir(join(maildir, 'new'))).length + (await readdir(join(maildir, 'cur'))).length;
        return { messages: n };
      },
    };
  },
};

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

function drainResult(stdout: string): ToolResult {
  const r = lastJsonLine(stdout);
  return {
    messages: Number(r.messages),
    ...(typeof r.transferSeconds === 'number' ? { transferSeconds: r.transferSeconds } : {}),
    announced: r.announced,
  };
}

/**
 * The whole drain (drainMailbox) into the local adapters: a fresh output folder per run, so
 * every message is new (stored with fsync, recorded in the ledger, announced in events.jsonl).
 * The run's figures count only if every message is on disk as a .eml file afterwards.
 */
const popdrainDrainLocal: BenchTool = {
  name: 'popdrain-drain-local',
  workloads: ['a', 'c'],
  withLatency: false,
  prepare: async (ctx, runDir) => {
    const out = join(runDir, 'out');
    const mailboxId = `bench-${ctx.workload.id}`;
    return {
      command: process.execPath,
      args: [...drainWorkerArgs(ctx, mailboxId), '--adapters', 'local', '--out', out],
      env: { ...baseEnv(), POPDRAIN_BENCH_PASSWORD: ctx.password },
      parse: async (stdout) => {
        const result = drainResult(stdout);
        const files = (await readdir(join(out, mailboxId))).filter((n) => n.endsWith('.eml')).length;
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
  needsAws: true,
  prepare: async (ctx, runDir) => {
    const aws = ctx.aws;
    if (aws === undefined) throw new Error('popdrain-drain-s3 needs the AWS stand-ins');
    const mailboxId = `bench-${ctx.workload.id}-${ctx.run}-${randomUUID().slice(0, 8)}`;
    return {
      command: process.execPath,
      args: [
        ...drainWorkerArgs(ctx, mailboxId),
        '--adapters', 'aws',
        '--region', aws.region,
        '--s3-endpoint', aws.s3Endpoint,
        '--bucket', aws.bucket,
        '--dynamodb-endpoint', aws.dynamodbEndpoint,
        '--table', aws.table,
        '--events-endpoint', aws.eventsEndpoint,
        '--bus', aws.bus,
        '--spool-dir', runDir,
      ],
      env: {
        ...baseEnv(),
        POPDRAIN_BENCH_PASSWORD: ctx.password,
        POPDRAIN_BENCH_AWS_ACCESS_KEY_ID: aws.accessKeyId,
        POPDRAIN_BENCH_AWS_SECRET_ACCESS_KEY: aws.secretAccessKey,
      },
      parse: async (stdout) => {
        const result = drainResult(stdout);
        const objects = await aws.countObjects(mailboxId);
        const events = aws.countStoredEvents(mailboxId);
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
  workloads: ['a'],
  withLatency: false,
  prepare: async (ctx, runDir) => {
    const out = join(runDir, 'out');
    const mailboxId = `bench-cli-${ctx.workload.id}`;
    return {
      command: process.execPath,
      args: [
        join(ctx.root, 'dist/cli/main.js'),
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
      parse: async (stdout) => {
        const report = JSON.parse(stdout) as { fetched: number; fetchedBytes: number; announced: number; stopReason: string; ok: boolean };
        if (report.stopReason !== 'complete' || !report.ok) throw new Error(`popdrain-cli stopped: ${report.stopReason}`);
        const files = (await readdir(join(out, mailboxId))).filter((n) => n.endsWith('.eml')).length;
        if (files !== report.fetched) throw new Error(`popdrain-cli reported ${report.fetched} messages but stored ${files}`);
        return { messages: report.fetched, announced: report.announced };
      },
    };
  },
};

export const benchTools: BenchTool[] = [popdrainClient, mpop, popdrainDrainLocal, popdrainDrainS3, popdrainCli];
