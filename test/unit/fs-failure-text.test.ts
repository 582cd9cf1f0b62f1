// The wording of local file-system failures: one errno code, Node's description with the path, a hint.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeDurableDirectory } from '../../lib/adapters/local/durable-fs.js';
import { fsFailureText } from '../../lib/adapters/local/fs-failure-text.js';

/** An error shaped as Node's fs makes them (the errno injected, as a read-only mount would give). */
function nodeError(code: string, description: string, syscall: string, path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${description}, ${syscall} '${path}'`), { code, syscall, path });
}

describe('fsFailureText', () => {
  it('names the code once, keeps the call and the path, and adds the fix for a read-only file system', () => {
    const text = fsFailureText(nodeError('EROFS', 'read-only file system', 'open', '/srv/mail/x.part'));
    expect(text).toBe("EROFS: read-only file system, open '/srv/mail/x.part' (the file system is mounted read-only: choose a writable folder or remount it read-write)");
    expect(text.match(/EROFS/g)).toHaveLength(1);
  });

  it('adds the code once to an error whose message lacks it, and leaves other errors as they are', () => {
    expect(fsFailureText(Object.assign(new Error('short write: 3 of 9 bytes'), { code: 'ENOSPC' }))).toBe('ENOSPC: short write: 3 of 9 bytes (the disk is full: free some space, then run again)');
    expect(fsFailureText(nodeError('EACCES', 'permission denied', 'mkdir', '/a'))).toMatch(/^EACCES: permission denied, mkdir '\/a' \(permission denied: check the owner/);
    expect(fsFailureText(new Error('plain'))).toBe('plain');
    expect(fsFailureText(nodeError('EIO', 'i/o error', 'read', '/a'))).toBe("EIO: i/o error, read '/a'");
  });
});

describe('makeDurableDirectory', () => {
  it('reports why a folder cannot be made, not ENOENT, when a part of its path is a file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'popdrain-mkdir-'));
    try {
      await writeFile(join(dir, 'file'), 'x');
      const error = await makeDurableDirectory(join(dir, 'file', 'a', 'b')).then(
        () => undefined,
        (e: unknown) => e as NodeJS.ErrnoException,
      );
      expect(error?.code).toBe('ENOTDIR');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
