/** The tools the benchmark measures, each as a command to run in a fresh process. */
import { chmod, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Workload } from './workloads.js';

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

/** Later issues append their rows (the drain with local and S3 adapters, the CLI) here. */
export const benchTools: BenchTool[] = [popdrainClient, mpop];
