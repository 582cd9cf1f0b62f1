/**
 * The ledger index's file, `<dir>/<mailboxId>.ledger-index` (format: ledger-index-codec.ts):
 * read it and check it against the log being loaded, and write it for a log as this process
 * left it.
 *
 * The index is a cache of a replay, never the truth: a load uses it only when it was built from
 * this very file (inode and birth time), the file is at least as long as what it covers, and
 * the first and last 64 KiB of the covered bytes still have the crc32 it recorded
 * (ledger-index-codec.ts indexProblem says what that tells and what not; the whole log is not
 * read); the lines after them are replayed on top. Otherwise the log is replayed whole. So a
 * crash at any point (before, during or after writing the index, between an append to the log
 * and the next index) leaves a load with what the log says. It is written under a temp name,
 * fsynced and renamed over the old one; the folder is not fsynced, since losing the rename
 * leaves an older index or none, both still checked.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from './crc32.js';
import { CREATE_APPEND_FLAGS, errnoCode, FILE_MODE, writeFully } from './durable-fs.js';
import { checkWindows, decodeIndex, encodeIndex, indexProblem, type IndexHeader, type IndexRow } from './ledger-index-codec.js';
import type { LedgerModel } from './ledger-log.js';
import type { CompactEntries } from './compact-entries.js';

/** Suffix of a mailbox's index file. */
export const INDEX_SUFFIX = '.ledger-index';
/** Suffix of an index temp file (`.<mailboxId>.ledger.<pid>.<random>` before it: swept with compaction temps). */
export const INDEX_TEMP_SUFFIX = '.index-tmp';

export function indexPath(dir: string, mailboxId: string): string {
  return join(dir, `${mailboxId}${INDEX_SUFFIX}`);
}

export type IndexLoad = { header: IndexHeader; entries: CompactEntries } | { ignored: string };

/**
 * The mailbox's index if it describes the log open as `handle` (inode `ino`, born at
 * `birthtimeMs`, `bytes` long), or why not (none, damaged, stale).
 */
export async function loadIndex(dir: string, mailboxId: string, handle: FileHandle, log: { ino: number; birthtimeMs: number; bytes: number }): Promise<IndexLoad> {
  let data: Buffer;
  try {
    data = await readFile(indexPath(dir, mailboxId));
  } catch (error) {
    return { ignored: errnoCode(error) === 'ENOENT' ? 'none' : `unreadable (${String((error as Error).message)})` };
  }
  const decoded = decodeIndex(data);
  if ('problem' in decoded) return { ignored: decoded.problem };
  const facts = { mailboxId, ...log };
  const cheap = indexProblem(decoded.header, facts);
  if (cheap !== undefined) return { ignored: cheap };
  const problem = indexProblem(decoded.header, facts, await windowCrcs(handle, decoded.header.coveredBytes));
  return problem === undefined ? decoded : { ignored: problem };
}

/** The crc32 of the head and tail windows (ledger-index-codec.ts checkWindows) of a prefix of `coveredBytes`. */
export async function windowCrcs(handle: FileHandle, coveredBytes: number): Promise<{ headCrc: number; tailCrc: number }> {
  const { head, tail } = checkWindows(coveredBytes);
  return { headCrc: await rangeCrc(handle, head[0], head[1]), tailCrc: await rangeCrc(handle, tail[0], tail[1]) };
}

/** The crc32 of bytes [start, end) of the file. */
async function rangeCrc(handle: FileHandle, start: number, end: number): Promise<number> {
  const buffer = Buffer.allocUnsafe(Math.max(1, end - start));
  let at = 0;
  while (at < end - start) {
    const { bytesRead } = await handle.read(buffer, at, end - start - at, start + at);
    if (bytesRead === 0) throw new Error(`the log ended at ${start + at} bytes, before ${end}`);
    at += bytesRead;
  }
  return crc32(buffer.subarray(0, end - start));
}

/**
 * The index of `model`, which is what the log open as `handle` (inode `ino`) holds in its first
 * `coveredBytes` bytes; undefined when an entry's line is not known (nothing is written then).
 */
export async function indexOf(model: LedgerModel, handle: FileHandle, ino: number, coveredBytes: number): Promise<Buffer | undefined> {
  const rows: IndexRow[] = [];
  const base = model.base;
  if (base !== undefined) {
    for (let slot = 0; slot < base.count; slot++) {
      const facts = { ...base.facts(slot) };
      rows.push({ uidl: base.uidlAt(slot), facts, lineOffset: base.lineOffset[slot]!, lineLength: base.lineLength[slot]! });
    }
  }
  const complete = model.everyOwnEntry((uidl, facts, place) => {
    if (place === undefined) return false;
    rows.push({ uidl, facts: { ...facts }, lineOffset: place.offset, lineLength: place.length });
    return true;
  });
  if (!complete || rows.some((r) => Number.isNaN(r.lineOffset) || r.lineOffset + r.lineLength >= coveredBytes)) return undefined;
  const info = await handle.stat();
  if (info.ino !== ino) return undefined;
  const header = {
    mailboxId: model.mailboxId,
    ino,
    birthtimeMs: info.birthtimeMs,
    coveredBytes,
    ...(await windowCrcs(handle, coveredBytes)),
    recordBytes: model.recordBytes,
    recordLines: model.recordLines,
    state: model.state,
  };
  return encodeIndex(header, rows);
}

/** Write `data` as the mailbox's index: temp file, fsync, rename over the old one. */
export async function writeIndexFile(dir: string, mailboxId: string, data: Buffer): Promise<void> {
  const temp = join(dir, `.${mailboxId}.ledger.${process.pid}.${randomBytes(6).toString('hex')}${INDEX_TEMP_SUFFIX}`);
  let handle: FileHandle | undefined;
  try {
    handle = await open(temp, CREATE_APPEND_FLAGS, FILE_MODE);
    await writeFully(handle, data);
    await handle.datasync();
    await handle.close();
    handle = undefined;
    await rename(temp, indexPath(dir, mailboxId));
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw error;
  }
}
