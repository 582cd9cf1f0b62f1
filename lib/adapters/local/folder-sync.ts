/**
 * The file store's folder fsyncs: the fsyncs of commits that finish together are shared (one per
 * folder per batch, GroupCommit), on a read-only descriptor of the folder kept open until
 * `close()`.
 */
import { close as closeFd, constants as fsConstants, fsync as fsyncFd, open as openFd } from 'node:fs';
import { storeError } from './file-store-checks.js';
import { GroupCommit } from './group-commit.js';

export class FolderSync {
  private readonly dirSyncs = new Map<string, GroupCommit<void>>();
  /** Read-only descriptors of message folders, for their fsyncs (closed by close()). */
  private readonly dirFds = new Map<string, Promise<number>>();

  /** fsync `dir`, shared with the other commits that ask while one is due. */
  sync(dir: string): Promise<void> {
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
   * Wait for the folder fsyncs in flight and close the folder descriptors (they are opened
   * again if used afterwards).
   */
  async close(): Promise<void> {
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
}
