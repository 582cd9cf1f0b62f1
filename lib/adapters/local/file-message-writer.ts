/**
 * One message being written to the file store: into memory or its temp file (FileWritable);
 * `commit()` makes it durable under its final name (held in memory: by the commit worker;
 * streamed: fsync, link, folder fsync here), at most once, never replacing another file.
 */
import { link, open, unlink, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { finished } from 'node:stream/promises';
import { DrainError } from '../../drain/errors.js';
import type { MessageSummary, MessageWriter, StoredObject } from '../../drain/ports.js';
import { errnoCode, FILE_MODE } from './durable-fs.js';
import { checkExisting, sizeMismatch, storeError } from './file-store-checks.js';
import type { FileMessageStore } from './file-store.js';
import { FileWritable } from './file-writable.js';

type WriterState = 'open' | 'committing' | 'committed' | 'aborted';

export class FileMessageWriter implements MessageWriter {
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
