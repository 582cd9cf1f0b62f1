/**
 * The file lease on a full disk: a small tmpfs (needs root; CI runs as root, and there a mount
 * that fails is a failure, not a skip) filled to the last byte. Acquiring the lease fails with
 * ENOSPC and leaves no temp file behind.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileLedger } from '../../lib/adapters/local/file-ledger.js';

const IS_ROOT = process.getuid?.() === 0;
const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

/** Fill the file system at `dir` until a write fails with ENOSPC. */
async function fill(dir: string): Promise<void> {
  const chunk = Buffer.alloc(64 * 1024, 1);
  for (let i = 0; ; i++) {
    const error = await writeFile(join(dir, `filler-${i}`), chunk).then(
      () => undefined,
      (e: unknown) => e as NodeJS.ErrnoException,
    );
    if (error !== undefined) {
      expect(error.code).toBe('ENOSPC');
      // The last filler may hold a part: top up with single bytes until not even one fits.
      while (await writeFile(join(dir, `byte-${i}`), 'x').then(() => true, () => false)) i++;
      return;
    }
  }
}

describe.runIf(IS_ROOT)('the lease on a full disk (root: a 256 KiB tmpfs)', () => {
  it('a lease that cannot be written fails with ENOSPC and leaves no temp file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'popdrain-full-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', dir]);
    cleanup.push(() => {
      execFileSync('umount', [dir]);
    });
    const ledgerDir = join(dir, 'ledger');
    const ledger = new FileLedger({ dir: ledgerDir });
    cleanup.push(() => ledger.close());
    // The folder exists before the disk fills (a lease file needs no more than an entry and a block).
    await ledger.updateMailboxState('mbx', {});
    await fill(dir);
    const before = await readdir(ledgerDir);
    const error = await ledger.acquireLease('mbx', 'run-1', 10_000, Date.now()).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toMatch(/ENOSPC/);
    expect((await readdir(ledgerDir)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    expect(await readdir(ledgerDir)).toEqual(before);
  });
});
