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
 *
 * The parts: mailbox-log.ts (one mailbox's log in memory), mailbox-log-files.ts (replay and
 * batched appends), log-compaction.ts (snapshots), file-lease.ts (leases), ledger-log.ts (format).
 */
import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DrainError } from '../../drain/errors.js';
import { mailboxIdProblem } from '../../drain/keys.js';
import { triageCode } from '../../drain/listing-triage.js';
import {
  silentLogger,
  TRIAGE,
  type DrainLogger,
  type Lease,
  type LedgerEntry,
  type ListingTriage,
  type LookupOptions,
  type MailboxState,
  type MailboxStateUpdate,
  type RecordOutcome,
  type RequestMarker,
  type UidlLedger,
} from '../../drain/ports.js';
import { DirectoryMaker } from './durable-fs.js';
import { FileLeases } from './file-lease.js';
import { copyEntry, entryKeptWith } from './lazy-event-entry.js';
import { encodeEntryLine, entryJson, updatedState } from './ledger-log.js';
import { LogEventSource } from './log-event-source.js';
import { COMPACT, ledgerError, MailboxLog, type LogContext, type Op } from './mailbox-log.js';
import { MailboxLogFiles } from './mailbox-log-files.js';

/** Logs smaller than this are never compacted. */
export const DEFAULT_COMPACT_MIN_BYTES = 4 * 1024 * 1024;

/** A writer rewrites the index at close once the log grew this much past what the index covers. */
export const DEFAULT_INDEX_MIN_BYTES = 64 * 1024;

export interface FileLedgerOptions {
  /** Folder of the logs and lease files; created (0700) on first write. */
  dir: string;
  /** @default DEFAULT_COMPACT_MIN_BYTES (4 MiB) */
  compactMinBytes?: number;
  /**
   * Close rewrites a mailbox's index (ledger-index-file.ts) when this instance appended to its
   * log and the log grew this many bytes past what the index covers (0: at every close).
   * @default DEFAULT_INDEX_MIN_BYTES (64 KiB)
   */
  indexMinBytes?: number;
  /** Epoch ms, for dropping expired entries at compaction. @default Date.now */
  now?: () => number;
  /** @default silence */
  logger?: DrainLogger;
}

export class FileLedger implements UidlLedger, LogContext {
  readonly dir: string;
  /** @internal */
  readonly logger: DrainLogger;
  /** @internal */
  readonly compactMinBytes: number;
  /** @internal */
  readonly indexMinBytes: number;
  /** @internal */
  readonly now: () => number;
  /** @internal */
  readonly dirs = new DirectoryMaker();
  private readonly files = new MailboxLogFiles(this);
  private readonly leases: FileLeases;
  private readonly logs = new Map<string, Promise<MailboxLog>>();
  /** For each log, the file its settled entries are read from (the inode they were written to). */
  private readonly sources = new WeakMap<MailboxLog, { ino: number; source: LogEventSource }>();

  constructor(options: FileLedgerOptions) {
    this.dir = resolve(options.dir);
    this.logger = options.logger ?? silentLogger;
    this.compactMinBytes = options.compactMinBytes ?? DEFAULT_COMPACT_MIN_BYTES;
    this.indexMinBytes = options.indexMinBytes ?? DEFAULT_INDEX_MIN_BYTES;
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
      const entry = log.model.get(uidl);
      if (entry !== undefined) found.set(uidl, copyEntry(entry));
    }
    return found;
  }

  /** Copies of the entries coded TRIAGE.entry only: a rerun that finds nothing new copies none. */
  async triage(mailboxId: string, uidls: readonly string[], options: LookupOptions): Promise<ListingTriage> {
    const log = await this.log(mailboxId);
    const codes = new Uint8Array(uidls.length);
    const entries = new Map<string, LedgerEntry>();
    for (let i = 0; i < uidls.length; i++) {
      const uidl = uidls[i]!;
      const code = triageCode(log.model.facts(uidl), options.deletePolicy, options.now);
      codes[i] = code;
      if (code === TRIAGE.entry) entries.set(uidl, copyEntry(log.model.get(uidl)!));
    }
    return { codes, entries };
  }

  async pending(mailboxId: string): Promise<LedgerEntry[]> {
    const log = await this.log(mailboxId);
    const out: LedgerEntry[] = [];
    for (const entry of log.model.values((f) => f.status === 'stored')) out.push(copyEntry(entry));
    return out;
  }

  /** How many entries the mailbox has in each status, and how many are deleted from the server. */
  async counts(mailboxId: string): Promise<{ stored: number; announced: number; skipped: number; imported: number; deleted: number }> {
    const log = await this.log(mailboxId);
    const counts = { stored: 0, announced: 0, skipped: 0, imported: 0, deleted: 0 };
    log.model.forEachFacts((entry) => {
      counts[entry.status] += 1;
      if (entry.deletedAt !== undefined) counts.deleted += 1;
    });
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
      if (entry.status !== 'stored' && entry.status !== 'skipped') {
        throw new DrainError(
          'LEDGER_FAILED',
          `cannot record a ledger entry with status '${String(entry.status)}' (UIDL ${entry.uidl}): new entries are 'stored' or 'skipped'`,
          { phase: 'ledger', retryable: false },
        );
      }
      const list = byMailbox.get(entry.mailboxId);
      if (list === undefined) byMailbox.set(entry.mailboxId, [i]);
      else list.push(i);
    }
    const writes: Promise<void>[] = [];
    const written: Array<{ log: MailboxLog | undefined; uidls: string[] }> = [];
    for (const [mailboxId, indexes] of byMailbox) {
      // Serialize before the batch (off the flush); the model keeps its own copy of the
      // caller's entry, with the event as the line's bytes (lazy-event-entry.ts, entryKeptWith).
      const prepared = indexes.map((i) => {
        const line = encodeEntryLine(entryJson(entries[i]!));
        return { i, entry: entryKeptWith(entries[i]!, line), line };
      });
      const batch: { log: MailboxLog | undefined; uidls: string[] } = { log: undefined, uidls: [] };
      written.push(batch);
      writes.push(
        this.submit(mailboxId, (log) => {
          batch.log = log;
          for (const { i, entry, line } of prepared) {
            const existing = log.model.get(entry.uidl);
            // An imported entry (a seen-list's) was never stored: the new entry replaces it.
            if (existing !== undefined && existing.status !== 'imported') {
              outcomes[i] = { uidl: entry.uidl, ok: false, conflict: copyEntry(existing) };
            } else {
              log.append({ t: 'rec', e: entry }, line);
              batch.uidls.push(entry.uidl);
              outcomes[i] = { uidl: entry.uidl, ok: true };
            }
          }
        }),
      );
    }
    await (writes.length === 1 ? writes[0] : Promise.all(writes));
    for (const { log, uidls } of written) if (log !== undefined) this.settle(log, uidls);
    return outcomes;
  }

  /**
   * The lines of `uidls` are durable in the log: its model keeps those entries as columns and
   * reads them from the file when they are needed whole (ledger-model.ts, settle). Skipped when
   * the file cannot be opened for reading as the log's inode (they then stay objects).
   */
  private settle(log: MailboxLog, uidls: readonly string[]): void {
    if (uidls.length === 0 || log.dead !== undefined || log.handle === undefined) return;
    let source = this.sources.get(log);
    if (source === undefined || source.ino !== log.ino) {
      try {
        const opened = LogEventSource.open(log.path);
        if (opened.ino() !== log.ino) {
          opened.close();
          return;
        }
        source = { ino: log.ino, source: opened };
        this.sources.set(log, source);
      } catch {
        return;
      }
    }
    log.model.settle(uidls, source.source);
  }

  /**
   * Record UIDLs another client has already fetched (`popdrain import`) as 'imported' entries,
   * in one write: UIDLs the ledger already has an entry for are left as they are. Resolves how
   * many were added and how many were known.
   */
  async recordImported(mailboxId: string, uidls: readonly string[], at: number): Promise<{ imported: number; known: number }> {
    const counts = { imported: 0, known: 0 };
    await this.submit(mailboxId, (log) => {
      for (const uidl of new Set(uidls)) {
        if (log.model.has(uidl)) {
          counts.known += 1;
          continue;
        }
        log.append({ t: 'rec', e: { mailboxId, uidl, status: 'imported', size: 0, firstSeenAt: at } });
        counts.imported += 1;
      }
    });
    return counts;
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

  /** Decided in the mailbox's write queue, after any reload: no other write of this ledger comes between. */
  async claimRequestMarker(mailboxId: string, marker: RequestMarker, now: number): Promise<boolean> {
    let claimed = false;
    await this.submit(mailboxId, (log) => {
      const held = log.model.state.requestMarker;
      claimed = held === undefined || held.token === marker.token || held.expiresAt <= now;
      if (claimed) log.append({ t: 'st', s: updatedState(log.model.state, { requestMarker: { ...marker } }) });
    });
    return claimed;
  }

  async releaseRequestMarker(mailboxId: string, token: string): Promise<void> {
    await this.submit(mailboxId, (log) => {
      if (log.model.state.requestMarker?.token === token) log.append({ t: 'st', s: updatedState(log.model.state, { requestMarker: null }) });
    });
  }

  /** Rewrite the mailbox's log as a snapshot of its live state now (also done automatically). */
  async compact(mailboxId: string): Promise<void> {
    await this.submit(mailboxId, COMPACT);
  }

  /**
   * Wait for writes in flight, write the index of each log this instance grew enough
   * (`indexMinBytes`), and close the files. The ledger can be used again afterwards.
   */
  async close(): Promise<void> {
    const logs = [...this.logs.values()];
    this.logs.clear();
    for (const pending of logs) {
      const log = await pending.catch(() => undefined);
      if (log === undefined) continue;
      await log.commits.drained();
      await this.files.writeIndex(log);
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

  /** @internal Drop a failed log from the map (unless it was replaced already): the next call reloads. */
  forget(log: MailboxLog): void {
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
      const created = new MailboxLog(mailboxId, join(this.dir, `${mailboxId}.ledger`), (l, ops) => this.files.flush(l, ops));
      log = this.files.load(created).then(
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
}
