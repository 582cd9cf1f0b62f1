/**
 * One mailbox's log as the file ledger holds it: the open file, the model replayed from it, the
 * state of its torn tail and compaction, and its write queue (a batch of ops per fsync).
 */
import type { FileHandle } from 'node:fs/promises';
import { DrainError } from '../../drain/errors.js';
import type { DrainLogger } from '../../drain/ports.js';
import { isRetryableFsError, type DirectoryMaker } from './durable-fs.js';
import { GroupCommit } from './group-commit.js';
import { encodeRecord, LedgerModel, type LedgerRecord } from './ledger-log.js';
import { fsFailureText } from './fs-failure-text.js';

/** One change to a mailbox's log, run in its batch: applies itself and emits its lines. */
export type Op = (log: MailboxLog) => void;
export const COMPACT: Op = (log) => {
  log.compactRequested = true;
};

/** A mailbox's log: the file, its replayed model, and its write queue. */
export class MailboxLog {
  model: LedgerModel;
  handle: FileHandle | undefined;
  /** Inode and size of the file as this instance last left it (size includes a torn tail). */
  ino = 0;
  fileSize = 0;
  /** Bytes of the complete lines; a writer truncates the file to this before appending. */
  validBytes = 0;
  /**
   * Byte offset of garbage in the file (ledger-log.ts decodeLog): the log is unreadable, its
   * model starts empty, and the next write sets the file aside instead of truncating it.
   */
  corruptAt: number | undefined;
  /** Bytes of the log its index covers (loaded or written by this instance; 0: none). */
  indexedBytes = 0;
  /** This instance appended to the log since it loaded it. */
  appended = false;
  /** Entries past their expiry when the log was loaded (for the compaction estimate). */
  expiredAtLoad = 0;
  /** Lines of the batch being built, and where the batch starts in the file and its bytes so far. */
  out: Buffer[] = [];
  outStart = 0;
  outBytes = 0;
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
    this.model.apply(record, line.length, this.outStart + this.outBytes);
    this.out.push(line);
    this.outBytes += line.length;
  }
}

export function ledgerError(action: string, mailboxId: string, cause: unknown): DrainError {
  if (cause instanceof DrainError) return cause;
  const reason = fsFailureText(cause);
  return new DrainError('LEDGER_FAILED', `cannot ${action} the ledger of mailbox ${mailboxId}: ${reason}`, {
    phase: 'ledger',
    retryable: isRetryableFsError(cause),
    cause,
  });
}

/** What the log's file operations need from the ledger that owns it. */
export interface LogContext {
  /** Folder of the logs. */
  readonly dir: string;
  readonly dirs: DirectoryMaker;
  readonly logger: DrainLogger;
  /** Epoch ms, for dropping expired entries at compaction. */
  readonly now: () => number;
  readonly compactMinBytes: number;
  /** The index is rewritten at close when the log grew this much past what it covers. */
  readonly indexMinBytes: number;
  /** Drop a failed log from the ledger's map: the next call reloads it. */
  forget(log: MailboxLog): void;
}
