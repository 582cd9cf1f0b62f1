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
 *
 * The parts: file-message-writer.ts and file-writable.ts (one message), commit-worker.ts (held
 * messages), folder-sync.ts (shared folder fsyncs), temp-cleanup.ts (crashed runs' leftovers),
 * store-key.ts (valid keys), file-store-checks.ts (errors, an existing file checked).
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdir } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
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
import { DirectoryMaker, FILE_MODE } from './durable-fs.js';
import { CommitWorker, type HeldCommitResult } from './commit-worker.js';
import { FileMessageWriter } from './file-message-writer.js';
import { checkExisting, sizeMismatch, storeError } from './file-store-checks.js';
import { FolderSync } from './folder-sync.js';
import { SIMPLE_KEY, storeKeyProblem } from './store-key.js';
import { removeStaleTemps, type CleanupTempOptions } from './temp-cleanup.js';

export { storeKeyProblem } from './store-key.js';
export { STALE_TEMP_AGE_MS } from './temp-cleanup.js';
export type { CleanupTempOptions } from './temp-cleanup.js';

/** Messages up to this size are gathered in memory and written at commit. */
export const DEFAULT_MEMORY_SPOOL_BYTES = 256 * 1024;

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
  private readonly folders = new FolderSync();
  /** @internal Temp files this instance has open (cleanupTemp leaves them alone). */
  readonly active = new Set<string>();
  /** @internal */
  readonly nonce = randomBytes(4).toString('hex');
  /** @internal commits of messages held in memory */
  readonly commitWorker = new CommitWorker();
  private counter = 0;
  private lastTempPrefix: { dir: string; prefix: string } | undefined;
  /** The folder of the last usual key (`<mailboxId>/<name>.eml`) located: a run writes to one. */
  private lastFolder: { name: string; dir: string } | undefined;

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
   * now, as the first message would. (The commit worker starts with the first batch, or earlier
   * with warmUp on a first drain; starting it here for every run did not make small messages
   * faster and cost a large one ~8 MB of RSS.)
   */
  prepareMailbox(mailboxId: string): Promise<void> {
    const problem = mailboxIdProblem(mailboxId);
    if (problem !== undefined) {
      return Promise.reject(new DrainError('STORE_FAILED', `invalid mailbox id: ${problem}`, { phase: 'store', retryable: false }));
    }
    return this.prepareFolder(join(this.root, mailboxId));
  }

  /** A first drain is starting: boot the commit worker's thread now (unref'd), not at the first commit. */
  warmUp(): void {
    void this.commitWorker.warmUp();
  }

  /** Whether the mailbox's folder holds a stored message (`*.eml`). */
  async holdsMessages(mailboxId: string): Promise<boolean> {
    if (mailboxIdProblem(mailboxId) !== undefined) return false;
    try {
      const names = await readdir(join(this.root, mailboxId));
      return names.some((name) => name.endsWith('.eml'));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw storeError('list', join(this.root, mailboxId), error);
    }
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
    const tempPath = `${this.tempPrefixOf(target.dir)}${++this.counter}.part`;
    // Known as ours while the worker has it, so cleanupTemp leaves it alone. (The worker has
    // removed the temp name when it answers, whatever happened: forgotten then, by the one
    // object that also reads the answer and settles the put: no promise and closures of its own.)
    this.active.add(tempPath);
    return new Promise((resolve, reject) => {
      this.commitWorker.submit(tempPath, target.path, chunks, FILE_MODE, new HeldPut(this, tempPath, target.path, summary, resolve, reject));
    });
  }

  /** The start of this store's temp names in `dir` (`<dir>/.tmp-<pid>-<nonce>-`), the last one kept. */
  private tempPrefixOf(dir: string): string {
    if (this.lastTempPrefix?.dir !== dir) this.lastTempPrefix = { dir, prefix: `${dir}${sep}.tmp-${process.pid}-${this.nonce}-` };
    return this.lastTempPrefix.prefix;
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

  /** @internal What the commit worker did, as the commit's outcome (an existing file is checked). */
  heldCommitted(result: HeldCommitResult, finalPath: string, summary: MessageSummary): StoredObject | Promise<StoredObject> {
    if ('error' in result) {
      // The worker's message is Node's, which names the code already ("EROFS: read-only file system, ...").
      const e = Object.assign(new Error(result.error.message), { code: result.error.code });
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

  private cleanupFolder(dir: string, options: CleanupTempOptions): Promise<number> {
    return removeStaleTemps(dir, options, this);
  }

  /** @internal the commit's shared folder fsync. */
  syncDirectory(dir: string): Promise<void> {
    return this.folders.sync(dir);
  }

  /**
   * Wait for the folder fsyncs in flight and close the folder descriptors the store keeps (it
   * opens them again if used afterwards). Writers still open are not affected.
   */
  async close(): Promise<void> {
    await this.commitWorker.close();
    await this.folders.close();
  }

  /** @internal */
  forget(tempPath: string): void {
    this.active.delete(tempPath);
  }

  /** The folder and the path of a message's file. */
  private locate(key: string): { dir: string; path: string } {
    // The usual key, `<mailboxId>/<name>.eml`, is checked at once; others the long way.
    if (key.length <= 1024 && sep === '/' && SIMPLE_KEY.test(key) && !key.includes('..')) {
      const slash = key.indexOf('/');
      let folder = this.lastFolder;
      if (folder === undefined || folder.name.length !== slash || !key.startsWith(folder.name)) {
        const name = key.slice(0, slash);
        folder = this.lastFolder = { name, dir: this.root.endsWith('/') ? `${this.root}${name}` : `${this.root}/${name}` };
      }
      return { dir: folder.dir, path: `${folder.dir}${key.slice(slash)}` }; // the same as root/key
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

/**
 * One message held in memory on its way through the commit worker (putHeld): hears the
 * worker's answer, forgets the temp name and settles the put.
 */
class HeldPut {
  constructor(
    private readonly store: FileMessageStore,
    private readonly tempPath: string,
    readonly final: string,
    private readonly summary: MessageSummary,
    private readonly settle: (stored: StoredObject | Promise<StoredObject>) => void,
    private readonly fail: (error: unknown) => void,
  ) {}

  resolve(result: HeldCommitResult): void {
    this.store.forget(this.tempPath);
    try {
      this.settle(this.store.heldCommitted(result, this.final, this.summary));
    } catch (error) {
      this.fail(error);
    }
  }

  reject(error: unknown): void {
    this.store.forget(this.tempPath);
    this.fail(storeError('commit', this.tempPath, error));
  }
}
