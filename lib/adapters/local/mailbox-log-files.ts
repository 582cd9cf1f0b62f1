/**
 * The file operations of a mailbox's log: replay it from disk, and write one batch (make the file
 * writable: create it, or reload it if another process changed it, truncate a torn tail; apply
 * the ops; append their lines; fsync). A failed batch leaves no line behind and the log is
 * dropped, so the next call reloads it.
 */
import { open, rename, stat, type FileHandle } from 'node:fs/promises';
import { CREATE_APPEND_FLAGS, errnoCode, FILE_MODE, fsyncDirectory, OPEN_APPEND_FLAGS, readAt, writeFully } from './durable-fs.js';
import { LogEventSource } from './log-event-source.js';
import { LOG_READ_CHUNK_BYTES, readLog } from './log-reader.js';
import { indexOf, loadIndex, writeIndexFile } from './ledger-index-file.js';
import type { CompactEntries } from './compact-entries.js';
import type { IndexHeader } from './ledger-index-codec.js';
import { decodeLog, LEDGER_FORMAT_VERSION, LedgerModel, type DecodedLog } from './ledger-log.js';
import { compactNow, needsCompaction, removeStaleCompactions } from './log-compaction.js';
import { COMPACT, ledgerError, type LogContext, type MailboxLog, type Op } from './mailbox-log.js';

/** An index a load used: its header, its entries, and the log they are read from. */
interface LoadedIndex {
  header: IndexHeader;
  entries: CompactEntries;
  source: LogEventSource;
}

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
    log.indexedBytes = 0;
    log.appended = false;
    let handle: FileHandle;
    try {
      handle = await open(log.path, OPEN_APPEND_FLAGS);
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return;
      throw error;
    }
    try {
      const info = await handle.stat();
      const decoded = await this.decode(log, handle, info);
      if (decoded.corruptAt === undefined) {
        const { index } = decoded;
        if (index !== undefined) {
          // What replaying the covered bytes gave, then the lines after them on top.
          log.model.base = index.entries;
          log.model.baseSource = index.source;
          log.model.state = index.header.state;
          log.model.recordBytes = index.header.recordBytes;
          log.model.recordLines = index.header.recordLines;
          log.indexedBytes = index.header.coveredBytes;
        }
        decoded.records.forEach((record, i) => log.model.apply(record, decoded.sizes[i]!, decoded.offsets[i]));
      } else {
        // Garbage, not a torn tail: nothing in the file is trusted (the model stays empty, so
        // the run treats the ledger as lost), and nothing in it is truncated away.
        log.corruptAt = decoded.corruptAt;
        this.ctx.logger.error(
          `the ledger ${log.path} is unreadable: the bytes at offset ${decoded.corruptAt} are not a ledger record and not a torn tail; it is set aside (${log.path}.corrupt-<time>) at the next write and the mailbox is drained as if its ledger were lost`,
          { mailboxId: log.mailboxId, path: log.path, offset: decoded.corruptAt },
        );
      }
      log.expiredAtLoad = log.model.countExpired(this.ctx.now());
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
   * The log's records, read in pieces with the events left in the file (log-reader.ts): with
   * an index that describes this file (ledger-index-file.ts), only the records after the bytes
   * it covers. If the file cannot be opened a second time as the same inode (renamed over
   * meanwhile), it is read whole with the events kept in memory.
   */
  private async decode(log: MailboxLog, handle: FileHandle, info: { ino: number; birthtimeMs: number; size: number }): Promise<DecodedLog & { bytes: number; index?: LoadedIndex }> {
    const { ino, size } = info;
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
    if (source !== undefined) {
      const loaded = await loadIndex(this.ctx.dir, log.mailboxId, handle, { ino, birthtimeMs: info.birthtimeMs, bytes: size }).catch((error: unknown) => ({ ignored: String(error) }));
      if ('ignored' in loaded) {
        if (loaded.ignored !== 'none') this.ctx.logger.debug('ledger index not used; replaying the whole log', { mailboxId: log.mailboxId, reason: loaded.ignored });
        return readLog(handle, size, source);
      }
      const tail = await readLog(handle, size, source, LOG_READ_CHUNK_BYTES, loaded.header.coveredBytes);
      return { ...tail, index: { ...loaded, source } };
    }
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
      log.out = [];
      log.outStart = log.fileSize;
      log.outBytes = 0;
      if (created) log.append({ t: 'hdr', v: LEDGER_FORMAT_VERSION, mailboxId: log.mailboxId });
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
        log.appended = true;
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
      const ino = log.ino;
      await compactNow(this.ctx, log).then(
        // A new log: its index, so the next load replays nothing.
        () => (log.ino !== ino ? this.writeIndex(log, true) : undefined),
        (error: unknown) => {
          log.compactFailedAt = log.fileSize;
          this.ctx.logger.error('ledger compaction failed', { mailboxId: log.mailboxId, error: String(error) });
        },
      );
    } else if (!log.compactScheduled && needsCompaction(this.ctx, log)) {
      log.compactScheduled = true;
      log.commits.submit(COMPACT).catch(() => undefined);
    }
  }

  /**
   * Write the index of the log as this instance left it (its model is what the file's first
   * `validBytes` bytes hold), if it wrote to the log and the index it loaded or wrote last
   * covers less than `indexMinBytes` short of that. Call it with no batch under way (close, or
   * inside the write queue). A failure is logged: the log is the truth and is intact.
   */
  async writeIndex(log: MailboxLog, force = false): Promise<void> {
    if (log.handle === undefined || log.dead !== undefined || log.corruptAt !== undefined || log.validBytes === 0) return;
    if (!force && (!log.appended || log.validBytes - log.indexedBytes < this.ctx.indexMinBytes)) return;
    try {
      const data = await indexOf(log.model, log.handle, log.ino, log.validBytes);
      if (data === undefined) return;
      await writeIndexFile(this.ctx.dir, log.mailboxId, data);
      log.indexedBytes = log.validBytes;
    } catch (error) {
      this.ctx.logger.warn('could not write the ledger index; the next load replays the whole log', { mailboxId: log.mailboxId, error: String(error) });
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
