/**
 * The UIDL ledger of one machine: one append-only log per mailbox, `<dir>/<mailboxId>.ledger`
 * (format: ledger-log.ts), replayed into memory on first use, and a lease file beside it
 * (file-lease.ts).
 *
 * Durability: a write (record, markAnnounced, markDeleted, updateMailboxState) resolves only
 * after its line is fsynced. Calls that arrive together share one write and one fsync (group
 * commit); while an fsync is in flight, new calls gather for the next one. A crash (kill -9,
 * power loss) can only tear the last line: replay ignores it and the next writer truncates it.
 *
 * Compaction: when a log grows to `compactMinBytes` and more than twice its live state, it is
 * rewritten as a snapshot (temp file, fsync, rename over the log, fsync the folder), in the
 * same queue as the appends. A crash before the rename leaves the old log (complete), after it
 * the new one (complete). Entries past their `expiresAt` are dropped then, as DynamoDB's TTL
 * would.
 *
 * One writer per mailbox: the holder of its lease. Other processes may read at any time
 * (reading never changes the file). A writer that finds the log changed under it (another
 * process appended or compacted) reloads it before writing.
 *
 * Reads (lookup, pending, getMailboxState) see this instance's memory: writes of a batch are
 * visible to them while that batch's fsync is in flight. Entries returned are copies; their
 * nested objects (the event) are shared with the ledger and must be treated as read-only.
 */
import { randomBytes } from 'node:crypto';
import { open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DrainError } from '../../drain/errors.js';
import { mailboxIdProblem } from '../../drain/keys.js';
import {
  silentLogger,
  type DrainLogger,
  type Lease,
  type LedgerEntry,
  type MailboxState,
  type MailboxStateUpdate,
  type RecordOutcome,
  type UidlLedger,
} from '../../drain/ports.js';
import {
  CREATE_APPEND_FLAGS,
  DirectoryMaker,
  errnoCode,
  FILE_MODE,
  fsyncDirectory,
  isRetryableFsError,
  OPEN_APPEND_FLAGS,
  processExists,
  readAt,
  writeFully,
} from './durable-fs.js';
import { FileLeases } from './file-lease.js';
import { GroupCommit } from './group-commit.js';
import {
  decodeLog,
  encodeEntryLine,
  encodeRecord,
  entryJson,
  isExpired,
  LEDGER_FORMAT_VERSION,
  LedgerModel,
  updatedState,
  type LedgerRecord,
} from './ledger-log.js';

/** Logs smaller than this are never compacted. */
export const DEFAULT_COMPACT_MIN_BYTES = 4 * 1024 * 1024;
/** Compact when the log is more than this many times the size of its live state. */
const COMPACT_RATIO = 2;
/** Reloads before one batch (the log changed under us each time) before giving up. */
const MAX_RELOADS = 5;

export interface FileLedgerOptions {
  /** Folder of the logs and lease files; created (0700) on first write. */
  dir: string;
  /** @default DEFAULT_COMPACT_MIN_BYTES (4 MiB) */
  compactMinBytes?: number;
  /** Epoch ms, for dropping expired entries at compaction. @default Date.now */
  now?: () => number;
  /** @default silence */
  logger?: DrainLogger;
}

/** One change to a mailbox's log, run in its batch: applies itself and emits its lines. */
type Op = (log: MailboxLog) => void;
const COMPACT: Op = (log) => {
  log.compactRequested = true;
};

/** A mailbox's log: the file, its replayed model, and its write queue. */
class MailboxLog {
  model: LedgerModel;
  handle: FileHandle | undefined;
  /** Inode and size of the file as this instance last left it (size includes a torn tail). */
  ino = 0;
  fileSize = 0;
  /** Bytes of the complete lines; a writer truncates the file to this before appending. */
  validBytes = 0;
  /** Entries past their expiry when the log was loaded (for the compaction estimate). */
  expiredAtLoad = 0;
  /** Lines of the batch being built. */
  out: Buffer[] = [];
  compactRequested = false;
  compactScheduled = false;
  /** File size when a compaction last failed: the next try waits for more growth. */
  compactFailedAt = -Infinity;
  /** Compaction temp files of crashed runs were looked for (once, before the first append). */
  swept = false;
  dead: DrainError | undefined;
  /** The promise the ledger's map holds for this log. */
  loading: Promise<MailboxLog> | undefined;
  readonly commits: GroupCommit<Op>;

  constructor(
    readonly mailboxId: string,
    readonly path: string,
    flush: (log: MailboxLog, ops: Op[]) => Promise<void>,
  ) {
    this.model = new LedgerModel(mailboxId);
    this.commits = new GroupCommit<Op>((ops) => flush(this, ops));
  }

  /** Apply a record to the model and queue its line for this batch. */
  append(record: LedgerRecord, line: Buffer = encodeRecord(record)): void {
    this.model.apply(record, line.length);
    this.out.push(line);
  }
}

function ledgerError(action: string, mailboxId: string, cause: unknown): DrainError {
  if (cause instanceof DrainError) return cause;
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new DrainError('LEDGER_FAILED', `cannot ${action} the ledger of mailbox ${mailboxId}: ${reason}`, {
    phase: 'ledger',
    retryable: isRetryableFsError(cause),
    cause,
  });
}

export class FileLedger implements UidlLedger {
  readonly dir: string;
  private readonly logger: DrainLogger;
  private readonly compactMinBytes: number;
  private readonly now: () => number;
  private readonly dirs = new DirectoryMaker();
  private readonly leases: FileLeases;
  private readonly logs = new Map<string, Promise<MailboxLog>>();

  constructor(options: FileLedgerOptions) {
    this.dir = resolve(options.dir);
    this.logger = options.logger ?? silentLogger;
    this.compactMinBytes = options.compactMinBytes ?? DEFAULT_COMPACT_MIN_BYTES;
    this.now = options.now ?? Date.now;
    this.leases = new FileLeases(this.dir, this.dirs);
  }

  // ----------------------------------------------------------------------------------------
  // Lease

  acquireLease(mailboxId: string, owner: string, ttlMs: number, now: number): Promise<Lease | undefined> {
    this.checkMailboxId(mailboxId);
    return this.leases.acquire(mailboxId, owner, ttlMs, now);
  }

  renewLease(lease: Lease, ttlMs: number, now: number): Promise<Lease> {
    this.checkMailboxId(lease.mailboxId);
    return this.leases.renew(lease, ttlMs, now);
  }

  releaseLease(lease: Lease): Promise<void> {
    this.checkMailboxId(lease.mailboxId);
    return this.leases.release(lease);
  }

  leaseHolder(mailboxId: string, now: number): Promise<Lease | undefined> {
    this.checkMailboxId(mailboxId);
    return this.leases.holder(mailboxId, now);
  }

  // ----------------------------------------------------------------------------------------
  // Reads

  async getMailboxState(mailboxId: string): Promise<MailboxState> {
    const log = await this.log(mailboxId);
    return { ...structuredClone(log.model.state), mailboxId };
  }

  async lookup(mailboxId: string, uidls: readonly string[]): Promise<Map<string, LedgerEntry>> {
    const log = await this.log(mailboxId);
    const found = new Map<string, LedgerEntry>();
    for (const uidl of uidls) {
      const entry = log.model.entries.get(uidl);
      if (entry !== undefined) found.set(uidl, { ...entry });
    }
    return found;
  }

  async pending(mailboxId: string): Promise<LedgerEntry[]> {
    const log = await this.log(mailboxId);
    const out: LedgerEntry[] = [];
    for (const entry of log.model.entries.values()) if (entry.status === 'stored') out.push({ ...entry });
    return out;
  }

  /** How many entries the mailbox has in each status, and how many are deleted from the server. */
  async counts(mailboxId: string): Promise<{ stored: number; announced: number; skipped: number; deleted: number }> {
    const log = await this.log(mailboxId);
    const counts = { stored: 0, announced: 0, skipped: 0, deleted: 0 };
    for (const entry of log.model.entries.values()) {
      counts[entry.status] += 1;
      if (entry.deletedAt !== undefined) counts.deleted += 1;
    }
    return counts;
  }

  /** The ids of the mailboxes this ledger folder holds. */
  async mailboxIds(): Promise<string[]> {
    const names = await readdir(this.dir).catch((error: unknown) => {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [] as string[];
      throw error;
    });
    return names
      .filter((n) => n.endsWith('.ledger') && !n.startsWith('.'))
      .map((n) => n.slice(0, -'.ledger'.length))
      .sort();
  }

  // ----------------------------------------------------------------------------------------
  // Writes

  async record(entries: readonly LedgerEntry[]): Promise<RecordOutcome[]> {
    const outcomes: RecordOutcome[] = new Array<RecordOutcome>(entries.length);
    // Usually all of one mailbox: one batch item for the whole call.
    const byMailbox = new Map<string, number[]>();
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      this.checkMailboxId(entry.mailboxId);
      if (typeof entry.uidl !== 'string' || entry.uidl.length === 0) {
        throw new DrainError('LEDGER_FAILED', `cannot record an entry of mailbox ${entry.mailboxId} without a UIDL`, {
          phase: 'ledger',
          retryable: false,
        });
      }
      const list = byMailbox.get(entry.mailboxId);
      if (list === undefined) byMailbox.set(entry.mailboxId, [i]);
      else list.push(i);
    }
    const writes: Promise<void>[] = [];
    for (const [mailboxId, indexes] of byMailbox) {
      // Serialize before the batch (off the flush); keep a copy of the caller's entry (its
      // nested objects are shared: entries are values, nobody mutates them).
      const prepared = indexes.map((i) => {
        const entry = { ...entries[i]! };
        return { i, entry, line: encodeEntryLine(entryJson(entry)) };
      });
      writes.push(
        this.submit(mailboxId, (log) => {
          for (const { i, entry, line } of prepared) {
            const existing = log.model.entries.get(entry.uidl);
            if (existing !== undefined) {
              outcomes[i] = { uidl: entry.uidl, ok: false, conflict: { ...existing } };
            } else {
              log.append({ t: 'rec', e: entry }, line);
              outcomes[i] = { uidl: entry.uidl, ok: true };
            }
          }
        }),
      );
    }
    await (writes.length === 1 ? writes[0] : Promise.all(writes));
    return outcomes;
  }

  async markAnnounced(mailboxId: string, uidls: readonly string[], at: number): Promise<void> {
    await this.submit(mailboxId, (log) => {
      const changed = log.model.toAnnounce(uidls);
      if (changed.length > 0) log.append({ t: 'ann', u: changed, at });
    });
  }

  async markDeleted(mailboxId: string, uidls: readonly string[], at: number, expiresAt: number): Promise<void> {
    await this.submit(mailboxId, (log) => {
      const changed = log.model.toDelete(uidls, expiresAt);
      if (changed.length > 0) log.append({ t: 'del', u: changed, at, exp: expiresAt });
    });
  }

  async updateMailboxState(mailboxId: string, update: MailboxStateUpdate): Promise<void> {
    await this.submit(mailboxId, (log) => {
      log.append({ t: 'st', s: updatedState(log.model.state, update) });
    });
  }

  /** Rewrite the mailbox's log as a snapshot of its live state now (also done automatically). */
  async compact(mailboxId: string): Promise<void> {
    await this.submit(mailboxId, COMPACT);
  }

  /** Wait for writes in flight and close the files. The ledger can be used again afterwards. */
  async close(): Promise<void> {
    const logs = [...this.logs.values()];
    this.logs.clear();
    for (const pending of logs) {
      const log = await pending.catch(() => undefined);
      if (log === undefined) continue;
      await log.commits.drained();
      log.dead ??= new DrainError('LEDGER_FAILED', `the ledger of mailbox ${log.mailboxId} was closed`, {
        phase: 'ledger',
        retryable: true,
      });
      await log.handle?.close().catch(() => undefined);
      log.handle = undefined;
    }
  }

  // ----------------------------------------------------------------------------------------
  // Internals

  /** Drop a failed log from the map (unless it was replaced already): the next call reloads. */
  private forget(log: MailboxLog): void {
    if (this.logs.get(log.mailboxId) === log.loading) this.logs.delete(log.mailboxId);
  }

  private checkMailboxId(mailboxId: string): void {
    const problem = mailboxIdProblem(mailboxId);
    if (problem !== undefined) {
      throw new DrainError('CONFIG_INVALID', `invalid mailbox id ${JSON.stringify(mailboxId)}: ${problem}`, {
        phase: 'config',
        retryable: false,
      });
    }
  }

  private submit(mailboxId: string, op: Op): Promise<void> {
    return this.log(mailboxId).then((log) => log.commits.submit(op));
  }

  private log(mailboxId: string): Promise<MailboxLog> {
    let log = this.logs.get(mailboxId);
    if (log === undefined) {
      this.checkMailboxId(mailboxId);
      const created = new MailboxLog(mailboxId, join(this.dir, `${mailboxId}.ledger`), (l, ops) => this.flush(l, ops));
      log = this.load(created).then(
        () => created,
        (error: unknown) => {
          throw ledgerError('read', mailboxId, error);
        },
      );
      created.loading = log;
      this.logs.set(mailboxId, log);
      log.catch(() => this.forget(created));
    }
    return log;
  }

  /** (Re)read the log from disk into a fresh model, keeping its file open for appends. */
  private async load(log: MailboxLog): Promise<void> {
    await log.handle?.close().catch(() => undefined);
    log.handle = undefined;
    log.model = new LedgerModel(log.mailboxId);
    log.ino = 0;
    log.fileSize = 0;
    log.validBytes = 0;
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
      const data = await readAt(handle, 0, info.size);
      const decoded = decodeLog(data);
      decoded.records.forEach((record, i) => log.model.apply(record, decoded.sizes[i]!));
      if (decoded.corruptLines > 0) {
        this.logger.warn('ledger lines failed their checksum and were skipped', {
          mailboxId: log.mailboxId,
          lines: decoded.corruptLines,
        });
      }
      const now = this.now();
      for (const entry of log.model.entries.values()) if (isExpired(entry, now)) log.expiredAtLoad++;
      log.handle = handle;
      log.ino = info.ino;
      log.fileSize = data.length;
      log.validBytes = decoded.validBytes;
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
  }

  /** One batch: make the file writable, apply the ops, append their lines, fsync. */
  private async flush(log: MailboxLog, ops: Op[]): Promise<void> {
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
        if (created) await fsyncDirectory(this.dir);
      }
    } catch (error) {
      // The model may hold changes the file does not: forget it (the next call reloads), and
      // take back a partial append so that no line of a failed batch survives.
      const failure = ledgerError('write', log.mailboxId, error);
      log.dead = failure;
      this.forget(log);
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
      await this.compactNow(log).catch((error: unknown) => {
        log.compactFailedAt = log.fileSize;
        this.logger.error('ledger compaction failed', { mailboxId: log.mailboxId, error: String(error) });
      });
    } else if (!log.compactScheduled && this.needsCompaction(log)) {
      log.compactScheduled = true;
      log.commits.submit(COMPACT).catch(() => undefined);
    }
  }

  /**
   * Before a batch: create the file (true when created), or check that nobody else changed it
   * since we read it (reload if so), and truncate a torn tail.
   */
  private async prepareForAppend(log: MailboxLog, attempt = 0): Promise<boolean> {
    if (attempt > MAX_RELOADS) {
      const error = new Error('the log keeps changing under this writer (is another process writing it?)');
      (error as NodeJS.ErrnoException).code = 'EBUSY';
      throw error;
    }
    if (log.handle === undefined) {
      await this.dirs.ensure(this.dir);
      try {
        log.handle = await open(log.path, CREATE_APPEND_FLAGS, FILE_MODE);
      } catch (error) {
        if (errnoCode(error) !== 'EEXIST') throw error;
        // Created by someone else since we looked: read it.
        await this.load(log);
        return this.prepareForAppend(log, attempt + 1);
      }
      log.ino = (await log.handle.stat()).ino;
      await this.removeStaleCompactions(log);
      return true;
    }
    const current = await stat(log.path).catch((error: unknown) => {
      if (errnoCode(error) === 'ENOENT') return undefined;
      throw error;
    });
    if (current === undefined || current.ino !== log.ino || current.size !== log.fileSize) {
      this.logger.warn('ledger changed by another process; reloading it', { mailboxId: log.mailboxId });
      await this.load(log);
      return this.prepareForAppend(log, attempt + 1);
    }
    if (log.fileSize > log.validBytes) {
      await log.handle.truncate(log.validBytes);
      await log.handle.datasync();
      this.logger.warn('truncated a torn ledger tail', {
        mailboxId: log.mailboxId,
        bytes: log.fileSize - log.validBytes,
      });
      log.fileSize = log.validBytes;
    }
    await this.removeStaleCompactions(log);
    // Nothing valid was left (a crash while the file was being created): start it afresh.
    return log.fileSize === 0;
  }

  private needsCompaction(log: MailboxLog): boolean {
    if (log.fileSize < this.compactMinBytes || log.fileSize < log.compactFailedAt + this.compactMinBytes) return false;
    const model = log.model;
    const averageEntryBytes = model.recordLines > 0 ? model.recordBytes / model.recordLines : 0;
    const liveEntries = Math.max(0, model.entries.size - log.expiredAtLoad);
    return log.fileSize > COMPACT_RATIO * (averageEntryBytes * liveEntries + 1024);
  }

  /**
   * Replace the log by a snapshot: write it under a temp name, fsync, rename over the log,
   * fsync the folder. Runs inside the flush queue, so no append can interleave.
   */
  private async compactNow(log: MailboxLog): Promise<void> {
    const snapshot = log.model.snapshot(this.now());
    const lines = snapshot.map((record) => encodeRecord(record));
    const data = Buffer.concat(lines);
    const temp = join(this.dir, `.${log.mailboxId}.ledger.${process.pid}.${randomBytes(6).toString('hex')}.compact`);
    let handle: FileHandle | undefined;
    try {
      handle = await open(temp, CREATE_APPEND_FLAGS, FILE_MODE);
      await writeFully(handle, data);
      await handle.datasync();
      await rename(temp, log.path);
    } catch (error) {
      // The old log is intact: compaction can wait for another time.
      await handle?.close().catch(() => undefined);
      await unlink(temp).catch(() => undefined);
      log.compactFailedAt = log.fileSize;
      this.logger.warn('ledger compaction failed; the log is unchanged', {
        mailboxId: log.mailboxId,
        error: error instanceof Error ? error.message : String(error),
      });
      return;
    }
    const old = log.handle;
    try {
      // Until the rename is durable, appends must not go to the new file.
      await fsyncDirectory(this.dir);
      const info = await handle.stat();
      log.handle = handle;
      log.ino = info.ino;
    } catch (error) {
      const failure = ledgerError('compact', log.mailboxId, error);
      log.dead = failure;
      this.forget(log);
      await handle.close().catch(() => undefined);
      await old?.close().catch(() => undefined);
      log.handle = undefined;
      throw failure;
    }
    await old?.close().catch(() => undefined);
    const before = log.fileSize;
    log.fileSize = data.length;
    log.validBytes = data.length;
    // The model now matches the snapshot: expired entries are gone, sizes are fresh.
    const model = new LedgerModel(log.mailboxId);
    snapshot.forEach((record, i) => model.apply(record, lines[i]!.length));
    log.model = model;
    log.expiredAtLoad = 0;
    this.logger.info('ledger compacted', { mailboxId: log.mailboxId, fromBytes: before, toBytes: data.length });
  }

  /** Remove compaction temp files left by crashed processes (or by this one). */
  private async removeStaleCompactions(log: MailboxLog): Promise<void> {
    if (log.swept) return;
    log.swept = true;
    const prefix = `.${log.mailboxId}.ledger.`;
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return;
    }
    for (const name of names) {
      if (!name.startsWith(prefix) || !name.endsWith('.compact')) continue;
      const pid = Number(name.slice(prefix.length).split('.')[0]);
      if (pid !== process.pid && processExists(pid)) continue;
      await unlink(join(this.dir, name)).catch(() => undefined);
    }
  }
}
