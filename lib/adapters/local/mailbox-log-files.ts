/**
 * The file operations of a mailbox's log: replay it from disk, and write one batch (make the file
 * writable: create it, or reload it if another process changed it, truncate a torn tail; apply
 * the ops; append their lines; fsync). A failed batch leaves no line behind and the log is
 * dropped, so the next call reloads it.
 */
import { open, rename, stat, type FileHandle } from 'node:fs/promises';
import { CREATE_APPEND_FLAGS, errnoCode, FILE_MODE, fsyncDirectory, OPEN_APPEND_FLAGS, readAt, writeFully } from './durable-fs.js';
import { LogEventSource } from './log-event-source.js';
import { readLog } from './log-reader.js';
import { decodeLog, encodeRecord, isExpired, LEDGER_FORMAT_VERSION, LedgerModel, type DecodedLog } from './ledger-log.js';
import { compactNow, needsCompaction, removeStaleCompactions } from './log-compaction.js';
import { COMPACT, ledgerError, type LogContext, type MailboxLog, type Op } from './mailbox-log.js';

/** Reloads before one batch (the log changed under us each time) before giving up. */
const MAX_RELOADS = 5;

export class MailboxLogFiles {
  constructor(private readonly ctx: LogContext) {}

  /** (Re)read the log from disk into a fresh model, keeping its file open for appends. */
  async load(log: MailboxLog): Promise<void> {
    await log.handle?.close().catch(() => undefined);
    log.handle = undefined;
    log.model = new LedgerModel(log.mailboxId);
    log.ino = 0;
    log.fileSize = 0;
    log.validBytes = 0;
    log.corruptAt = undefined;
    log.expiredAtLoad = 0;
    let handle: FileHandle;
    try {
      handle = await open(log.path, OPEN_APPEND_FLAGS);
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return;
      throw error;
    }
    try {
      const info = await handle.stat();
      const decoded = await this.decode(log, handle, info.ino, info.size);
      if (decoded.corruptAt === undefined) {
        decoded.records.forEach((record, i) => log.model.apply(record, decoded.sizes[i]!));
      } else {
        // Garbage, not a torn tail: nothing in the file is trusted (the model stays empty, so
        // the run treats the ledger as lost), and nothing in it is truncated away.
        log.corruptAt = decoded.corruptAt;
        this.ctx.logger.error(
          `the ledger ${log.path} is unreadable: the bytes at offset ${decoded.corruptAt} are not a ledger record and not a torn tail; it is set aside (${log.path}.corrupt-<time>) at the next write and the mailbox is drained as if its ledger were lost`,
          { mailboxId: log.mailboxId, path: log.path, offset: decoded.corruptAt },
        );
      }
      const now = this.ctx.now();
      for (const entry of log.model.entries.values()) if (isExpired(entry, now)) log.expiredAtLoad++;
      log.handle = handle;
      log.ino = info.ino;
      log.fileSize = decoded.bytes;
      log.validBytes = decoded.validBytes;
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
  }

  /**
   * The log's records, read in pieces with the events left in the file (log-reader.ts), or, if
   * the file cannot be opened a second time as the same inode (renamed over meanwhile), read
   * whole with the events kept in memory.
   */
  private async decode(log: MailboxLog, handle: FileHandle, ino: number, size: number): Promise<DecodedLog & { bytes: number }> {
    let source: LogEventSource | undefined;
    try {
      source = LogEventSource.open(log.path);
      if (source.ino() !== ino) {
        source.close();
        source = undefined;
      }
    } catch {
      source?.close();
      source = undefined;
    }
    if (source !== undefined) return readLog(handle, size, source);
    const data = await readAt(handle, 0, size);
    return { ...decodeLog(data), bytes: data.length };
  }

  /** One batch: make the file writable, apply the ops, append their lines, fsync. */
  async flush(log: MailboxLog, ops: Op[]): Promise<void> {
    if (log.dead !== undefined) throw log.dead;
    let before = 0;
    let wrote = false;
    try {
      const created = await this.prepareForAppend(log);
      before = log.fileSize;
      log.out = created ? [encodeRecord({ t: 'hdr', v: LEDGER_FORMAT_VERSION, mailboxId: log.mailboxId })] : [];
      for (const op of ops) op(log);
      const lines = log.out;
      log.out = [];
      if (lines.length > 0) {
        const data = lines.length === 1 ? lines[0]! : Buffer.concat(lines);
        wrote = true;
        await writeFully(log.handle!, data, true);
        await log.handle!.datasync();
        log.fileSize += data.length;
        log.validBytes = log.fileSize;
        if (created) await fsyncDirectory(this.ctx.dir);
      }
    } catch (error) {
      // The model may hold changes the file does not: forget it (the next call reloads), and
      // take back a partial append so that no line of a failed batch survives.
      const failure = ledgerError('write', log.mailboxId, error);
      log.dead = failure;
      this.ctx.forget(log);
      if (wrote && log.handle !== undefined) await log.handle.truncate(before).catch(() => undefined);
      await log.handle?.close().catch(() => undefined);
      log.handle = undefined;
      throw failure;
    }
    if (log.compactRequested) {
      log.compactRequested = false;
      log.compactScheduled = false;
      // The batch's lines are durable in the old log and in the snapshot alike: a failed
      // compaction is not the batch's failure.
      await compactNow(this.ctx, log).catch((error: unknown) => {
        log.compactFailedAt = log.fileSize;
        this.ctx.logger.error('ledger compaction failed', { mailboxId: log.mailboxId, error: String(error) });
      });
    } else if (!log.compactScheduled && needsCompaction(this.ctx, log)) {
      log.compactScheduled = true;
      log.commits.submit(COMPACT).catch(() => undefined);
    }
  }

  /**
   * Before a batch: create the file (true when created), or check that nobody else changed it
   * since we read it (reload if so), and truncate a torn tail.
   */
  async prepareForAppend(log: MailboxLog, attempt = 0): Promise<boolean> {
    if (attempt > MAX_RELOADS) {
      const error = new Error('the log keeps changing under this writer (is another process writing it?)');
      (error as NodeJS.ErrnoException).code = 'EBUSY';
      throw error;
    }
    if (log.handle === undefined) {
      await this.ctx.dirs.ensure(this.ctx.dir);
      try {
        log.handle = await open(log.path, CREATE_APPEND_FLAGS, FILE_MODE);
      } catch (error) {
        if (errnoCode(error) !== 'EEXIST') throw error;
        // Created by someone else since we looked: read it.
        await this.load(log);
        return this.prepareForAppend(log, attempt + 1);
      }
      log.ino = (await log.handle.stat()).ino;
      await removeStaleCompactions(this.ctx, log);
      return true;
    }
    const current = await stat(log.path).catch((error: unknown) => {
      if (errnoCode(error) === 'ENOENT') return undefined;
      throw error;
    });
    if (current === undefined || current.ino !== log.ino || current.size !== log.fileSize) {
      this.ctx.logger.warn('ledger changed by another process; reloading it', { mailboxId: log.mailboxId });
      await this.load(log);
      return this.prepareForAppend(log, attempt + 1);
    }
    if (log.corruptAt !== undefined) {
      // Unreadable: kept for whoever wants to look, under another name; a new log starts.
      const aside = `${log.path}.corrupt-${this.ctx.now()}`;
      await rename(log.path, aside);
      await fsyncDirectory(this.ctx.dir);
      this.ctx.logger.warn('the unreadable ledger was set aside; a new one is started', { mailboxId: log.mailboxId, path: aside });
      await log.handle.close().catch(() => undefined);
      log.handle = undefined;
      log.corruptAt = undefined;
      log.fileSize = 0;
      log.validBytes = 0;
      return this.prepareForAppend(log, attempt + 1);
    }
    if (log.fileSize > log.validBytes) {
      await log.handle.truncate(log.validBytes);
      await log.handle.datasync();
      this.ctx.logger.warn('truncated a torn ledger tail', {
        mailboxId: log.mailboxId,
        bytes: log.fileSize - log.validBytes,
      });
      log.fileSize = log.validBytes;
    }
    await removeStaleCompactions(this.ctx, log);
    // Nothing valid was left (a crash while the file was being created): start it afresh.
    return log.fileSize === 0;
  }
}
