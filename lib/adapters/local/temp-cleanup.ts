/**
 * Removal of the temp files crashed runs left in a message folder (`.tmp-<pid>-<nonce>-<n>.part`,
 * never `*.eml`): those of processes that no longer exist, the store's own that it no longer has
 * open, and any other not written for a while (a live writer writes as the message arrives).
 */
import { lstat, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { DrainLogger } from '../../drain/ports.js';
import { errnoCode, processExists } from './durable-fs.js';
import { storeError } from './file-store-checks.js';

/** A temp file left by a live process is only removed once it has not been written for this long. */
export const STALE_TEMP_AGE_MS = 60_000;
/** `.tmp-<pid>-<store instance nonce>-<counter>.part` */
const TEMP_NAME = /^\.tmp-(\d+)-([0-9a-f]+)-\d+\.part$/;

export interface CleanupTempOptions {
  /**
   * A temp file of another live process is removed once unmodified for this long; temp files
   * of dead processes, and this process's own leftovers, are removed at once.
   * @default STALE_TEMP_AGE_MS (one minute)
   */
  staleAfterMs?: number;
  /** @default Date.now() */
  now?: number;
}

/** Whose temp files are whose: the store's open ones, its nonce, and where to log. */
export interface TempOwner {
  readonly active: ReadonlySet<string>;
  readonly nonce: string;
  readonly logger: DrainLogger;
}

/** Remove the stale temp files of `dir`; resolves the number removed. */
export async function removeStaleTemps(dir: string, options: CleanupTempOptions, owner: TempOwner): Promise<number> {
  const staleAfterMs = options.staleAfterMs ?? STALE_TEMP_AGE_MS;
  const now = options.now ?? Date.now();
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return 0;
    throw storeError('list', dir, error);
  }
  let removed = 0;
  for (const name of names) {
    if (!name.startsWith('.tmp-') || !name.endsWith('.part')) continue;
    const path = join(dir, name);
    if (owner.active.has(path)) continue;
    const parts = TEMP_NAME.exec(name);
    const pid = parts === null ? undefined : Number(parts[1]);
    // Ours and not open: a leftover. Another store's in this process: only by age.
    let stale = pid === process.pid ? parts?.[2] === owner.nonce : pid !== undefined && !processExists(pid);
    if (!stale) {
      try {
        stale = now - (await lstat(path)).mtimeMs >= staleAfterMs;
      } catch (error) {
        if (errnoCode(error) === 'ENOENT') continue;
        throw storeError('inspect', path, error);
      }
    }
    if (!stale) continue;
    try {
      await unlink(path);
      removed++;
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT') throw storeError('remove temp', path, error);
    }
  }
  if (removed > 0) owner.logger.info('removed stale temp files', { dir, removed });
  return removed;
}
