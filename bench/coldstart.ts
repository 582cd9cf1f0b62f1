/**
 * `npm run bench:coldstart`: the Lambda bundles' size and cold start, old and new in the same
 * run. "New" is this tree; "old" is commit 550a413, the baseline of issue 14 (or `--old-ref REF`), its
 * lambdas/ and lib/ extracted with `git archive` into a temp dir that uses this tree's
 * node_modules. Both are bundled with the construct's esbuild options
 * (infra/constructs/lambda-bundle.ts; the old one as it was: one file with a source map,
 * without the module aliases; the new one split, index.mjs and chunks/, its size given in all
 * and as read at a cold start: index.mjs and the chunks it imports statically).
 *
 * Cold start = a fresh `node` process importing the bundle with a Lambda-like environment
 * (module scope parses the environment and builds the SDK clients; no network: loopback
 * endpoints, fake credentials), then, for the drainer, its first invocation as far as it goes
 * without the network: one SQS record for a mailbox the file does not hold, so the handler
 * reads and validates the mailbox file (which the old sources did at import and the new ones
 * do on the first call), adds the Lambda context to the logger, looks the mailbox up, logs and
 * flushes its metrics. The scheduler's first invocation reads DynamoDB at once: its figure is
 * the import alone (the new one reads the mailbox file later, on that first call). Median of
 * 15 processes per bundle, old and new interleaved; wall time and the process's CPU time
 * (user + system, all threads), which a machine busy with other work inflates less.
 *
 * Figures only: nothing here passes or fails.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { LAMBDA_BUNDLE, lambdaBundleAliases } from '../infra/constructs/lambda-bundle.js';
import { readAtStart } from './bundle-files.js';

const RUNS = 15;
/** The sources issue 14 measured "today's" cold start on (1.97 MB drainer, a shipped source map). */
const ISSUE_14_BASELINE = '550a413';
const KIB = 1024;
const root = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!statSafe(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
})();

function statSafe(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i === -1 ? undefined : process.argv[i + 1];
}

async function bundle(sourceRoot: string, name: 'drainer' | 'scheduler', outDir: string, asNow: boolean): Promise<string> {
  const dir = join(outDir, name);
  const common = {
    bundle: true,
    platform: 'node' as const,
    target: 'node20',
    format: LAMBDA_BUNDLE.format,
    mainFields: [...LAMBDA_BUNDLE.mainFields],
    banner: { js: LAMBDA_BUNDLE.banner },
    minify: LAMBDA_BUNDLE.minify,
    logLevel: 'error' as const,
  };
  if (asNow) {
    // As the construct builds it (lambda-bundle.ts): split, index.mjs and chunks/.
    await build({
      ...common,
      entryPoints: { index: join(sourceRoot, 'lambdas', `${name}.ts`) },
      outdir: dir,
      outExtension: { '.js': '.mjs' },
      splitting: LAMBDA_BUNDLE.splitting,
      chunkNames: LAMBDA_BUNDLE.chunkNames,
      alias: lambdaBundleAliases(sourceRoot),
    });
  } else {
    // The old bundle as it was: one file, a source map, no aliases.
    await build({ ...common, entryPoints: [join(sourceRoot, 'lambdas', `${name}.ts`)], outfile: join(dir, 'index.mjs'), sourcemap: 'external', sourcesContent: false });
  }
  copyFileSync(join(root, 'config', 'mailboxes.json'), join(dir, 'mailboxes.json'));
  return join(dir, 'index.mjs');
}

/** Bytes of a bundle's files: all of them, and those a cold start reads (index.mjs and the chunks it imports statically). */
function bundleBytes(index: string): { total: number; atStart: number } {
  const dir = dirname(index);
  const files = [index, ...(statSafe(join(dir, 'chunks')) ? readdirSync(join(dir, 'chunks')).map((f) => join(dir, 'chunks', f)) : [])];
  const total = files.reduce((sum, f) => sum + statSync(f).size, 0);
  return { total, atStart: [...readAtStart(index)].reduce((sum, f) => sum + statSync(f).size, 0) };
}

const ENV = {
  PATH: process.env.PATH ?? '',
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'AKIDBENCHCOLDSTART',
  AWS_SECRET_ACCESS_KEY: 'bench-secret',
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
  POPDRAIN_CONFIG_PATH: 'mailboxes.json',
  POPDRAIN_LEDGER_TABLE: 'ledger',
  POPDRAIN_BUCKET: 'bucket',
  POPDRAIN_EVENT_BUS: 'bus',
  POPDRAIN_QUEUE_URL: 'http://127.0.0.1:9/000000000000/drain.fifo',
  POWERTOOLS_SERVICE_NAME: 'popdrain',
};

/** The drainer's first invocation: one record for a mailbox absent from the file (no network). */
const FIRST_DRAINER_CALL = `
const context = { awsRequestId: 'bench', functionName: 'drainer', functionVersion: '1', invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:drainer',
  memoryLimitInMB: '1024', logGroupName: 'bench', logStreamName: 'bench', callbackWaitsForEmptyEventLoop: true, getRemainingTimeInMillis: () => 600000 };
const body = JSON.stringify({ mailboxId: 'bench-not-configured', tick: new Date().toISOString() });
await module.handler({ Records: [{ messageId: 'bench', receiptHandle: 'bench', body, attributes: { ApproximateReceiveCount: '1' }, messageAttributes: {}, md5OfBody: '',
  eventSource: 'aws:sqs', eventSourceARN: 'arn:aws:sqs:us-east-1:000000000000:drain.fifo', awsRegion: 'us-east-1' }] }, context);`;

interface ColdStart {
  /** Wall milliseconds, inside the process. */
  ms: number;
  /** CPU milliseconds of the process over the same span (user + system). */
  cpuMs: number;
}

/** One fresh process: the import, then the first invocation where it needs no network. */
function coldStart(file: string, firstCall: string): ColdStart {
  const script = `const c0 = process.cpuUsage(); const t0 = performance.now(); const module = await import(${JSON.stringify(pathToFileURL(file).href)});${firstCall}
const ms = performance.now() - t0; const c = process.cpuUsage(c0); process.stderr.write('\\ncoldstart ' + JSON.stringify({ ms, cpuMs: (c.user + c.system) / 1000 }) + '\\n');`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: dirname(file), env: { ...ENV, LAMBDA_TASK_ROOT: dirname(file) }, encoding: 'utf8' });
  const line = /\ncoldstart (\{.*\})\n/.exec(r.stderr);
  if (r.status !== 0 || line === null) throw new Error(`${file}: ${r.stderr}`);
  return JSON.parse(line[1]!) as ColdStart;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  const oldRef = arg('--old-ref') ?? ISSUE_14_BASELINE;
  const work = mkdtempSync(join(tmpdir(), 'popdrain-coldstart-'));
  try {
    const oldSrc = join(work, 'old-src');
    mkdirSync(oldSrc);
    execFileSync('sh', ['-c', `git -C '${root}' archive ${oldRef} lambdas lib | tar -x -C '${oldSrc}'`]);
    symlinkSync(join(root, 'node_modules'), join(oldSrc, 'node_modules'));
    console.log(`cold start of the Lambda bundles: old = ${oldRef.slice(0, 10)}, new = this tree; median of ${RUNS} fresh processes (node ${process.version})`);
    console.log('bundle     measured            old KiB  new KiB (at start)   old ms  new ms  new/old   old CPU ms  new CPU ms  new/old');
    for (const name of ['drainer', 'scheduler'] as const) {
      const oldFile = await bundle(oldSrc, name, join(work, 'old'), false);
      const newFile = await bundle(root, name, join(work, 'new'), true);
      const firstCall = name === 'drainer' ? FIRST_DRAINER_CALL : '';
      const size = (f: string) => statSync(f).size / KIB;
      const newBytes = bundleBytes(newFile);
      const runs = { old: [] as ColdStart[], new: [] as ColdStart[] };
      for (let i = 0; i < RUNS; i++) {
        runs.old.push(coldStart(oldFile, firstCall));
        runs.new.push(coldStart(newFile, firstCall));
      }
      const [o, n] = [median(runs.old.map((r) => r.ms)), median(runs.new.map((r) => r.ms))];
      const [oc, nc] = [median(runs.old.map((r) => r.cpuMs)), median(runs.new.map((r) => r.cpuMs))];
      const what = name === 'drainer' ? 'import + 1st call' : 'import';
      console.log(
        `${name.padEnd(10)} ${what.padEnd(18)} ${size(oldFile).toFixed(0).padStart(8)} ${(newBytes.total / KIB).toFixed(0).padStart(8)} ${`(${(newBytes.atStart / KIB).toFixed(0)})`.padStart(10)} ${o.toFixed(1).padStart(8)} ${n.toFixed(1).padStart(7)} ${(n / o).toFixed(2).padStart(8)} ${oc.toFixed(1).padStart(12)} ${nc.toFixed(1).padStart(11)} ${(nc / oc).toFixed(2).padStart(8)}`,
      );
      if (statSafe(`${oldFile}.map`)) console.log(`           old source map shipped: ${size(`${oldFile}.map`).toFixed(0)} KiB`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
