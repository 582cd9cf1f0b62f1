/**
 * `npm run bench`: drain a local Dovecot over implicit TLS with popdrain, with mpop and with a
 * bare Node.js reader, each measurement in a fresh process, tools and media alternating, three
 * runs each, reporting the median.
 *
 *   npm run bench                          a table
 *   npm run bench -- --json                one JSON object per row, nothing else on stdout
 *   npm run bench -- --only a,a20k-rerun   only the named rows' workloads (ids below)
 *   npm run bench -- --runs 5              runs per tool, medium and row (default 3)
 *   npm run bench -- --medium tmpfs        where the storing tools write: tmpfs, disk or both
 *   npm run bench -- --tools mpop,popdrain-cli   only these tools
 *
 * Workloads: (a) 2,000 x 4 KB, (a20k) 20,000 x 4 KB, (b) 200 x 100 KB, (c) one 50 MB message,
 * (d) one 200 MB message; (a) and (b) again through a loopback proxy adding 5 ms each way; and
 * `a20k-rerun` (or `a-rerun`): a rerun with nothing new on the kept mailbox of that workload.
 * Default: a, a20k, a20k-rerun, b, c, d.
 *
 * Media: every storing row (mpop, popdrain-drain-local, popdrain-cli, and the rerun rows) writes
 * into a fresh folder under /dev/shm (`tmpfs`) or under the disk's temp dir (`disk`); with
 * `--medium both` (the default) both media are measured in every run, their order alternating
 * from run to run. Rows that store nothing locally say `none`. tmpfs run folders are removed
 * right after their run; disk run folders stay until the end (on ext4 without a journal,
 * removing 20,000 files taxes the files the next run creates).
 *
 * Figures: `seconds` is the whole process's wall time, spawn to exit; `peakRssMb`,
 * `userCpuSeconds` and `sysCpuSeconds` come from GNU time for the measured process (bench/measure.ts);
 * MB = 10^6 bytes. `timeToMpop` is seconds over mpop's on the same medium (for `none` rows,
 * mpop on tmpfs); `timeToFloor` is seconds over the node-floor row's.
 *
 * Tools (rows):
 * - `node-floor`: bench/node-floor.ts, a minimal pipelined reader on plain node:tls (USER/PASS,
 *   UIDL + LIST, RETRs in a window of 512, sha256 per body, nothing stored): Node's own floor.
 * - `popdrain`: the POP3 client alone, into a hashing sink (bench/pop3-worker.ts).
 * - `mpop`: mpop 1.4 with its default settings (pipelining, auth and only_new on auto/auto/on)
 *   except `keep on`, implicit TLS and the run's own uidls file and maildir (bench/tools.ts).
 * - `popdrain-drain-local`: drainMailbox into the local adapters (bench/drain-worker.ts).
 * - `popdrain-cli`: `popdrain drain pop3s://... --out DIR` (dist/cli/main.js), as a user runs it.
 * - `popdrain-drain-s3`: drainMailbox into the AWS adapters against s3rver, dynalite and a
 *   recording EventBridge endpoint: it measures s3rver as much as popdrain.
 * - `popdrain-drain-s3-latency`: the same with S3 on an in-memory endpoint that answers every
 *   request after 20 ms (testkit/aws/s3-latency-endpoint.ts); rows (a)+5 ms and (b).
 * - In `-rerun` rows, `mpop` (only_new on, its uidls file written by its own first run) and
 *   `popdrain-cli` (same --out and --id as its first run): the first drain of each is done once
 *   per medium, unmeasured; every measured run must find nothing new.
 * The AWS stand-ins run in this process (s3rver in a child), never in the measured process.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startDovecot, type Dovecot } from '../testkit/pop3-servers/dovecot.js';
import { startAwsServices } from './aws-services.js';
import { startLatencyProxy, type LatencyProxy } from './latency-proxy.js';
import { GNU_TIME, measure } from './measure.js';
import { rerunTools } from './rerun-tools.js';
import { formatRow, summarise, TABLE_HEADER, type Measurement, type ToolRuns } from './table.js';
import { benchTools, type BenchContext, type BenchTool, type Medium } from './tools.js';
import { makeCorpus, WORKLOADS, type Workload } from './workloads.js';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    only: { type: 'string' },
    runs: { type: 'string', default: '3' },
    tools: { type: 'string' },
    medium: { type: 'string', default: 'both' },
  },
});

const json = values.json;
const runs = Math.max(1, Number(values.runs));
const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};
const TMPFS_ROOT = '/dev/shm';
const RERUN_SUFFIX = '-rerun';

function mediaFrom(option: string): Medium[] {
  if (option === 'both') return ['tmpfs', 'disk'];
  if (option === 'tmpfs' || option === 'disk') return [option];
  throw new Error(`--medium is tmpfs, disk or both, not "${option}"`);
}

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

interface PlannedRow {
  w: Workload;
  latencyMs: number;
  rerun: boolean;
  label: string;
  tools: BenchTool[];
}

function planRows(ids: string[], tools: BenchTool[], reruns: BenchTool[]): PlannedRow[] {
  const rows: PlannedRow[] = [];
  const add = (w: Workload, latencyMs: number, rerun: boolean): void => {
    const label = rerun ? `${w.id}${RERUN_SUFFIX}` : `${w.id}${latencyMs > 0 ? `+${latencyMs}ms` : ''}`;
    const chosen = (rerun ? reruns : tools).filter(
      (t) => t.workloads.includes(w.id) && (latencyMs === 0 || t.withLatency) && (t.rows === undefined || t.rows.includes(label)),
    );
    if (chosen.length > 0) rows.push({ w, latencyMs, rerun, label, tools: chosen });
  };
  for (const w of WORKLOADS) if (ids.includes(w.id)) add(w, 0, false);
  for (const w of WORKLOADS) if (ids.includes(`${w.id}${RERUN_SUFFIX}`)) add(w, 0, true);
  for (const w of WORKLOADS) if (ids.includes(w.id) && w.withLatency) add(w, 5, false);
  return rows;
}

async function main(): Promise<void> {
  if (!ensureDebianPackage(GNU_TIME, 'time')) throw new Error('GNU time (/usr/bin/time) is needed: apt-get install time');
  const haveMpop = ensureDebianPackage('mpop', 'mpop');
  if (!haveMpop) log('mpop is not installed and cannot be installed here: mpop rows are left out');

  const media = mediaFrom(values.medium);
  const only = values.only?.split(',').map((s) => s.trim()) ?? ['a', 'a20k', `a20k${RERUN_SUFFIX}`, 'b', 'c', 'd'];
  const toolFilter = values.tools?.split(',');
  const keep = (t: BenchTool): boolean => (t.name !== 'mpop' || haveMpop) && (toolFilter === undefined || toolFilter.includes(t.name));
  const rows = planRows(only, benchTools.filter(keep), rerunTools.filter(keep));
  const workloads = WORKLOADS.filter((w) => rows.some((r) => r.w === w));

  const scratch = await mkdtemp(join(tmpdir(), 'popdrain-bench-'));
  const roots: Record<Medium | 'none', string> = { disk: scratch, none: scratch, tmpfs: scratch };
  let dovecot: Dovecot | undefined;
  let aws: Awaited<ReturnType<typeof startAwsServices>> | undefined;
  const proxies: LatencyProxy[] = [];
  try {
    if (media.includes('tmpfs')) roots.tmpfs = await mkdtemp(join(TMPFS_ROOT, 'popdrain-bench-'));
    if (rows.some((r) => r.tools.some((t) => t.needsAws === true))) {
      log('starting the AWS stand-ins (s3rver, dynalite, EventBridge endpoint, S3 at 20 ms) ...');
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
    const ctxBase = {
      host: dovecot.host,
      caPath: dovecot.pki.caCertPath,
      servername: 'localhost',
      password,
      scratch,
      root: new URL('../', import.meta.url).pathname.replace(/\/dist\/$/, '/'),
      ...(aws === undefined ? {} : { aws: aws.services }),
    };
    if (!json) process.stdout.write(`${TABLE_HEADER}\n`);

    for (const row of rows) {
      const { w, latencyMs } = row;
      let port = dovecot.ports.pop3s;
      if (latencyMs > 0) {
        const proxy = await startLatencyProxy(dovecot.host, dovecot.ports.pop3s, latencyMs);
        proxies.push(proxy);
        port = proxy.port;
      }
      const ctxFor = (medium: BenchContext['medium'], run: number): BenchContext => ({ ...ctxBase, medium, port, user: `bench-${w.id}`, workload: w, run });

      // Rerun rows: each tool's first drain, once per medium, not measured.
      const primed = new Map<string, string>();
      if (row.rerun) {
        for (const tool of row.tools) {
          for (const medium of media) {
            const dir = await mkdtemp(join(roots[medium], `${tool.name}-rerun-`));
            log(`  ${row.label} ${tool.name} on ${medium}: first drain (not measured) ...`);
            await tool.rerun!.prime(ctxFor(medium, -1), dir);
            primed.set(`${tool.name}|${medium}`, dir);
          }
        }
      }

      const results = new Map<string, ToolRuns>();
      for (let i = 0; i < runs; i++) {
        const order = i % 2 === 0 ? media : [...media].reverse();
        for (const [k, mediumOfPass] of order.entries()) {
          for (const tool of row.tools) {
            if (!tool.storesLocally && k > 0) continue;
            const medium = tool.storesLocally ? mediumOfPass : 'none';
            const ctx = ctxFor(medium, i);
            const fresh = !row.rerun;
            const runDir = fresh ? await mkdtemp(join(roots[medium], `${tool.name}-`)) : primed.get(`${tool.name}|${medium}`)!;
            const prepared = await tool.prepare(ctx, runDir);
            const m = await measure(prepared.command, prepared.args, prepared.env, runDir);
            const parsed = await prepared.parse(m.stdout);
            const expected = row.rerun ? 0 : w.count;
            if (parsed.messages !== expected) {
              throw new Error(`${tool.name} on ${row.label} (${medium}) drained ${parsed.messages} messages, expected ${expected}`);
            }
            await prepared.cleanup?.();
            if (fresh && medium === 'tmpfs') await rm(runDir, { recursive: true, force: true });
            const key = `${tool.name}|${medium}`;
            const entry = results.get(key) ?? { tool: tool.name, medium, runs: [] as Measurement[] };
            entry.runs.push({ ...parsed, seconds: m.seconds, peakRssMb: m.peakRssMb, userCpuSeconds: m.userCpuSeconds, sysCpuSeconds: m.sysCpuSeconds });
            results.set(key, entry);
            log(
              `  ${row.label} ${medium} ${tool.name} run ${i + 1}: ${m.seconds.toFixed(3)} s, ` +
                `${m.peakRssMb.toFixed(1)} MB, user ${m.userCpuSeconds.toFixed(2)} s, sys ${m.sysCpuSeconds.toFixed(2)} s`,
            );
          }
        }
      }
      // The floor reader and popdrain's client hash the same bodies: their digests must agree.
      const digests = new Set([...results.values()].flatMap((r) => r.runs.map((m) => m.digest)).filter((d) => typeof d === 'string'));
      if (digests.size > 1) log(`  ${row.label}: the readers' digests differ (${[...digests].join(', ')})`);
      else if (digests.size === 1) log(`  ${row.label}: every reader's digest agrees`);
      const key = { label: row.rerun ? row.label : w.id, latencyMs, messages: w.count, bytes: w.servedBytes, reportTransfer: w.reportTransfer && !row.rerun };
      for (const r of summarise(key, [...results.values()])) {
        process.stdout.write(json ? `${JSON.stringify(r)}\n` : `${formatRow(r)}\n`);
      }
    }
  } finally {
    for (const p of proxies) await p.close();
    await dovecot?.stop();
    await aws?.stop();
    await rm(scratch, { recursive: true, force: true });
    if (roots.tmpfs !== scratch) await rm(roots.tmpfs, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  log(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exit(1);
});
