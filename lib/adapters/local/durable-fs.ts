/**
 * Small file-system helpers the local adapters share: durable directory creation and
 * directory fsync, whole-buffer writes, and the mapping of errno codes to "may succeed later".
 */
import { constants } from 'node:fs';
import { mkdir, open, stat, type FileHandle } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/** Folders the local adapters create: owner only. */
export const DIR_MODE = 0o700;
/** Files the local adapters create: owner only. */
export const FILE_MODE = 0o600;

/** Flags of a file we create and append to: fails if it exists. */
export const CREATE_APPEND_FLAGS = constants.O_CREAT | constants.O_EXCL | constants.O_RDWR | constants.O_APPEND;
/** Flags of an existing file we append to (and read from with positioned reads). */
export const OPEN_APPEND_FLAGS = constants.O_RDWR | constants.O_APPEND;

/** The errno code of a Node file-system error (`ENOENT`, `ENOSPC`, ...), if any. */
export function errnoCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = (error as { code: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/**
 * Conditions that can clear without anyone changing the configuration: space or quota freed,
 * descriptors released, a busy resource. Permission problems, a read-only file system, a path
 * that is not a directory, and I/O errors (a failing disk) need an operator and are final.
 */
const RETRYABLE_CODES = new Set(['ENOSPC', 'EDQUOT', 'EMFILE', 'ENFILE', 'EAGAIN', 'EBUSY', 'EINTR', 'ETIMEDOUT']);

export function isRetryableFsError(error: unknown): boolean {
  const code = errnoCode(error);
  return code !== undefined && RETRYABLE_CODES.has(code);
}

/** fsync a directory so that entries created, linked, renamed or removed in it are durable. */
export async function fsyncDirectory(dir: string): Promise<void> {
  // Windows cannot open a directory for fsync; NTFS journals the metadata itself.
  if (process.platform === 'win32') return;
  const handle = await open(dir, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * `mkdir -p` with mode 0700 whose result survives a crash: each created folder's entry in its
 * parent is made durable by fsyncing the parent.
 */
export async function makeDurableDirectory(path: string): Promise<void> {
  const dir = resolve(path);
  const first = await mkdir(dir, { recursive: true, mode: DIR_MODE }).catch((error: unknown) => realMkdirError(dir, error));
  if (first === undefined) return;
  // Folders created, outermost first: first ... dir. Each one's parent needs an fsync.
  const created: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    created.unshift(d);
    if (d === first || dirname(d) === d) break;
  }
  for (const d of created) await fsyncDirectory(dirname(d));
}

/**
 * A recursive mkdir reports ENOENT where a plain one would tell why (EROFS on a read-only file
 * system, EACCES): the nearest existing ancestor's first missing child is made plainly, and
 * that error is thrown instead (the original when the diagnosis finds nothing better).
 */
export async function realMkdirError(dir: string, error: unknown): Promise<never> {
  if (errnoCode(error) !== 'ENOENT') throw error;
  let child = dir;
  for (let parent = dirname(child); parent !== child; child = parent, parent = dirname(parent)) {
    const exists = await stat(parent).then(
      (info) => info.isDirectory(),
      () => false,
    );
    if (!exists) continue;
    const real = await mkdir(child, { mode: DIR_MODE }).then(
      () => undefined,
      (e: unknown) => e,
    );
    if (real !== undefined && errnoCode(real) !== 'EEXIST' && errnoCode(real) !== 'ENOENT') throw real;
    break;
  }
  throw error;
}

/** Memoizes makeDurableDirectory per folder (a failure is not remembered). */
export class DirectoryMaker {
  private readonly made = new Map<string, Promise<void>>();

  ensure(dir: string): Promise<void> {
    let p = this.made.get(dir);
    if (p === undefined) {
      p = makeDurableDirectory(dir);
      this.made.set(dir, p);
      p.catch(() => this.made.delete(dir));
    }
    return p;
  }
}

/**
 * Write all of `data` at the file's current position (or end, with O_APPEND). `single`: fail
 * instead of continuing after a short write, so the bytes that land are one write call
 * (whole lines, never interleaved with another process's appends).
 */
export async function writeFully(handle: FileHandle, data: Buffer, single = false): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await handle.write(data, offset, data.length - offset, null);
    offset += bytesWritten;
    if (offset < data.length && (single || bytesWritten === 0)) {
      const error = new Error(`short write: ${offset} of ${data.length} bytes`) as NodeJS.ErrnoException;
      error.code = 'ENOSPC';
      throw error;
    }
  }
}

/**
 * Write all of `buffers`, in order, at the file's current position (or end, with O_APPEND): one
 * writev call when the kernel takes them all, more after a short write. Returns the bytes
 * written (all of them).
 */
export async function writevFully(handle: FileHandle, buffers: readonly Buffer[]): Promise<number> {
  let total = 0;
  for (const b of buffers) total += b.length;
  if (buffers.length === 1) {
    await writeFully(handle, buffers[0]!);
    return total;
  }
  let rest = buffers;
  let left = total;
  while (left > 0) {
    const { bytesWritten } = await handle.writev(rest);
    left -= bytesWritten;
    if (left === 0) break;
    if (bytesWritten === 0) {
      const error = new Error(`short write: ${total - left} of ${total} bytes`) as NodeJS.ErrnoException;
      error.code = 'ENOSPC';
      throw error;
    }
    rest = afterBytes(rest, bytesWritten);
  }
  return total;
}

/** The buffers that remain after the first `bytes` bytes of `buffers`. */
function afterBytes(buffers: readonly Buffer[], bytes: number): Buffer[] {
  let skip = bytes;
  let i = 0;
  while (skip >= buffers[i]!.length) skip -= buffers[i++]!.length;
  const rest = buffers.slice(i);
  rest[0] = rest[0]!.subarray(skip);
  return rest;
}

/** Read `length` bytes at `position` (fewer at end of file). */
export async function readAt(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(buffer, filled, length - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return buffer.subarray(0, filled);
}

/** Whether a process with this pid exists on this host (EPERM: it exists, owned by another user). */
export function processExists(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errnoCode(error) === 'EPERM';
  }
}
