/**
 * `npm run bench`: drain a local Dovecot over implicit TLS with popdrain and with mpop, each
 * measurement in a fresh process, alternating tools, three runs each, reporting the median.
 *
 *   npm run bench                 a table
 *   npm run bench -- --json       one JSON object per row, nothing else on stdout
 *   npm run bench -- --only a,c   only the named workloads
 *   npm run bench -- --runs 5     runs per tool and row (default 3)
 *
 * Workloads: (a) 2,000 x 4 KB, (b) 200 x 100 KB, (c) one 50 MB message, (d) one 200 MB
 * message; (a) and (b) again through a loopback proxy adding 5 ms each way.
 * Figures: `seconds` is the whole process's wall time, spawn to exit; `peakRssMb` the
 * process's maximum resident set (GNU time); MB = 10^6 bytes. Each run writes into a fresh
 * folder of its own; all are removed at the end, never between measurements.
 *
 * Tools: `popdrain` (the POP3 client alone, into a hashing sink), `mpop`, and the whole drain
 * (`popdrain-drain-local`: drainMailbox into the local adapters; `popdrain-drain-s3`: into the
 * AWS adapters against s3rver, dynalite and a recording EventBridge endpoint, which this
 * process starts once and keeps across runs: s3rver in a child process, the other two here,
 * never in the measured process), and `popdrain-cli`: the command-line tool itself
 * (`popdrain drain pop3s://... --out DIR`, dist/cli/main.js) into a fresh output folder.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ListObjectsCommand } from '@aws-sdk/client-s3';
import { startAwsJsonEndpoint } from '../test/support/aws-json-endpoint.js';
import { startDynalite, startS3rver } from '../test/support/aws-standins.js';
import { startDovecot, type Dovecot } from '../test/support/dovecot.js';
import { startLatencyProxy, type LatencyProxy } from './latency-proxy.js';
import { benchTools, type BenchAwsServices, type BenchContext, type BenchTool, type ToolResult } from './tools.js';
import { makeCorpus, WORKLOADS, type Workload } from './workloads.js';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    only: { type: 'string' },
    runs: { type: 'string', default: '3' },
    tools: { type: 'string' },
  },
});

const json = values.json;
const runs = Math.max(1, Number(values.runs));
const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

interface Row {
  workload: string;
  latencyMs: number;
  tool: string;
  messages: number;
  bytes: number;
  seconds: number;
  msgsPerSec: number;
  mbPerSec: number;
  peakRssMb: number;
  transferMbPerSec?: number;
  runs: number;
  ratioToMpop?: { msgsPerSec: number; mbPerSec: number; transferMbPerSec?: number };
  [extra: string]: unknown;
}

interface Measurement extends ToolResult {
  seconds: number;
  peakRssMb: number;
}

const GNU_TIME = '/usr/bin/time';

function ensureDebianPackage(binary: string, pkg: string): boolean {
  if (spawnSync('sh', ['-c', `command -v ${binary}`]).status === 0) return true;
  if (process.getuid?.() !== 0) return false;
  log(`installing ${pkg} ...`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', pkg], { stdio: 'ignore', env });
  if (r.status !== 0) {
    spawnSync('apt-get', ['update'], { stdio: 'ignore', env });
    r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', pkg], { stdio: 'ignore', env });
  }
  return r.status === 0;
}

/** Run one command in a fresh process under GNU time; wall time measured here, spawn to exit. */
async function measure(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  cwd: string,
): Promise<{ seconds: number; peakRssMb: number; stdout: string }> {
  const timeFile = join(tmpdir(), `popdrain-bench-time-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const started = process.hrtime.bigint();
  const child = spawn(GNU_TIME, ['-f', '%M', '-o', timeFile, command, ...args], {
    env,
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d));
  const closed = new Promise((r) => child.on('close', r));
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await closed;
  const rssKb = Number((await readFile(timeFile, 'utf8')).trim().split('\n').pop());
  await rm(timeFile, { force: true });
  if (code !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited ${code}: ${Buffer.concat(err).toString().slice(-2000)}`);
  }
  return { seconds, peakRssMb: rssKb / 1024, stdout: Buffer.concat(out).toString() };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const round = (n: number, digits = 2): number => Number(n.toFixed(digits));

const AWS_REGION = 'us-east-1';
/** s3rver accepts only its own pair; dynalite and the JSON endpoint accept any. Fake either way. */
const AWS_FAKE_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
const BENCH_BUCKET = 'popdrain-bench';
const BENCH_TABLE = 'popdrain-bench-ledger';
const BENCH_BUS = 'popdrain-bench-bus';
/** The S3 store's default key prefix. */
const S3_PREFIX = 'messages/';

/** The AWS stand-ins on loopback, started once for every run that needs them. */
async function startAwsServices(): Promise<{ services: BenchAwsServices; stop(): Promise<void> }> {
  const s3 = await startS3rver();
  const dynamodb = await startDynalite().catch(async (error: unknown) => {
    await s3.stop();
    throw error;
  });
  const events = await startAwsJsonEndpoint().catch(async (error: unknown) => {
    await Promise.all([s3.stop(), dynamodb.stop()]);
    throw error;
  });
  const stop = async (): Promise<void> => {
    await Promise.all([s3.stop(), dynamodb.stop(), events.close()]);
  };
  try {
    await s3.createBucket(BENCH_BUCKET);
    await dynamodb.createLedgerTable(BENCH_TABLE);
  } catch (error) {
    await stop();
    throw error;
  }
  const lister = s3.client();
  const services: BenchAwsServices = {
    region: AWS_REGION,
    ...AWS_FAKE_CREDENTIALS,
    s3Endpoint: s3.endpoint,
    bucket: BENCH_BUCKET,
    dynamodbEndpoint: dynamodb.endpoint,
    table: BENCH_TABLE,
    eventsEndpoint: events.url,
    bus: BENCH_BUS,
    countObjects: async (mailboxId) => {
      // ListObjects (v1) with the last key as the marker: s3rver 3.7 answers ListObjectsV2 with
      // an InternalError once a listing needs a continuation token.
      let count = 0;
      let marker: string | undefined;
      for (;;) {
        const page = await lister.send(new ListObjectsCommand({ Bucket: BENCH_BUCKET, Prefix: `${S3_PREFIX}${mailboxId}/`, Marker: marker }));
        const contents = page.Contents ?? [];
        count += contents.length;
        if (page.IsTruncated !== true || contents.length === 0) return count;
        marker = contents.at(-1)!.Key;
      }
    },
    countStoredEvents: (mailboxId) =>
      events
        .putEventsBatches()
        .flat()
        .filter((e) => e.DetailType === 'Email Stored' && (JSON.parse(e.Detail ?? '{}') as { mailboxId?: string }).mailboxId === mailboxId)
        .length,
  };
  return { services, stop };
}

function printRow(row: Row): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(row)}\n`);
    return;
  }
  const cols = [
    `${row.workload}${row.latencyMs > 0 ? `+${row.latencyMs}ms` : ''}`.padEnd(9),
    row.tool.padEnd(22),
    String(row.messages).padStart(6),
    row.seconds.toFixed(3).padStart(8),
    row.msgsPerSec.toFixed(0).padStart(9),
    row.mbPerSec.toFixed(1).padStart(8),
    row.peakRssMb.toFixed(1).padStart(8),
    (row.transferMbPerSec === undefined ? '' : row.transferMbPerSec.toFixed(1)).padStart(10),
    row.ratioToMpop === undefined
      ? ''
      : `  x${row.ratioToMpop.msgsPerSec.toFixed(2)} msg/s` +
        (row.ratioToMpop.transferMbPerSec === undefined ? '' : `, x${row.ratioToMpop.transferMbPerSec.toFixed(2)} transfer MB/s`),
  ];
  process.stdout.write(`${cols.join(' ')}\n`);
}

async function main(): Promise<void> {
  if (!ensureDebianPackage(GNU_TIME, 'time')) throw new Error('GNU time (/usr/bin/time) is needed: apt-get install time');
  const haveMpop = ensureDebianPackage('mpop', 'mpop');
  if (!haveMpop) log('mpop is not installed and cannot be installed here: mpop rows are left out');

  const only = values.only?.split(',').map((s) => s.trim()) ?? ['a', 'b', 'c', 'd'];
  const workloads = WORKLOADS.filter((w) => only.includes(w.id));
  const toolFilter = values.tools?.split(',');
  const tools = benchTools.filter(
    (t) => (t.name !== 'mpop' || haveMpop) && (toolFilter === undefined || toolFilter.includes(t.name)),
  );

  const scratch = await mkdtemp(join(tmpdir(), 'popdrain-bench-'));
  let dovecot: Dovecot | undefined;
  let aws: Awaited<ReturnType<typeof startAwsServices>> | undefined;
  const proxies: LatencyProxy[] = [];
  try {
    if (tools.some((t) => t.needsAws === true && workloads.some((w) => t.workloads.includes(w.id)))) {
      log('starting the AWS stand-ins (s3rver, dynalite, EventBridge endpoint) ...');
      aws = await startAwsServices();
    }
    log('starting Dovecot ...');
    dovecot = await startDovecot();
    const password = 'bench-password';
    for (const w of workloads) {
      const user = `bench-${w.id}`;
      await dovecot.addUser(user, password);
      log(`delivering workload ${w.id}: ${w.description} ...`);
      await dovecot.deliverMany(user, makeCorpus(w));
    }
    const servedHost = dovecot.host;
    const ctxBase = {
      host: servedHost,
      caPath: dovecot.pki.caCertPath,
      servername: 'localhost',
      password,
      scratch,
      root: new URL('../', import.meta.url).pathname.replace(/\/dist\/$/, '/'),
      ...(aws === undefined ? {} : { aws: aws.services }),
    };

    if (!json) {
      process.stdout.write(
        `${'workload'.padEnd(9)} ${'tool'.padEnd(22)} ${'msgs'.padStart(6)} ${'seconds'.padStart(8)} ${'msg/s'.padStart(9)} ${'MB/s'.padStart(8)} ${'RSS MB'.padStart(8)} ${'xfer MB/s'.padStart(10)}\n`,
      );
    }

    const rows: Array<{ w: Workload; latencyMs: number }> = [];
    for (const w of workloads) {
      rows.push({ w, latencyMs: 0 });
    }
    for (const w of workloads) if (w.withLatency) rows.push({ w, latencyMs: 5 });

    for (const { w, latencyMs } of rows) {
      let port = dovecot.ports.pop3s;
      if (latencyMs > 0) {
        const proxy = await startLatencyProxy(servedHost, dovecot.ports.pop3s, latencyMs);
        proxies.push(proxy);
        port = proxy.port;
      }
      const rowTools = tools.filter((t) => t.workloads.includes(w.id) && (latencyMs === 0 || t.withLatency));
      const results = new Map<BenchTool, Measurement[]>();
      for (let i = 0; i < runs; i++) {
        for (const tool of rowTools) {
          const ctx: BenchContext = { ...ctxBase, port, user: `bench-${w.id}`, workload: w, run: i };
          const runDir = await mkdtemp(join(scratch, `${tool.name}-`));
          const prepared = await tool.prepare(ctx, runDir);
          const m = await measure(prepared.command, prepared.args, prepared.env, runDir);
          const parsed = await prepared.parse(m.stdout);
          if (parsed.messages !== w.count) {
            throw new Error(`${tool.name} on ${w.id} drained ${parsed.messages} messages, expected ${w.count}`);
          }
          await prepared.cleanup?.();
          // Run folders are removed with the scratch folder at the end, not here: on a file system
          // that skips recently deleted inodes when it allocates (ext4 without a journal), removing
          // 2,000 files now would tax every file the next tool's run creates.
          const list = results.get(tool) ?? [];
          list.push({ ...parsed, seconds: m.seconds, peakRssMb: m.peakRssMb });
          results.set(tool, list);
          log(`  ${w.id}${latencyMs ? `+${latencyMs}ms` : ''} ${tool.name} run ${i + 1}: ${m.seconds.toFixed(3)} s, ${m.peakRssMb.toFixed(1)} MB`);
        }
      }
      const summary = new Map<string, Row>();
      for (const [tool, ms] of results) {
        const seconds = median(ms.map((m) => m.seconds));
        const bytes = w.servedBytes;
        const row: Row = {
          workload: w.id,
          latencyMs,
          tool: tool.name,
          messages: w.count,
          bytes,
          seconds: round(seconds, 3),
          msgsPerSec: round(w.count / seconds, 1),
          mbPerSec: round(bytes / 1e6 / seconds, 1),
          peakRssMb: round(median(ms.map((m) => m.peakRssMb)), 1),
          runs: ms.length,
        };
        const transfers = ms.map((m) => m.transferSeconds).filter((t): t is number => t !== undefined);
        if (transfers.length === ms.length && w.reportTransfer) {
          row.transferMbPerSec = round(bytes / 1e6 / median(transfers), 1);
        }
        summary.set(tool.name, row);
      }
      const mpop = summary.get('mpop');
      for (const row of summary.values()) {
        if (mpop !== undefined && row.tool !== 'mpop') {
          row.ratioToMpop = {
            msgsPerSec: round(row.msgsPerSec / mpop.msgsPerSec, 2),
            mbPerSec: round(row.mbPerSec / mpop.mbPerSec, 2),
          };
          if (row.transferMbPerSec !== undefined) {
            row.ratioToMpop.transferMbPerSec = round(row.transferMbPerSec / mpop.mbPerSec, 2);
          }
        }
        printRow(row);
      }
    }
  } finally {
    for (const p of proxies) await p.close();
    await dovecot?.stop();
    await aws?.stop();
    await rm(scratch, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  log(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exit(1);
});
