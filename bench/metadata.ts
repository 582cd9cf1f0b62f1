/**
 * `npm run bench:metadata`: what the metadata extractor (lib/drain/metadata.ts) costs, each
 * figure from fresh processes:
 *
 *   import     `import()` of the module alone (bundled as the CLI bundles it), and the load of
 *              the mail libraries it makes on first need (mail-libraries.ts); median of 9
 *   per-msg    CPU and wall time per 4 KB message over 2,000 messages in a fresh process (the
 *              first round, JIT cold, is what a drain of the benchmark mailbox sees) and a warm
 *              round; `plain` is workload (a)'s message, `multipart` a multipart/alternative
 *              with a small attachment, `stream` a do-nothing Writable for comparison
 *   memory     peak RSS growth and time for the large and hostile shapes
 *
 * Figures only: nothing here passes or fails.
 */
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createMetadataExtractor } from '../lib/drain/metadata.js';
import { loadMailLibraries } from '../lib/drain/mail-libraries.js';
import { makeMessage } from './workloads.js';

const MB = 1024 * 1024;
const self = fileURLToPath(import.meta.url);
/** The repository root: the nearest folder up with a package.json (dist/bench/ when built). */
const root = (() => {
  let dir = dirname(self);
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
})();

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function child(args: string[], nodeArgs: string[] = []): Record<string, number> {
  const r = spawnSync(process.execPath, [...nodeArgs, self, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${args.join(' ')} failed: ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, number>;
}

// -------------------------------------------------------------------------------------------
// Children

function crlf(message: Buffer): Buffer {
  return Buffer.from(message.toString('latin1').replace(/\n/g, '\r\n'), 'latin1');
}

function multipartMessage(i: number): Buffer {
  const attachment = Buffer.alloc(1500, i % 251).toString('base64').replace(/.{76}/g, '$&\r\n');
  const text = 'Hello, this is the text of the message, wrapped at a sensible width.\r\n'.repeat(12);
  return Buffer.from(
    [
      'From: "Bench Sender" <sender@example.com>',
      'To: bench-m@example.com, Other Person <other@example.com>',
      `Subject: =?UTF-8?Q?bench_m_message_${i}_=E2=80=93_with_attachment?=`,
      `Message-ID: <bench-m-${i}@example.com>`,
      'Date: Thu, 26 Nov 2026 12:00:00 +0000',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="mixed"',
      '',
      '--mixed',
      'Content-Type: multipart/alternative; boundary="alt"',
      '',
      '--alt',
      'Content-Type: text/plain; charset=utf-8',
      '',
      text,
      '--alt',
      'Content-Type: text/html; charset=utf-8',
      '',
      `<p>${text}</p>`,
      '--alt--',
      '--mixed',
      'Content-Type: application/pdf; name="a.pdf"',
      'Content-Disposition: attachment; filename="a.pdf"',
      'Content-Transfer-Encoding: base64',
      '',
      attachment,
      '--mixed--',
      '',
    ].join('\r\n'),
  );
}

class NullWritable extends Writable {
  override _write(_chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    callback();
  }
}

async function perMessage(kind: string): Promise<void> {
  const messages = Array.from({ length: 2000 }, (_, i) => (kind === 'multipart' ? multipartMessage(i) : crlf(makeMessage(i, 4096, 'a'))));
  // Loaded first, so their one-time cost (reported apart) is not spread over the messages.
  if (kind === 'multipart') await loadMailLibraries();
  const one = async (message: Buffer): Promise<void> => {
    if (kind === 'stream') {
      const w = new NullWritable();
      w.end(message);
      await once(w, 'finish');
      return;
    }
    const extractor = createMetadataExtractor();
    extractor.stream.end(message);
    await extractor.result();
  };
  const rounds: Array<{ cpuUs: number; wallUs: number }> = [];
  for (let r = 0; r < 3; r++) {
    const cpu = process.cpuUsage();
    const t = performance.now();
    for (const m of messages) {
      await one(m);
      // A drain meets I/O between messages: let queued ticks run, as they would there.
      await new Promise(setImmediate);
    }
    const used = process.cpuUsage(cpu);
    rounds.push({ cpuUs: (used.user + used.system) / messages.length, wallUs: ((performance.now() - t) * 1000) / messages.length });
  }
  const bytes = messages.reduce((n, m) => n + m.length, 0) / messages.length;
  console.log(
    JSON.stringify({
      bytes,
      coldCpuUs: rounds[0]!.cpuUs,
      coldWallUs: rounds[0]!.wallUs,
      warmCpuUs: rounds[2]!.cpuUs,
      warmWallUs: rounds[2]!.wallUs,
    }),
  );
}

function* repeated(line: string, total: number): Generator<Buffer> {
  const block = Buffer.from(line.repeat(Math.ceil((64 * 1024) / line.length)));
  for (let left = total; left > 0; left -= block.length) yield block.subarray(0, Math.min(left, block.length));
}

function* parts(...items: Array<string | Iterable<Buffer>>): Generator<Buffer> {
  for (const item of items) {
    if (typeof item === 'string') yield Buffer.from(item);
    else yield* item;
  }
}

const B64_LINE = `${Buffer.alloc(57, 0xab).toString('base64')}\r\n`;
const TEXT_LINE = 'The quick brown fox jumps over the lazy dog. 0123456789 abcdefghij\r\n';
const MIXED = 'Subject: big\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n';
const TINY_PART = '--b\r\nContent-Type: text/plain\r\n\r\nx\r\n';

const MEMORY_CASES: Record<string, () => Iterable<Buffer>> = {
  '50 MB text body': () => parts('Subject: big\r\n\r\n', repeated(TEXT_LINE, 50 * MB)),
  '50 MB text part in a multipart': () =>
    parts(MIXED, '--b\r\nContent-Type: text/plain\r\n\r\n', repeated(TEXT_LINE, 50 * MB), '\r\n--b--\r\n'),
  '50 MB base64 attachment': () =>
    parts(MIXED, '--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n', repeated(B64_LINE, 50 * MB), '\r\n--b--\r\n'),
  '50 MB quoted-printable attachment': () =>
    parts(
      MIXED,
      '--b\r\nContent-Type: text/csv; name=a.csv\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n',
      repeated('caf=C3=A9;cr=C3=A8me;br=C3=BBl=C3=A9e;0123456789;abcdefghijklmnopqrstuvwxyz=\r\n', 50 * MB),
      '\r\n--b--\r\n',
    ),
  '50 MB attachment without a line break': () =>
    parts(MIXED, '--b\r\nContent-Type: application/octet-stream\r\n\r\n', repeated('x', 50 * MB), '\r\n--b--\r\n'),
  '10,000 tiny parts': () =>
    parts('Content-Type: multipart/mixed; boundary=b\r\n\r\n', repeated(TINY_PART, 10_000 * TINY_PART.length), '--b--\r\n'),
  '5 MB header line': () => parts('From: a@example.com\r\nSubject: ', repeated('y', 5 * MB), '\r\n\r\nbody\r\n'),
};

async function memory(name: string): Promise<void> {
  await loadMailLibraries();
  const before = process.memoryUsage.rss();
  let peak = before;
  const t = performance.now();
  const extractor = createMetadataExtractor();
  for (const chunk of MEMORY_CASES[name]!()) {
    if (!extractor.stream.write(chunk)) await once(extractor.stream, 'drain');
    peak = Math.max(peak, process.memoryUsage.rss());
  }
  extractor.stream.end();
  await extractor.result();
  peak = Math.max(peak, process.memoryUsage.rss());
  console.log(JSON.stringify({ seconds: (performance.now() - t) / 1000, growthMb: (peak - before) / MB }));
}

// -------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const [mode, arg] = process.argv.slice(2);
  if (mode === '--per-message') return perMessage(arg!);
  if (mode === '--memory') return memory(arg!);
  if (mode === '--load') {
    const t = performance.now();
    await loadMailLibraries();
    console.log(JSON.stringify({ loadMs: performance.now() - t }));
    return;
  }

  // import(): the module bundled alone, packages external, as the CLI bundle has it.
  const { build } = await import('esbuild');
  const dir = mkdtempSync(join(tmpdir(), 'popdrain-bench-metadata-'));
  try {
    const outfile = join(dir, 'metadata.mjs');
    await build({
      entryPoints: [join(root, 'lib/drain/metadata.ts')],
      outfile,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      logLevel: 'warning',
      absWorkingDir: root,
      nodePaths: [join(root, 'node_modules')],
    });
    const probe =
      `const t0 = performance.now(); const m = await import(${JSON.stringify(pathToFileURL(outfile).href)});` +
      `if (typeof m.createMetadataExtractor !== 'function') throw new Error('no export');` +
      `console.log(JSON.stringify({ importMs: performance.now() - t0 }));`;
    const importMs: number[] = [];
    for (let i = 0; i < 9; i++) {
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe], { encoding: 'utf8', cwd: root });
      if (r.status !== 0) throw new Error(r.stderr);
      importMs.push((JSON.parse(r.stdout) as { importMs: number }).importMs);
    }
    const loadMs: number[] = [];
    for (let i = 0; i < 9; i++) loadMs.push(child(['--load']).loadMs!);
    console.log(`import() of lib/drain/metadata.ts: ${median(importMs).toFixed(1)} ms (median of 9 fresh processes)`);
    console.log(`first-need load of the mail libraries: ${median(loadMs).toFixed(1)} ms (median of 9)\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  console.log('per message, 2,000 messages, fresh process    bytes   cold cpu  cold wall   warm cpu  warm wall');
  for (const kind of ['plain', 'multipart', 'stream']) {
    const runs = Array.from({ length: 3 }, () => child(['--per-message', kind]));
    const pick = (key: string): number => median(runs.map((r) => r[key]!));
    console.log(
      `  ${kind.padEnd(43)} ${pick('bytes').toFixed(0).padStart(6)} ${pick('coldCpuUs').toFixed(1).padStart(7)} us ${pick('coldWallUs').toFixed(1).padStart(7)} us ${pick('warmCpuUs').toFixed(1).padStart(7)} us ${pick('warmWallUs').toFixed(1).padStart(7)} us`,
    );
  }

  console.log('\nmemory: peak RSS growth, fresh process each');
  for (const name of Object.keys(MEMORY_CASES)) {
    const r = child(['--memory', name]);
    console.log(`  ${name.padEnd(43)} ${r.growthMb!.toFixed(1).padStart(6)} MB ${r.seconds!.toFixed(2).padStart(7)} s`);
  }
}

await main();
