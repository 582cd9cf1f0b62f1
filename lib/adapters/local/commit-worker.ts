/**
 * Commits of small messages (held in memory until their commit) done by one worker thread, in
 * batches: for each message create the temp file, write it, fdatasync it (the fsyncs of a batch
 * run concurrently in the thread pool), link it to its final name (never replacing a file that
 * is there: EEXIST reports it) and remove the temp name; then fsync each folder the batch linked
 * into, once. Only then does a
 * commit resolve. The order is the one FileMessageStore keeps for streamed messages; the
 * difference is that the main thread pays one message hand-off per batch instead of a
 * thread-pool round trip per system call, so it stays free for the POP3 session.
 *
 * A batch goes to the worker as soon as it is full (MAX_BATCH), or at the end of the turn of
 * the event loop in which its first commit came; several are in flight, so the worker creates
 * the files of one while the fsyncs of the others run.
 *
 * The worker's code is plain JavaScript evaluated from a string: it needs only node:fs and runs
 * the same from TypeScript sources (tests), from the bundle (CLI) and in Lambda.
 */
import { Worker } from 'node:worker_threads';
import { DrainError, describeError } from '../../drain/errors.js';
import { SegmentPool } from './segment-pool.js';

/** A commit that did not happen because of the thread, not the disk: retryable. */
function workerFailure(what: string, cause: unknown): DrainError {
  const reason = describeError(cause);
  return new DrainError('STORE_FAILED', `${what}: ${reason}`, { phase: 'store', retryable: true, cause });
}

export interface HeldCommit {
  temp: string;
  final: string;
  /** The file's bytes: these chunks, in order (copied by commit()). */
  data: readonly Buffer[];
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
parentPort.on('message', async ({ id, items, segments }) => {
  const results = new Array(items.length);
  const fds = new Array(items.length);
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    try {
      fds[i] = fs.openSync(it.temp, 'wx', it.mode);
    } catch (e) { results[i] = fail('create temp file', it.temp, e); continue; }
    try { writeAll(fds[i], Buffer.from(segments[it.segment], it.offset, it.length)); }
    catch (e) { results[i] = fail('write', it.temp, e); }
  }
  const syncs = await Promise.all(fds.map((fd, i) => (fd === undefined || results[i] ? null : datasync(fd))));
  const dirs = new Set();
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    if (fds[i] === undefined) continue;
    try { fs.closeSync(fds[i]); } catch (e) { results[i] = results[i] || fail('close', it.temp, e); }
    if (!results[i] && syncs[i]) results[i] = fail('fsync', it.temp, syncs[i]);
    if (!results[i]) {
      // link() never replaces a file that is there (EEXIST), even if a second writer (a lease
      // lost to a paused process) got there first; rename() would.
      try { fs.linkSync(it.temp, it.final); results[i] = { linked: true }; }
      catch (e) { results[i] = e && e.code === 'EEXIST' ? { linked: false } : fail('link', it.final, e); }
      if (results[i].error === undefined) dirs.add(path.dirname(it.final));
    }
    try { fs.unlinkSync(it.temp); } catch (e) { /* a leftover temp file is cleanupTemp's */ }
  }
  // The folder fsync runs here, not in the thread pool: there it would wait behind the file
  // fsyncs of the batches that came after this one.
  for (const dir of dirs) {
    let error;
    try {
      const fd = fs.openSync(dir, 'r');
      try { fs.fsyncSync(fd); } catch (e) { error = e; }
      try { fs.closeSync(fd); } catch {}
    } catch (e) { error = e; }
    if (error) {
      for (let i = 0; i < items.length; i++) {
        if (results[i].error === undefined && path.dirname(items[i].final) === dir) results[i] = fail('fsync folder', dir, error);
      }
    }
  }
  // The segments go back (transferred) to be used again for the next batches' bytes.
  parentPort.postMessage({ id, results, segments }, segments);
});
`;

const MAX_BATCH = 64;
/**
 * The bytes of a batch are copied into a few buffers of its own (the first this large, each
 * next one twice the last, up to SEGMENT_MAX_BYTES, or one message's size), handed to the
 * worker with the batch: one allocation and one transfer per segment, not per message.
 */
const SEGMENT_MIN_BYTES = 64 * 1024;
const SEGMENT_MAX_BYTES = 1024 * 1024;
/**
 * Batches the worker works on at once: while some wait for their fsyncs, the next is written,
 * so the disk's latency overlaps with the next messages' file creation. (Two in flight, with
 * batches sent only at the end of a turn, left the worker idle half the time on a drain of
 * small messages while the main thread refilled them.)
 */
const MAX_BATCHES_IN_FLIGHT = 4;
/** Segments kept for reuse when the worker hands them back (segment-pool.ts). */
const SEGMENT_POOL_BYTES = 8 * 1024 * 1024;
/**
 * The worker's young generation, in MB: it allocates little (a batch's item list and results),
 * and V8's default lets it grow to tens of MB of mostly garbage.
 */
const WORKER_YOUNG_GENERATION_MB = 2;
/**
 * The worker's old generation, in MB. It boots with ~5 MB of it and keeps little more: a
 * batch's item list and results (at most MAX_BATCH items of two paths each, a few hundred KB
 * with the longest paths, times MAX_BATCHES_IN_FLIGHT); the messages' bytes come in
 * transferred ArrayBuffers, outside this limit. Under V8's default limit (the machine's, up to
 * 4 GB here) V8 lets the old space grow to up to 4 times what a full collection left; with a
 * small limit the factor is smaller (it scales with the limit). Measured (2,000 x 4 KB CLI drain, alternated runs): peak
 * RSS −1 to −3 MB; its CPU does not show (it allocates little).
 */
const WORKER_OLD_GENERATION_MB = 16;

/** One file of a batch, as the worker gets it: its bytes are segments[segment][offset, offset + length). */
interface BatchItem {
  temp: string;
  final: string;
  mode: number;
  segment: number;
  offset: number;
  length: number;
}

/**
 * Who waits for one commit: `resolve` with what the worker did, or `reject` when the thread
 * failed; once. (An object with methods, so a caller that has one per message anyway needs no
 * promise and closures of its own: see submit.)
 */
export interface CommitWaiter {
  /** The final name, for a result the worker did not send. */
  readonly final: string;
  resolve(result: HeldCommitResult): void;
  reject(error: unknown): void;
}

type Waiting = CommitWaiter;

class Batch {
  readonly items: BatchItem[] = [];
  readonly waiting: Waiting[] = [];
  readonly segments: Buffer[] = [];
  private used = 0;

  constructor(private readonly pool: SegmentPool) {}

  /** Copy the file's bytes into the batch's segments. */
  add(temp: string, final: string, data: readonly Buffer[], mode: number, waiting: Waiting): void {
    let length = 0;
    for (const chunk of data) length += chunk.length;
    let segment = this.segments.at(-1);
    if (segment === undefined || this.used + length > segment.length) {
      const next = segment === undefined ? SEGMENT_MIN_BYTES : Math.min(2 * segment.length, SEGMENT_MAX_BYTES);
      segment = this.pool.take(Math.max(next, length));
      this.segments.push(segment);
      this.used = 0;
    }
    const offset = this.used;
    for (const chunk of data) {
      segment.set(chunk, this.used);
      this.used += chunk.length;
    }
    this.items.push({ temp, final, mode, segment: this.segments.length - 1, offset, length });
    this.waiting.push(waiting);
  }
}

export class CommitWorker {
  private worker: Worker | undefined;
  /** The batch being gathered, and full ones waiting for the worker. */
  private gathering: Batch | undefined;
  private readonly ready: Batch[] = [];
  private sendScheduled = false;
  /** Batches handed to the worker and not yet answered, by id. */
  private readonly inFlight = new Map<number, Waiting[]>();
  private nextId = 0;
  private readonly pool = new SegmentPool(SEGMENT_MIN_BYTES, SEGMENT_MAX_BYTES, SEGMENT_POOL_BYTES);

  /** The bytes of `item.data` are copied before this returns. */
  commit(item: HeldCommit): Promise<HeldCommitResult> {
    return new Promise((resolve, reject) => this.submit(item.temp, item.final, item.data, item.mode, { final: item.final, resolve, reject }));
  }

  /**
   * `commit`, answered to `waiting` (in the turn the worker's reply arrives) instead of through a
   * promise of its own. The bytes of `data` are copied before this returns.
   */
  submit(temp: string, final: string, data: readonly Buffer[], mode: number, waiting: CommitWaiter): void {
    const batch = (this.gathering ??= new Batch(this.pool));
    batch.add(temp, final, data, mode, waiting);
    if (batch.items.length >= MAX_BATCH) {
      // Full: to the worker now if it has room (a burst of messages in one turn of the
      // event loop is then committed while the rest of the burst is still coming in).
      this.ready.push(batch);
      this.gathering = undefined;
      this.send();
    }
    // Commits of one turn of the event loop go out together.
    if (!this.sendScheduled && this.inFlight.size < MAX_BATCHES_IN_FLIGHT) {
      this.sendScheduled = true;
      setImmediate(this.sendNow);
    }
  }

  /** The end of the turn in which commits came: send what was gathered. */
  private readonly sendNow = (): void => {
    this.sendScheduled = false;
    this.send();
  };

  /**
   * Start the thread now rather than at the first commit (booting it takes tens of ms, while
   * commits would queue). Unref'd: an idle process still exits. Resolves once the thread runs
   * (or failed to start: the first commit then tries again and reports it); never rejects.
   */
  warmUp(): Promise<void> {
    if (this.worker !== undefined) return Promise.resolve();
    let worker: Worker;
    try {
      worker = this.worker = this.start();
    } catch {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      worker.once('online', () => resolve());
      worker.once('error', () => resolve());
      worker.once('exit', () => resolve());
    });
  }

  /** Whether the thread is started (by warmUp or a commit). */
  get started(): boolean {
    return this.worker !== undefined;
  }

  private get waitingCount(): number {
    return (this.gathering?.items.length ?? 0) + this.ready.reduce((n, b) => n + b.items.length, 0);
  }

  private start(): Worker {
    const worker = new Worker(WORKER_SOURCE, { eval: true, resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB, maxOldGenerationSizeMb: WORKER_OLD_GENERATION_MB } });
    worker.on('message', (reply: { id: number; results: HeldCommitResult[]; segments?: ArrayBuffer[] }) => {
      if (reply.segments !== undefined) this.pool.give(reply.segments);
      const batch = this.inFlight.get(reply.id) ?? [];
      this.inFlight.delete(reply.id);
      batch.forEach((w, i) => w.resolve(reply.results[i] ?? { error: { op: 'commit', path: w.final, message: 'no result' } }));
      this.idleOrNext();
    });
    const broken = (error: unknown): void => {
      this.worker = undefined;
      const batches = [...this.inFlight.values()];
      this.inFlight.clear();
      const failure = workerFailure('the commit worker failed', error);
      for (const batch of batches) for (const w of batch) w.reject(failure);
      this.idleOrNext();
    };
    worker.on('error', broken);
    worker.on('exit', (code) => {
      if (this.worker === worker) broken(new Error(`it exited (${code})`));
    });
    // After the listeners: adding a 'message' listener refs a Worker again.
    worker.unref();
    return worker;
  }

  private idleOrNext(): void {
    if (this.gathering !== undefined || this.ready.length > 0) this.send();
    // Not waiting on it: let the process exit.
    else if (this.inFlight.size === 0) this.worker?.unref();
  }

  private send(): void {
    while (this.inFlight.size < MAX_BATCHES_IN_FLIGHT) {
      let batch = this.ready.shift();
      if (batch === undefined) {
        batch = this.gathering;
        this.gathering = undefined;
      }
      if (batch === undefined) return;
      const id = ++this.nextId;
      this.inFlight.set(id, batch.waiting);
      try {
        this.worker ??= this.start();
        // Keep the process alive while a batch is out: its callers wait for the reply.
        this.worker.ref();
        // The segments are the batch's own copies: hand them over instead of cloning them.
        const segments = batch.segments.map((b) => b.buffer as ArrayBuffer);
        this.worker.postMessage({ id, items: batch.items, segments }, segments);
      } catch (error) {
        // No thread (out of threads, a permission model, ...): this batch fails, typed, and
        // the next one tries again. Never thrown: send() also runs from timers and events.
        this.inFlight.delete(id);
        const failure = workerFailure('cannot hand the commit to its worker thread', error);
        for (const w of batch.waiting) w.reject(failure);
      }
    }
  }

  /** Wait for the commits under way, then stop the thread (it starts again if used). */
  async close(): Promise<void> {
    while (this.inFlight.size > 0 || this.waitingCount > 0) await new Promise((r) => setTimeout(r, 5));
    const worker = this.worker;
    this.worker = undefined;
    if (worker !== undefined) await worker.terminate();
  }
}
