/**
 * Commits of small messages (held in memory until their commit) done by one worker thread, in
 * batches: for each message create the temp file, write it, fdatasync it (the fsyncs of a batch
 * run concurrently in the thread pool), rename it to its final name unless a file is already
 * there (never replacing one: a mailbox has one writer, its lease holder); then fsync each
 * folder the batch renamed into, once. Only then does a
 * commit resolve. The order is the one FileMessageStore keeps for streamed messages; the
 * difference is that the main thread pays one message hand-off per batch instead of a
 * thread-pool round trip per system call, so it stays free for the POP3 session.
 *
 * The worker's code is plain JavaScript evaluated from a string: it needs only node:fs and runs
 * the same from TypeScript sources (tests), from the bundle (CLI) and in Lambda.
 */
import { Worker } from 'node:worker_threads';

export interface HeldCommit {
  temp: string;
  final: string;
  data: Buffer;
  mode: number;
}

/** linked: the final name was created; false: a file was already there (EEXIST). */
export type HeldCommitResult = { linked: boolean } | { error: { op: string; path: string; code?: string; message: string } };

const WORKER_SOURCE = String.raw`
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const path = require('node:path');
const fail = (op, p, e) => ({ error: { op, path: p, code: e && e.code, message: String((e && e.message) || e) } });
function writeAll(fd, data) {
  for (let offset = 0; offset < data.length; ) {
    const n = fs.writeSync(fd, data, offset, data.length - offset);
    if (n === 0) { const e = new Error('short write'); e.code = 'ENOSPC'; throw e; }
    offset += n;
  }
}
const datasync = (fd) => new Promise((resolve) => fs.fdatasync(fd, (e) => resolve(e)));
const fsync = (fd) => new Promise((resolve) => fs.fsync(fd, (e) => resolve(e)));
parentPort.on('message', async ({ id, items }) => {
  const results = new Array(items.length);
  const fds = new Array(items.length);
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    try {
      fds[i] = fs.openSync(it.temp, 'wx', it.mode);
    } catch (e) { results[i] = fail('create temp file', it.temp, e); continue; }
    try { writeAll(fds[i], Buffer.from(it.data.buffer, it.data.byteOffset, it.data.byteLength)); }
    catch (e) { results[i] = fail('write', it.temp, e); }
  }
  const syncs = await Promise.all(fds.map((fd, i) => (fd === undefined || results[i] ? null : datasync(fd))));
  const dirs = new Set();
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    if (fds[i] === undefined) continue;
    try { fs.closeSync(fds[i]); } catch (e) { results[i] = results[i] || fail('close', it.temp, e); }
    if (!results[i] && syncs[i]) results[i] = fail('fsync', it.temp, syncs[i]);
    let placed = false;
    if (!results[i]) {
      // One writer per mailbox (the lease), so "not there, then rename" cannot race with
      // another writer; rename is one directory operation where link + unlink are two.
      if (fs.existsSync(it.final)) results[i] = { linked: false };
      else {
        try { fs.renameSync(it.temp, it.final); placed = true; results[i] = { linked: true }; }
        catch (e) { results[i] = fail('rename', it.final, e); }
      }
      if (results[i].error === undefined) dirs.add(path.dirname(it.final));
    }
    if (!placed) { try { fs.unlinkSync(it.temp); } catch (e) { /* a leftover temp file is cleanupTemp's */ } }
  }
  for (const dir of dirs) {
    let error;
    try {
      const fd = fs.openSync(dir, 'r');
      error = await fsync(fd);
      try { fs.closeSync(fd); } catch {}
    } catch (e) { error = e; }
    if (error) {
      for (let i = 0; i < items.length; i++) {
        if (results[i].error === undefined && path.dirname(items[i].final) === dir) results[i] = fail('fsync folder', dir, error);
      }
    }
  }
  parentPort.postMessage({ id, results });
});
`;

const MAX_BATCH = 256;
/**
 * Batches the worker works on at once: while one waits for its fsyncs, the next is written, so
 * the disk's latency overlaps with the next messages' file creation.
 */
const MAX_BATCHES_IN_FLIGHT = 2;

interface Waiting {
  item: HeldCommit;
  resolve(result: HeldCommitResult): void;
  reject(error: unknown): void;
}

export class CommitWorker {
  private worker: Worker | undefined;
  private waiting: Waiting[] = [];
  /** Batches handed to the worker and not yet answered, by id. */
  private readonly inFlight = new Map<number, Waiting[]>();
  private nextId = 0;

  /** `item.data` is copied into memory of its own (it may share a pool with other buffers). */
  commit(item: HeldCommit): Promise<HeldCommitResult> {
    const own = Buffer.allocUnsafeSlow(item.data.length);
    item.data.copy(own);
    const owned = { ...item, data: own };
    return new Promise((resolve, reject) => {
      this.waiting.push({ item: owned, resolve, reject });
      if (this.inFlight.size < MAX_BATCHES_IN_FLIGHT && this.waiting.length === 1) setImmediate(() => this.send());
    });
  }

  private start(): Worker {
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    worker.unref();
    worker.on('message', (reply: { id: number; results: HeldCommitResult[] }) => {
      const batch = this.inFlight.get(reply.id) ?? [];
      this.inFlight.delete(reply.id);
      batch.forEach((w, i) => w.resolve(reply.results[i] ?? { error: { op: 'commit', path: w.item.final, message: 'no result' } }));
      this.idleOrNext();
    });
    const broken = (error: unknown): void => {
      this.worker = undefined;
      const batches = [...this.inFlight.values()];
      this.inFlight.clear();
      for (const batch of batches) for (const w of batch) w.reject(error);
      this.idleOrNext();
    };
    worker.on('error', broken);
    worker.on('exit', (code) => {
      if (this.worker === worker) broken(new Error(`the commit worker exited (${code})`));
    });
    return worker;
  }

  private idleOrNext(): void {
    if (this.waiting.length > 0) this.send();
    // Not waiting on it: let the process exit.
    else if (this.inFlight.size === 0) this.worker?.unref();
  }

  private send(): void {
    if (this.inFlight.size >= MAX_BATCHES_IN_FLIGHT || this.waiting.length === 0) return;
    const batch = this.waiting.splice(0, MAX_BATCH);
    const id = ++this.nextId;
    this.inFlight.set(id, batch);
    this.worker ??= this.start();
    // Keep the process alive while a batch is out: its callers wait for the reply.
    this.worker.ref();
    // Each item's data is a private copy (see commit()): hand it over instead of cloning it.
    const items = batch.map((w) => w.item);
    this.worker.postMessage({ id, items }, items.map((i) => i.data.buffer as ArrayBuffer));
  }

  /** Wait for the commits under way, then stop the thread (it starts again if used). */
  async close(): Promise<void> {
    while (this.inFlight.size > 0 || this.waiting.length > 0) await new Promise((r) => setTimeout(r, 5));
    const worker = this.worker;
    this.worker = undefined;
    if (worker !== undefined) await worker.terminate();
  }
}
