/**
 * The message store of one machine: each message is a file `<root>/<key>` (keys look like
 * `<mailboxId>/<64 hex>.eml`), written byte for byte, made durable and visible atomically.
 *
 * Writing goes to a temp file in the message's folder whose name never ends in `.eml`
 * (`.tmp-<pid>-<nonce>-<n>.part`). `commit()` fsyncs it, `link()`s it to the final name (which
 * never replaces an existing file), removes the temp name and fsyncs the folder. A file named
 * `*.eml` is therefore always complete and durable data; after a crash (kill -9, power loss)
 * only temp files can be left over, and `cleanupTemp()` removes them.
 *
 * Small messages (up to `memorySpoolBytes`, most mail) are gathered in memory while they
 * stream in, or given whole (`put`), and committed by a worker thread in batches
 * (commit-worker.ts: create, write, fsync, link, folder fsync, in the same order): the
 * stream never waits for the file system, and the main thread pays one hand-off per batch
 * instead of one per system call. A message that grows past the limit, or is announced
 * larger, streams into its temp file.
 *
 * Group commit: the folder fsyncs of commits that finish together are shared (one fsync per
 * folder per batch, on a descriptor of the folder kept open until `close()`); the file fsyncs
 * run concurrently. A commit resolves only when its data and its folder entry are durable.
 *
 * Errors become DrainError STORE_FAILED (phase 'store'): retryable for conditions that can
 * clear by themselves (ENOSPC, EDQUOT, EMFILE, ...), final for permissions (EACCES, EPERM),
 * a read-only file system (EROFS), a path that is not a folder, and I/O errors (EIO).
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import {
  close as closeFd,
  constants as fsConstants,
  createReadStream,
  fsync as fsyncFd,
  open as openFd,
} from 'node:fs';
import { link, lstat, open, readdir, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { DrainError } from '../../drain/errors.js';
import { mailboxIdProblem } from '../../drain/keys.js';
import {
  silentLogger,
  type DrainLogger,
  type MessageStore,
  type MessageSummary,
  type MessageWriter,
  type StoredObject,
  type StoreRef,
} from '../../drain/ports.js';
import {
  DirectoryMaker,
  errnoCode,
  FILE_MODE,
  isRetryableFsError,
  processExists,
  writeFully,
} from './durable-fs.js';
import { CommitWorker, type HeldCommitResult } from './commit-worker.js';
import { GroupCommit } from './group-commit.js';

/** A temp file left by a live process is only removed once it has not been written for this long. */
export const STALE_TEMP_AGE_MS = 60_000;
/** Messages up to this size are gathered in memory and written at commit. */
export const DEFAULT_MEMORY_SPOOL_BYTES = 256 * 1024;
/** Stream buffer of a message that is written to its temp file as it arrives. */
const FILE_STREAM_HIGH_WATER_MARK = 64 * 1024;

const KEY_SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;
/** A key of two segments that storeKeyProblem accepts (given it holds no `..` and is short enough). */
const SIMPLE_KEY = /^([A-Za-z0-9_-][A-Za-z0-9._-]*)\/([A-Za-z0-9_-][A-Za-z0-9._-]*\.eml)$/;
/** `.tmp-<pid>-<store instance nonce>-<counter>.part` */
const TEMP_NAME = /^\.tmp-(\d+)-([0-9a-f]+)-\d+\.part$/;

export interface FileMessageStoreOptions {
  /** Folder the keys are resolved under; created (0700) on first use. */
  root: string;
  /**
   * Before the first message written to a folder, remove the temp files crashed runs left
   * there (see cleanupTemp; only files no live writer can still be using).
   * @default true
   */
  cleanupOnFirstOpen?: boolean;
  /**
   * Messages up to this many bytes are gathered in memory and written to their temp file in
   * one go at commit; larger ones (by `expectedSize`, or once they outgrow it) stream into the
   * temp file. The engine keeps a bounded number of messages open in the store, so memory stays
   * within about that number times this. A held message is written with one synchronous write
   * at commit (into the page cache), so keep this small. 0 streams every message into its file.
   * @default DEFAULT_MEMORY_SPOOL_BYTES (256 KiB)
   */
  memorySpoolBytes?: number;
  /** @default silence */
  logger?: DrainLogger;
}

export interface CleanupTempOptions {
  /**
   * A temp file of another live process is removed once unmodified for this long; temp files
   * of dead processes, and this process's own leftovers, are removed at once.
   * @default STALE_TEMP_AGE_MS (one minute)
   */
  staleAfterMs?: number;
  /** @default Date.now() */
  now?: number;
}

/** Why `key` is not a valid store key, or undefined when it is. */
export function storeKeyProblem(key: string): string | undefined {
  if (key.length === 0 || key.length > 1024) return 'must be 1-1024 characters';
  if (isAbsolute(key) || key.startsWith('/') || key.includes('\\')) return 'must be a relative path with "/" separators';
  if (!key.endsWith('.eml')) return 'must end in ".eml"';
  const segments = key.split('/');
  if (segments.length < 2) return 'must name a folder and a file (<mailboxId>/<name>.eml)';
  for (const s of segments) {
    if (s === '..' || s.includes('..')) return 'must not contain ".."';
    if (!KEY_SEGMENT.test(s)) return 'segments must be letters, digits, ".", "_" or "-", not starting with "."';
  }
  return undefined;
}

function storeError(action: string, path: string, cause: unknown): DrainError {
  if (cause instanceof DrainError) return cause;
  // Node's messages name the code and the path: "ENOSPC: no space left on device, write".
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new DrainError('STORE_FAILED', `cannot ${action} ${path}: ${reason}`, {
    phase: 'store',
    retryable: isRetryableFsError(cause),
    cause,
  });
}

/** Hex sha256 and size of a file, streamed. */
async function hashFile(path: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  const input = createReadStream(path);
  for await (const chunk of input) {
    const buf = chunk as Buffer;
    size += buf.length;
    hash.update(buf);
  }
  return { sha256: hash.digest('hex'), size };
}

/** An identical file already at `path` is fine (a retry after a crash); a different one is a conflict. */
async function checkExisting(path: string, summary: MessageSummary): Promise<void> {
  let existing: { sha256: string; size: number };
  try {
    existing = await hashFile(path);
  } catch (error) {
    throw storeError('read existing', path, error);
  }
  if (existing.sha256 !== summary.sha256) {
    throw new DrainError(
      'STORE_CONFLICT',
      `a different message is already stored at ${path} (sha256 ${existing.sha256}, ${existing.size} bytes; ` +
        `new: sha256 ${summary.sha256}, ${summary.size} bytes); the existing file is kept`,
      { phase: 'store', retryable: false },
    );
  }
}

function sizeMismatch(path: string, written: number, summary: MessageSummary): DrainError {
  return new DrainError('STORE_FAILED', `cannot commit ${path}: ${written} bytes were written but the summary says ${summary.size}`, {
    phase: 'store',
    retryable: false,
  });
}

/**
 * The stream a message is written into: held in memory while it stays within the spool limit,
 * else appended to the temp file (opened on first need, left open: commit fsyncs and closes it).
 */
class FileWritable extends Writable {
  /** Bytes in the temp file. */
  bytesWritten = 0;
  private held: Buffer[] = [];
  private heldBytes = 0;

  constructor(
    private readonly file: () => Promise<FileHandle>,
    private readonly memoryLimit: number,
  ) {
    super({ highWaterMark: FILE_STREAM_HIGH_WATER_MARK });
  }

  /** Bytes written into this stream so far (in memory or in the file). */
  get bytesReceived(): number {
    return this.bytesWritten + this.heldBytes;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.take([chunk], chunk.length, callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    let bytes = 0;
    const buffers = chunks.map((c) => {
      bytes += c.chunk.length;
      return c.chunk;
    });
    this.take(buffers, bytes, callback);
  }

  /** What is held in memory, taken for the commit; undefined once part of it went to the file. */
  takeHeldForCommit(): Buffer[] | undefined {
    return this.bytesWritten === 0 ? this.takeHeld() : undefined;
  }

  /** Write what is held in memory to the temp file (at commit, after the stream finished). */
  spill(): Promise<void> {
    if (this.held.length === 0 && this.bytesWritten > 0) return Promise.resolve();
    return this.append(this.takeHeld());
  }

  private take(buffers: Buffer[], bytes: number, callback: (error?: Error | null) => void): void {
    if (this.bytesWritten === 0 && this.heldBytes + bytes <= this.memoryLimit) {
      for (const b of buffers) this.held.push(b);
      this.heldBytes += bytes;
      callback();
      return;
    }
    const all = this.held.length === 0 ? buffers : [...this.takeHeld(), ...buffers];
    this.append(all).then(() => callback(), callback);
  }

  private takeHeld(): Buffer[] {
    const held = this.held;
    this.held = [];
    this.heldBytes = 0;
    return held;
  }

  private async append(buffers: Buffer[]): Promise<void> {
    const handle = await this.file();
    const data = buffers.length === 1 ? buffers[0]! : Buffer.concat(buffers);
    await writeFully(handle, data);
    this.bytesWritten += data.length;
  }
}

type WriterState = 'open' | 'committing' | 'committed' | 'aborted';

class FileMessageWriter implements MessageWriter {
  readonly stream: FileWritable;
  private state: WriterState = 'open';
  private commitPromise: Promise<StoredObject> | undefined;
  /** The temp file opened for streaming (a message held in memory has none). */
  private handle: Promise<FileHandle> | undefined;
  private handleClosed = false;
  /** The temp file exists (created for streaming, or at the commit of a message held in memory). */
  private tempCreated = false;

  constructor(
    private readonly store: FileMessageStore,
    private readonly tempPath: string,
    private readonly finalPath: string,
    memoryLimit: number,
  ) {
    this.stream = new FileWritable(() => this.file(), memoryLimit);
  }

  /** Create the temp file (once). */
  file(): Promise<FileHandle> {
    this.handle ??= open(this.tempPath, 'wx', FILE_MODE).then(
      (handle) => {
        this.tempCreated = true;
        return handle;
      },
      (error: unknown) => {
        throw storeError('create temp file', this.tempPath, error);
      },
    );
    return this.handle;
  }

  commit(summary: MessageSummary): Promise<StoredObject> {
    if (this.commitPromise === undefined) {
      if (this.state === 'aborted') {
        return Promise.reject(
          new DrainError('STORE_FAILED', `cannot commit ${this.finalPath}: the writer was aborted`, {
            phase: 'store',
            retryable: false,
          }),
        );
      }
      this.state = 'committing';
      this.commitPromise = this.doCommit(summary).then(
        (stored) => {
          this.state = 'committed';
          return stored;
        },
        async (error: unknown) => {
          this.state = 'aborted';
          await this.discard();
          throw error;
        },
      );
    }
    return this.commitPromise;
  }

  async abort(): Promise<void> {
    if (this.state === 'committing' || this.state === 'committed') {
      // A commit in flight cleans up after itself when it fails.
      await this.commitPromise?.catch(() => undefined);
      return;
    }
    if (this.state === 'aborted') return;
    this.state = 'aborted';
    this.stream.destroy();
    await this.discard();
  }

  private async doCommit(summary: MessageSummary): Promise<StoredObject> {
    const stream = this.stream;
    const path = this.finalPath;
    if (stream.errored) throw storeError('write', path, stream.errored);
    if (!stream.writableFinished) {
      if (!stream.writableEnded) {
        throw new DrainError('STORE_FAILED', `cannot commit ${path}: its stream was not ended`, {
          phase: 'store',
          retryable: false,
        });
      }
      await finished(stream).catch((error: unknown) => {
        throw storeError('write', path, error);
      });
    }
    if (stream.bytesReceived !== summary.size) throw sizeMismatch(path, stream.bytesReceived, summary);
    const held = this.handle === undefined ? stream.takeHeldForCommit() : undefined;
    if (held !== undefined) {
      const stored = await this.store.commitHeld(this.tempPath, path, held, summary);
      this.store.forget(this.tempPath);
      return stored;
    } else {
      await stream.spill().catch((error: unknown) => {
        throw storeError('write', this.tempPath, error);
      });
      const handle = await this.file();
      try {
        await handle.datasync();
      } catch (error) {
        throw storeError('fsync', this.tempPath, error);
      }
    }
    // The data is durable, so its name may appear; closing and linking need not wait on each
    // other (each waits in the thread pool behind other commits' fsyncs).
    const [, linked] = await Promise.all([
      this.closeHandle(),
      link(this.tempPath, path).then(
        () => true,
        (error: unknown) => {
          if (errnoCode(error) === 'EEXIST') return false;
          throw storeError('link', path, error);
        },
      ),
    ]);
    const existed = !linked;
    if (existed) await checkExisting(path, summary);
    // The folder fsync makes the new name durable (also when it existed: the run that linked it
    // may have died before its own folder fsync). The temp name's removal need not be durable:
    // a temp file a crash leaves behind is cleanupTemp's to remove.
    await Promise.all([this.store.syncDirectory(dirname(path)), this.removeTemp()]);
    return { ref: { type: 'file', path }, existed };
  }

  private async closeHandle(): Promise<void> {
    if (this.handleClosed || this.handle === undefined) return;
    this.handleClosed = true;
    let handle: FileHandle;
    try {
      handle = await this.handle;
    } catch {
      return; // never created: nothing to close
    }
    try {
      await handle.close();
    } catch (error) {
      throw storeError('close', this.tempPath, error);
    }
  }

  /** Remove the temp name; failing to is only a warning (cleanupTemp removes it later). */
  private async removeTemp(): Promise<void> {
    // A message that never left memory has no temp file (and an attempt that failed made none).
    if (this.handle !== undefined) await this.handle.catch(() => undefined);
    if (this.tempCreated) {
      try {
        await unlink(this.tempPath);
      } catch (error) {
        if (errnoCode(error) !== 'ENOENT') {
          this.store.logger.warn('cannot remove temp file', { path: this.tempPath, code: errnoCode(error) });
        }
      }
    }
    this.store.forget(this.tempPath);
  }

  /** Close and remove the temp file; never throws. */
  private async discard(): Promise<void> {
    await this.closeHandle().catch(() => undefined);
    await this.removeTemp();
  }
}

export class FileMessageStore implements MessageStore {
  readonly root: string;
  /** @internal */
  readonly logger: DrainLogger;
  private readonly cleanupOnFirstOpen: boolean;
  private readonly memorySpoolBytes: number;
  private readonly dirs = new DirectoryMaker();
  private readonly prepared = new Map<string, Promise<void>>();
  /** Folders whose preparation succeeded (put() goes on without waiting for it). */
  private readonly readyFolders = new Set<string>();
  private readonly dirSyncs = new Map<string, GroupCommit<void>>();
  /** Read-only descriptors of message folders, for their fsyncs (closed by close()). */
  private readonly dirFds = new Map<string, Promise<number>>();
  /** Temp files this instance has open (cleanupTemp leaves them alone). */
  private readonly active = new Set<string>();
  private readonly nonce = randomBytes(4).toString('hex');
  /** @internal commits of messages held in memory */
  readonly commitWorker = new CommitWorker();
  private counter = 0;

  constructor(options: FileMessageStoreOptions) {
    this.root = resolve(options.root);
    this.logger = options.logger ?? silentLogger;
    this.cleanupOnFirstOpen = options.cleanupOnFirstOpen ?? true;
    this.memorySpoolBytes = options.memorySpoolBytes ?? DEFAULT_MEMORY_SPOOL_BYTES;
    if (!Number.isSafeInteger(this.memorySpoolBytes) || this.memorySpoolBytes < 0) {
      throw new DrainError('CONFIG_INVALID', 'file store: memorySpoolBytes must be a whole number >= 0', { phase: 'config', retryable: false });
    }
  }

  refFor(key: string): StoreRef {
    return { type: 'file', path: this.pathFor(key) };
  }

  async open(key: string, info: { mailboxId: string; uidl: string; expectedSize?: number }): Promise<MessageWriter> {
    const finalPath = this.pathFor(key);
    const dir = dirname(finalPath);
    await this.prepareFolder(dir);
    const tempPath = join(dir, `.tmp-${process.pid}-${this.nonce}-${++this.counter}.part`);
    this.active.add(tempPath);
    const inMemory = this.memorySpoolBytes > 0 && (info.expectedSize === undefined || info.expectedSize <= this.memorySpoolBytes);
    const writer = new FileMessageWriter(this, tempPath, finalPath, inMemory ? this.memorySpoolBytes : 0);
    if (!inMemory) {
      // Announced larger than the spool: create the file now, so a failure shows at once.
      try {
        await writer.file();
      } catch (error) {
        this.active.delete(tempPath);
        throw error;
      }
    }
    return writer;
  }

  /**
   * Messages of `mailboxId` are coming: create its folder and remove crashed runs' leftovers
   * now, as the first message would. (The commit worker still starts with the first batch:
   * started here it did not make small messages faster, and cost a large one ~8 MB of RSS.)
   */
  prepareMailbox(mailboxId: string): Promise<void> {
    const problem = mailboxIdProblem(mailboxId);
    if (problem !== undefined) {
      return Promise.reject(new DrainError('STORE_FAILED', `invalid mailbox id: ${problem}`, { phase: 'store', retryable: false }));
    }
    return this.prepareFolder(join(this.root, mailboxId));
  }

  /**
   * A message whose bytes are all in memory (`chunks`): with the memory spool (up to
   * `memorySpoolBytes`) it is committed like a message held in memory, without a stream; a
   * larger one goes through a temp file like a streamed one.
   */
  put(key: string, info: { mailboxId: string; uidl: string }, chunks: readonly Buffer[], summary: MessageSummary): Promise<StoredObject> {
    let size = 0;
    for (const chunk of chunks) size += chunk.length;
    if (this.memorySpoolBytes === 0 || size > this.memorySpoolBytes) return this.putStreamed(key, { ...info, expectedSize: size }, chunks, summary);
    let target: { dir: string; path: string };
    try {
      target = this.locate(key);
    } catch (error) {
      return Promise.reject(error);
    }
    if (size !== summary.size) return Promise.reject(sizeMismatch(target.path, size, summary));
    if (this.readyFolders.has(target.dir)) return this.putHeld(target, chunks, summary);
    return this.prepareFolder(target.dir).then(() => this.putHeld(target, chunks, summary));
  }

  private putHeld(target: { dir: string; path: string }, chunks: readonly Buffer[], summary: MessageSummary): Promise<StoredObject> {
    const tempPath = `${target.dir}${sep}.tmp-${process.pid}-${this.nonce}-${++this.counter}.part`;
    // Known as ours while the worker has it, so cleanupTemp leaves it alone.
    this.active.add(tempPath);
    return this.commitHeld(tempPath, target.path, chunks, summary).finally(() => this.active.delete(tempPath));
  }

  private async putStreamed(
    key: string,
    info: { mailboxId: string; uidl: string; expectedSize: number },
    chunks: readonly Buffer[],
    summary: MessageSummary,
  ): Promise<StoredObject> {
    const writer = await this.open(key, info);
    const stream = writer.stream;
    // A failed write shows in commit() (the stream is errored); the listener keeps it handled.
    stream.on('error', () => undefined);
    try {
      for (const chunk of chunks) {
        if (!stream.write(chunk)) await once(stream, 'drain');
      }
      stream.end();
      return await writer.commit(summary);
    } catch (error) {
      await writer.abort();
      throw storeError('write', this.pathFor(key), error);
    }
  }

  /**
   * @internal Commit a message held in memory: create, write, fsync, link and folder fsync in
   * the commit worker, batched with others. The worker removes the temp file if it fails.
   */
  commitHeld(tempPath: string, finalPath: string, data: readonly Buffer[], summary: MessageSummary): Promise<StoredObject> {
    return this.commitWorker.commit({ temp: tempPath, final: finalPath, data, mode: FILE_MODE }).then(
      (result) => this.heldCommitted(result, finalPath, summary),
      (error: unknown) => {
        throw storeError('commit', tempPath, error);
      },
    );
  }

  /** What the commit worker did, as the commit's outcome (an existing file is checked). */
  private heldCommitted(result: HeldCommitResult, finalPath: string, summary: MessageSummary): StoredObject | Promise<StoredObject> {
    if ('error' in result) {
      const e = Object.assign(new Error(`${result.error.code ?? 'error'}: ${result.error.message}`), { code: result.error.code });
      throw storeError(result.error.op, result.error.path, e);
    }
    if (result.linked) return { ref: { type: 'file', path: finalPath }, existed: false };
    return (async () => {
      await checkExisting(finalPath, summary);
      await this.syncDirectory(dirname(finalPath));
      return { ref: { type: 'file', path: finalPath }, existed: true } satisfies StoredObject;
    })();
  }

  /**
   * Remove temp files a crashed run left in the mailbox's folder: those of processes that no
   * longer exist, this store's own leftovers, and any other not written for `staleAfterMs`
   * (a live writer writes as the message arrives). Temp files this store has open are kept.
   * Resolves the number removed. Also done before the first write to a folder (see options).
   */
  async cleanupTemp(mailboxId: string, options: CleanupTempOptions = {}): Promise<number> {
    const problem = mailboxIdProblem(mailboxId);
    if (problem !== undefined) {
      throw new DrainError('STORE_FAILED', `invalid mailbox id for cleanup: ${problem}`, { phase: 'store', retryable: false });
    }
    return this.cleanupFolder(join(this.root, mailboxId), options);
  }

  /** Once per folder: create it (durably), then remove what crashed runs left in it. */
  private prepareFolder(dir: string): Promise<void> {
    let p = this.prepared.get(dir);
    if (p === undefined) {
      p = (async () => {
        try {
          await this.dirs.ensure(dir);
        } catch (error) {
          throw storeError('create folder', dir, error);
        }
        if (this.cleanupOnFirstOpen) {
          await this.cleanupFolder(dir, {}).catch((error: unknown) => {
            this.logger.warn('cannot remove stale temp files', { dir, error: String(error) });
          });
        }
        this.readyFolders.add(dir);
      })();
      this.prepared.set(dir, p);
      p.catch(() => this.prepared.delete(dir));
    }
    return p;
  }

  private async cleanupFolder(dir: string, options: CleanupTempOptions): Promise<number> {
    const staleAfterMs = options.staleAfterMs ?? STALE_TEMP_AGE_MS;
    const now = options.now ?? Date.now();
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return 0;
      throw storeError('list', dir, error);
    }
    let removed = 0;
    for (const name of names) {
      if (!name.startsWith('.tmp-') || !name.endsWith('.part')) continue;
      const path = join(dir, name);
      if (this.active.has(path)) continue;
      const parts = TEMP_NAME.exec(name);
      const pid = parts === null ? undefined : Number(parts[1]);
      // Ours and not open: a leftover. Another store's in this process: only by age.
      let stale = pid === process.pid ? parts?.[2] === this.nonce : pid !== undefined && !processExists(pid);
      if (!stale) {
        try {
          stale = now - (await lstat(path)).mtimeMs >= staleAfterMs;
        } catch (error) {
          if (errnoCode(error) === 'ENOENT') continue;
          throw storeError('inspect', path, error);
        }
      }
      if (!stale) continue;
      try {
        await unlink(path);
        removed++;
      } catch (error) {
        if (errnoCode(error) !== 'ENOENT') throw storeError('remove temp', path, error);
      }
    }
    if (removed > 0) this.logger.info('removed stale temp files', { dir, removed });
    return removed;
  }

  /** @internal the commit's shared folder fsync. */
  syncDirectory(dir: string): Promise<void> {
    let group = this.dirSyncs.get(dir);
    if (group === undefined) {
      group = new GroupCommit<void>(async () => {
        try {
          await this.fsyncFolder(dir);
        } catch (error) {
          throw storeError('fsync folder', dir, error);
        }
      });
      this.dirSyncs.set(dir, group);
    }
    return group.submit(undefined);
  }

  /**
   * Wait for the folder fsyncs in flight and close the folder descriptors the store keeps (it
   * opens them again if used afterwards). Writers still open are not affected.
   */
  async close(): Promise<void> {
    await this.commitWorker.close();
    await Promise.all([...this.dirSyncs.values()].map((g) => g.drained()));
    const fds = [...this.dirFds.values()];
    this.dirFds.clear();
    for (const fd of fds) {
      const n = await fd.catch(() => undefined);
      if (n !== undefined) await new Promise<void>((resolveClose) => closeFd(n, () => resolveClose()));
    }
  }

  /** fsync a folder through a descriptor kept open (one call per batch instead of three). */
  private async fsyncFolder(dir: string): Promise<void> {
    // Windows cannot open a folder for fsync; NTFS journals the metadata itself.
    if (process.platform === 'win32') return;
    let fd = this.dirFds.get(dir);
    if (fd === undefined) {
      fd = new Promise<number>((resolveOpen, reject) =>
        openFd(dir, fsConstants.O_RDONLY, (error, n) => (error === null ? resolveOpen(n) : reject(error))),
      );
      this.dirFds.set(dir, fd);
      fd.catch(() => this.dirFds.delete(dir));
    }
    const n = await fd;
    try {
      await new Promise<void>((resolveSync, reject) => fsyncFd(n, (error) => (error === null ? resolveSync() : reject(error))));
    } catch (error) {
      // Start over with a new descriptor next time (the folder may have been replaced).
      if (this.dirFds.get(dir) === fd) this.dirFds.delete(dir);
      closeFd(n, () => undefined);
      throw error;
    }
  }

  /** @internal */
  forget(tempPath: string): void {
    this.active.delete(tempPath);
  }

  /** The folder and the path of a message's file. */
  private locate(key: string): { dir: string; path: string } {
    // The usual key, `<mailboxId>/<name>.eml`, is checked at once; others the long way.
    const m = SIMPLE_KEY.exec(key);
    if (m !== null && key.length <= 1024 && !key.includes('..') && sep === '/') {
      const dir = this.root.endsWith('/') ? `${this.root}${m[1]!}` : `${this.root}/${m[1]!}`;
      return { dir, path: `${dir}/${m[2]!}` };
    }
    const path = this.pathFor(key);
    return { dir: dirname(path), path };
  }

  private pathFor(key: string): string {
    const problem = storeKeyProblem(key);
    if (problem !== undefined) {
      throw new DrainError('STORE_FAILED', `invalid store key ${JSON.stringify(key)}: ${problem}`, {
        phase: 'store',
        retryable: false,
      });
    }
    return join(this.root, key);
  }
}
