/**
 * Micro-benchmark of the local adapters (`node scripts/build.mjs && node dist/bench/local-adapters.js`):
 * the ledger, the message store and the event sink, each in a fresh temp folder, with real
 * fsyncs. Prints one line per figure (or JSON with --json). Not a test: figures vary with the
 * disk; compare runs on one machine.
 *
 *   ledger   2,000 record() + 2,000 markAnnounced() calls, each call issued at once
 *   ledger   the same in calls of 64 entries (how the engine batches)
 *   store    2,000 x (open, write 4 KB, commit) with 16 at a time
 *   floor    the same file-system calls done directly (create, write, fdatasync, close, link,
 *            unlink; no folder fsync, no stream): what the disk and the thread pool allow
 *   events   2,000 publish() calls of one event, issued at once
 *
 * The store is bound by one fdatasync per message in libuv's thread pool (4 threads unless
 * UV_THREADPOOL_SIZE says otherwise); compare it with the floor of the same run.
 */
import { randomBytes, createHash } from 'node:crypto';
import { link, mkdir, mkdtemp, open, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { messageKey } from '../lib/drain/keys.js';
import { FileLedger, FileMessageStore, JsonlEventSink } from '../lib/adapters/local/index.js';
import { storedEntry, storedEvent } from '../testkit/fixtures/ledger-fixtures.js';

const { values } = parseArgs({ options: { json: { type: 'boolean', default: false }, n: { type: 'string', default: '2000' } } });
const N = Number(values.n);
const MAILBOX = 'bench-mailbox';

interface Figure {
  name: string;
  ms: number;
  perOpUs: number;
}
const figures: Figure[] = [];

async function measure(name: string, ops: number, run: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'popdrain-bench-'));
  try {
    const t0 = performance.now();
    await run(dir);
    const ms = performance.now() - t0;
    figures.push({ name, ms: Math.round(ms * 10) / 10, perOpUs: Math.round((ms * 1000) / ops) });
    if (!values.json) process.stdout.write(`${name.padEnd(58)} ${ms.toFixed(1).padStart(8)} ms\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const uidls = Array.from({ length: N }, (_, i) => `uidl-${i.toString().padStart(6, '0')}`);
const entries = uidls.map((u) => storedEntry(MAILBOX, u));

await measure(`ledger: ${N} record + ${N} markAnnounced, one call each`, 2 * N, async (dir) => {
  const ledger = new FileLedger({ dir });
  await Promise.all(entries.map((e) => ledger.record([e])));
  await Promise.all(uidls.map((u) => ledger.markAnnounced(MAILBOX, [u], Date.now())));
  await ledger.close();
});

await measure(`ledger: ${N} record + ${N} markAnnounced, interleaved`, 2 * N, async (dir) => {
  const ledger = new FileLedger({ dir });
  await Promise.all(entries.map(async (e) => {
    await ledger.record([e]);
    await ledger.markAnnounced(MAILBOX, [e.uidl], Date.now());
  }));
  await ledger.close();
});

await measure(`ledger: the same in calls of 64`, 2 * N, async (dir) => {
  const ledger = new FileLedger({ dir });
  const chunks: (typeof entries)[] = [];
  for (let i = 0; i < entries.length; i += 64) chunks.push(entries.slice(i, i + 64));
  await Promise.all(chunks.map(async (c) => {
    await ledger.record(c);
    await ledger.markAnnounced(MAILBOX, c.map((e) => e.uidl), Date.now());
  }));
  await ledger.close();
});

await measure(`ledger: reopen (replay) a log of ${N} entries`, N, async (dir) => {
  const writer = new FileLedger({ dir });
  await writer.record(entries);
  await writer.markAnnounced(MAILBOX, uidls, Date.now());
  await writer.close();
  const t0 = performance.now();
  const reader = new FileLedger({ dir });
  await reader.lookup(MAILBOX, ['x']);
  const ms = performance.now() - t0;
  if (!values.json) process.stdout.write(`  (replay alone: ${ms.toFixed(1)} ms)\n`);
  await reader.close();
});

const body = randomBytes(4096);
const sha256 = createHash('sha256').update(body).digest('hex');
await measure(`store: ${N} x open/write 4 KB/commit, 16 at a time`, N, async (dir) => {
  const store = new FileMessageStore({ root: dir });
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < N) {
      const uidl = uidls[next++]!;
      const writer = await store.open(messageKey(MAILBOX, uidl), { mailboxId: MAILBOX, uidl });
      await new Promise<void>((resolve, reject) => writer.stream.end(body, () => resolve()).once('error', reject));
      await writer.commit({ sha256, size: body.length, metadata: {} });
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
});

await measure(`floor: the same calls without the adapter`, N, async (dir) => {
  const folder = join(dir, MAILBOX);
  await mkdir(folder);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < N) {
      const i = next++;
      const temp = join(folder, `.tmp-${i}.part`);
      const handle = await open(temp, 'wx', 0o600);
      await handle.write(body);
      await handle.datasync();
      await handle.close();
      await link(temp, join(dir, messageKey(MAILBOX, uidls[i]!)));
      await unlink(temp);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
});

const events = uidls.map((u) => storedEvent(MAILBOX, u));
await measure(`events: ${N} publish() of one event, issued at once`, N, async (dir) => {
  const sink = new JsonlEventSink({ path: join(dir, 'events.jsonl') });
  const outcomes = await Promise.all(events.map((e) => sink.publish([e])));
  if (outcomes.some((o) => o.failed.length > 0)) throw new Error('publish failed');
  await sink.close();
});

if (values.json) process.stdout.write(`${JSON.stringify({ threadpool: process.env.UV_THREADPOOL_SIZE ?? '4', figures })}\n`);
