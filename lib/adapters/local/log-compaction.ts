/**
 * Compaction of a mailbox's log: when the log grows to `compactMinBytes` and more than twice its
 * live state, it is rewritten as a snapshot (temp file, fsync, rename over the log, fsync the
 * folder), inside the log's write queue. Entries past their expiry are dropped then.
 */
import { randomBytes } from 'node:crypto';
import { open, readdir, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { CREATE_APPEND_FLAGS, FILE_MODE, fsyncDirectory, processExists, writeFully } from './durable-fs.js';
import { entryJsonInOrder } from './lazy-event-entry.js';
import { INDEX_TEMP_SUFFIX } from './ledger-index-file.js';
import { encodeEntryLine, encodeRecord, LedgerModel } from './ledger-log.js';
import { ledgerError, type LogContext, type MailboxLog } from './mailbox-log.js';
import { describeError } from '../../drain/errors.js';

/** Compact when the log is more than this many times the size of its live state. */
const COMPACT_RATIO = 2;

export function needsCompaction(ctx: LogContext, log: MailboxLog): boolean {
  if (log.fileSize < ctx.compactMinBytes || log.fileSize < log.compactFailedAt + ctx.compactMinBytes) return false;
  const model = log.model;
  const averageEntryBytes = model.recordLines > 0 ? model.recordBytes / model.recordLines : 0;
  const liveEntries = Math.max(0, model.size - log.expiredAtLoad);
  return log.fileSize > COMPACT_RATIO * (averageEntryBytes * liveEntries + 1024);
}

/**
 * Replace the log by a snapshot: write it under a temp name, fsync, rename over the log,
 * fsync the folder. Runs inside the flush queue, so no append can interleave.
 */
export async function compactNow(ctx: LogContext, log: MailboxLog): Promise<void> {
  const snapshot = log.model.snapshot(ctx.now());
  // As JSON.stringify(record) writes it; events replayed but never read are copied as text.
  const lines = snapshot.map((record) => (record.t === 'rec' ? encodeEntryLine(entryJsonInOrder(record.e)) : encodeRecord(record)));
  const data = Buffer.concat(lines);
  const temp = join(ctx.dir, `.${log.mailboxId}.ledger.${process.pid}.${randomBytes(6).toString('hex')}.compact`);
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
    ctx.logger.warn('ledger compaction failed; the log is unchanged', {
      mailboxId: log.mailboxId,
      error: describeError(error),
    });
    return;
  }
  const old = log.handle;
  try {
    // Until the rename is durable, appends must not go to the new file.
    await fsyncDirectory(ctx.dir);
    const info = await handle.stat();
    log.handle = handle;
    log.ino = info.ino;
  } catch (error) {
    const failure = ledgerError('compact', log.mailboxId, error);
    log.dead = failure;
    ctx.forget(log);
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
  let offset = 0;
  snapshot.forEach((record, i) => {
    model.apply(record, lines[i]!.length, offset);
    offset += lines[i]!.length;
  });
  log.model = model;
  log.expiredAtLoad = 0;
  ctx.logger.info('ledger compacted', { mailboxId: log.mailboxId, fromBytes: before, toBytes: data.length });
}

/** Remove compaction and index temp files left by crashed processes (or by this one). */
export async function removeStaleCompactions(ctx: LogContext, log: MailboxLog): Promise<void> {
  if (log.swept) return;
  log.swept = true;
  const prefix = `.${log.mailboxId}.ledger.`;
  let names: string[];
  try {
    names = await readdir(ctx.dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix) || !(name.endsWith('.compact') || name.endsWith(INDEX_TEMP_SUFFIX))) continue;
    const pid = Number(name.slice(prefix.length).split('.')[0]);
    if (pid !== process.pid && processExists(pid)) continue;
    await unlink(join(ctx.dir, name)).catch(() => undefined);
  }
}
