// The local adapters on real files in a temp folder: the commit worker and group commit, file-system
// errors, the ledger log format and the ledger (FileLedger).
// The set-up is test/support/local-adapters-world.ts.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DrainError } from '../../lib/drain/errors.js';
import type { LedgerEntry, RunSummary } from '../../lib/drain/ports.js';
import { CommitWorker } from '../../lib/adapters/local/commit-worker.js';
import { crc32, crc32Js } from '../../lib/adapters/local/crc32.js';
import { isRetryableFsError } from '../../lib/adapters/local/durable-fs.js';
import { GroupCommit } from '../../lib/adapters/local/group-commit.js';
import { decodeLog, encodeEntryLine, encodeRecord, entryJson } from '../../lib/adapters/local/ledger-log.js';
import { storedEntry } from '../../testkit/fixtures/ledger-fixtures.js';
import { drainErrorOf as rejection } from '../support/drain-error.js';
import { deadPid, dir, ledgerAt, MAILBOX, useTempDirPerTest } from '../support/local-adapters-world.js';

useTempDirPerTest();

describe('CommitWorker', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'popdrain-commit-worker-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('never replaces a file already at the final name (linked: false), and removes its temp file', async () => {
    const worker = new CommitWorker();
    await writeFile(join(dir, 'a.eml'), 'first');
    const results = await Promise.all([
      worker.commit({ temp: join(dir, '.t1.part'), final: join(dir, 'a.eml'), data: [Buffer.from('second')], mode: 0o600 }),
      worker.commit({ temp: join(dir, '.t2.part'), final: join(dir, 'b.eml'), data: [Buffer.from('new'), Buffer.from(' one')], mode: 0o600 }),
    ]);
    expect(results).toEqual([{ linked: false }, { linked: true }]);
    expect(await readFile(join(dir, 'a.eml'), 'utf8')).toBe('first');
    expect(await readFile(join(dir, 'b.eml'), 'utf8')).toBe('new one');
    expect((await readdir(dir)).sort()).toEqual(['a.eml', 'b.eml']);
    await worker.close();
  });

  it('gets its segments back from the thread with the answer, and uses them for the next batch', async () => {
    const worker = new CommitWorker();
    const pool = (worker as unknown as { pool: { bytes: number } }).pool;
    expect(await worker.commit({ temp: join(dir, '.t1.part'), final: join(dir, 'a.eml'), data: [Buffer.from('first')], mode: 0o600 })).toEqual({ linked: true });
    const kept = pool.bytes;
    expect(kept).toBeGreaterThan(0);
    const next = worker.commit({ temp: join(dir, '.t2.part'), final: join(dir, 'b.eml'), data: [Buffer.from('second')], mode: 0o600 });
    expect(pool.bytes).toBe(0); // taken for the batch being gathered
    expect(await next).toEqual({ linked: true });
    expect(pool.bytes).toBe(kept);
    expect(await readFile(join(dir, 'a.eml'), 'utf8')).toBe('first');
    expect(await readFile(join(dir, 'b.eml'), 'utf8')).toBe('second');
    await worker.close();
  });

  it('a worker thread that dies fails the commits it held with a retryable STORE_FAILED; the next commit works', async () => {
    const worker = new CommitWorker();
    const pending = worker.commit({ temp: join(dir, '.t1.part'), final: join(dir, 'a.eml'), data: [Buffer.from('x')], mode: 0o600 });
    // The batch goes out at the end of this turn; the thread is stopped before it can answer.
    await new Promise((resolve) => setImmediate(resolve));
    await (worker as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    const error = await pending.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DrainError);
    expect(error).toMatchObject({ code: 'STORE_FAILED', retryable: true, phase: 'store' });
    expect((error as Error).message).toMatch(/commit worker/);
    expect(await worker.commit({ temp: join(dir, '.t2.part'), final: join(dir, 'b.eml'), data: [Buffer.from('y')], mode: 0o600 })).toEqual({ linked: true });
    await worker.close();
  });

  it('a thread that cannot be started fails the batch with a retryable STORE_FAILED instead of leaving it waiting', async () => {
    const worker = new CommitWorker();
    (worker as unknown as { start(): never }).start = () => {
      throw new Error('no threads left');
    };
    const error = await worker.commit({ temp: join(dir, '.t1.part'), final: join(dir, 'a.eml'), data: [Buffer.from('x')], mode: 0o600 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: 'STORE_FAILED', retryable: true });
    expect((error as Error).message).toContain('no threads left');
    await worker.close();
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('GroupCommit', () => {
  it('flushes callers of one burst together, and gathers callers during a flush into the next', async () => {
    const batches: number[][] = [];
    let release: (() => void) | undefined;
    const group = new GroupCommit<number>(async (items) => {
      batches.push(items);
      if (items.includes(0)) await new Promise<void>((r) => (release = r));
    });
    const first = [0, 1, 2].map((n) => group.submit(n));
    await new Promise((r) => setImmediate(r));
    expect(batches).toEqual([[0, 1, 2]]);
    const second = [3, 4].map((n) => group.submit(n));
    await new Promise((r) => setTimeout(r, 10));
    expect(batches).toHaveLength(1); // waits for the flush in flight
    release!();
    await Promise.all([...first, ...second]);
    expect(batches).toEqual([[0, 1, 2], [3, 4]]);
  });

  it('rejects the callers of a failed flush only', async () => {
    const group = new GroupCommit<string>(async (items) => {
      if (items.includes('bad')) throw new Error('disk on fire');
    });
    const failed = Promise.all([group.submit('a'), group.submit('bad')]);
    await expect(failed).rejects.toThrow('disk on fire');
    await expect(group.submit('c')).resolves.toBeUndefined();
    await group.drained();
  });
});

describe('file-system errors', () => {
  it('count as retryable only when they can clear by themselves', () => {
    const withCode = (code: string) => Object.assign(new Error(code), { code });
    for (const code of ['ENOSPC', 'EDQUOT', 'EMFILE', 'ENFILE', 'EAGAIN', 'EBUSY']) expect(isRetryableFsError(withCode(code)), code).toBe(true);
    for (const code of ['EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EISDIR', 'EIO', 'ENOENT']) expect(isRetryableFsError(withCode(code)), code).toBe(false);
    expect(isRetryableFsError(new Error('no code'))).toBe(false);
  });
});

describe('ledger log format', () => {
  it('uses the standard CRC-32', () => {
    const data = Buffer.from('123456789');
    expect(crc32(data)).toBe(0xcbf43926);
    expect(crc32Js(data)).toBe(0xcbf43926);
    const random = randomBytes(4096);
    expect(crc32Js(random)).toBe(crc32(random));
  });

  it('writes an entry line exactly as the generic encoder would, one line even for odd UIDLs', () => {
    const entry = storedEntry(MAILBOX, 'odd\nuidl "with" \u2028 ünïcode');
    const line = encodeEntryLine(JSON.stringify(entry));
    expect(line.equals(encodeRecord({ t: 'rec', e: entry }))).toBe(true);
    expect(line.indexOf(0x0a)).toBe(line.length - 1);
    expect(decodeLog(line).records).toEqual([{ t: 'rec', e: entry }]);
    // The ledger's own encoding of an entry (its event's detail text made once) is the same text.
    expect(entryJson(entry)).toBe(JSON.stringify(entry));
    expect(entryJson(entry)).toBe(JSON.stringify(entry)); // from the cache this time
    const announced: LedgerEntry = { ...storedEntry(MAILBOX, 'b'), status: 'announced', announcedAt: 5, deletedAt: 6, expiresAt: 7 };
    expect(JSON.parse(entryJson(announced))).toEqual(announced);
  });

  it('finds the torn tail at every cut of the last line', () => {
    const a = encodeRecord({ t: 'ann', u: ['x'], at: 1 });
    const b = encodeRecord({ t: 'del', u: ['ÿ ü'], at: 2, exp: 3 });
    for (let cut = 0; cut < b.length; cut++) {
      const decoded = decodeLog(Buffer.concat([a, b.subarray(0, cut)]));
      expect(decoded.records).toHaveLength(1);
      expect(decoded.validBytes).toBe(a.length);
      expect(decoded.corruptLines).toBe(0);
    }
    expect(decodeLog(Buffer.concat([a, b])).validBytes).toBe(a.length + b.length);
  });

  it('skips a corrupt line followed by valid ones, and counts it', () => {
    const a = encodeRecord({ t: 'ann', u: ['x'], at: 1 });
    const bad = Buffer.from(encodeRecord({ t: 'ann', u: ['y'], at: 1 }).toString().replace('"y"', '"z"'));
    const decoded = decodeLog(Buffer.concat([a, bad, a]));
    expect(decoded.records).toHaveLength(2);
    expect(decoded.corruptLines).toBe(1);
  });
});

describe('FileLedger', () => {
  const entry = (uidl: string): LedgerEntry => storedEntry(MAILBOX, uidl);
  const logPath = (): string => join(dir, `${MAILBOX}.ledger`);
  const run: RunSummary = {
    runId: 'run-1',
    startedAt: 1,
    finishedAt: 2,
    stopReason: 'complete',
    moreRemaining: false,
    fetched: 3,
    fetchedBytes: 4,
    skipped: 0,
    deleted: 1,
    failures: 0,
    knownOnServer: 2,
    serverMessages: 2,
    pendingAnnouncements: 0,
  };

  it('round-trips record, lookup, markAnnounced, markDeleted, pending and state across a reopen', async () => {
    const ledger = ledgerAt({ dir });
    const skipped: LedgerEntry = { ...entry('big'), status: 'skipped', key: undefined, sha256: undefined };
    const outcomes = await ledger.record([entry('a'), entry('b'), entry('c'), skipped]);
    expect(outcomes).toEqual([
      { uidl: 'a', ok: true },
      { uidl: 'b', ok: true },
      { uidl: 'c', ok: true },
      { uidl: 'big', ok: true },
    ]);
    await ledger.markAnnounced(MAILBOX, ['a', 'b', 'big', 'unknown'], 1000);
    await ledger.markAnnounced(MAILBOX, ['a'], 2000); // the first announcement's time stays
    await ledger.markDeleted(MAILBOX, ['a'], 3000, 4_000_000_000);
    await ledger.updateMailboxState(MAILBOX, { lastRun: run, backlogSince: 5, uidlResetTrippedAt: 6, acceptUidlReset: true });
    await ledger.updateMailboxState(MAILBOX, { backlogSince: null, acceptUidlReset: null });
    await ledger.close();

    for (const reader of [ledger, ledgerAt({ dir })]) {
      const found = await reader.lookup(MAILBOX, ['a', 'b', 'c', 'big', 'nope']);
      expect([...found.keys()].sort()).toEqual(['a', 'b', 'big', 'c']);
      expect(found.get('a')).toEqual({ ...entry('a'), status: 'announced', announcedAt: 1000, deletedAt: 3000, expiresAt: 4_000_000_000 });
      expect(found.get('b')).toEqual({ ...entry('b'), status: 'announced', announcedAt: 1000 });
      expect(found.get('c')).toEqual(entry('c'));
      expect(found.get('big')).toEqual({ ...JSON.parse(JSON.stringify(skipped)), announcedAt: 1000 });
      expect((await reader.pending(MAILBOX)).map((e) => e.uidl)).toEqual(['c']);
      expect(await reader.getMailboxState(MAILBOX)).toEqual({ mailboxId: MAILBOX, lastRun: run, uidlResetTrippedAt: 6 });
      expect(await reader.getMailboxState('other-box')).toEqual({ mailboxId: 'other-box' });
    }
    expect((await stat(logPath())).mode & 0o777).toBe(0o600);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
  });

  it('keeps every one of many concurrent writes (group commit), across a reopen', async () => {
    const ledger = ledgerAt({ dir });
    const uidls = Array.from({ length: 500 }, (_, i) => `u${i}`);
    await Promise.all(uidls.map((u) => ledger.record([entry(u)])));
    await Promise.all(uidls.filter((_, i) => i % 2 === 0).map((u) => ledger.markAnnounced(MAILBOX, [u], 7)));
    const reopened = ledgerAt({ dir });
    const found = await reopened.lookup(MAILBOX, uidls);
    expect(found.size).toBe(500);
    expect((await reopened.pending(MAILBOX)).length).toBe(250);
    const decoded = decodeLog(await readFile(logPath()));
    expect(decoded.records.filter((r) => r.t === 'rec')).toHaveLength(500);
    expect(decoded.corruptLines).toBe(0);
  });

  it('ignores a torn last line and truncates it before the next append', async () => {
    const ledger = ledgerAt({ dir });
    await ledger.record([entry('a'), entry('b')]);
    await ledger.close();
    const intact = (await stat(logPath())).size;
    const torn = encodeRecord({ t: 'rec', e: entry('c') }).subarray(0, 300);
    await appendFile(logPath(), torn);

    const reader = ledgerAt({ dir });
    expect([...(await reader.lookup(MAILBOX, ['a', 'b', 'c'])).keys()]).toEqual(['a', 'b']);
    expect((await stat(logPath())).size).toBe(intact + torn.length); // reading never writes

    await reader.record([entry('d')]);
    const decoded = decodeLog(await readFile(logPath()));
    expect(decoded.validBytes).toBe((await stat(logPath())).size);
    expect(decoded.records.filter((r) => r.t === 'rec').map((r) => (r.t === 'rec' ? r.e.uidl : ''))).toEqual(['a', 'b', 'd']);

    // A last line that is complete but fails its checksum is torn too.
    await appendFile(logPath(), '00000000 {"t":"ann","u":["a"],"at":1}\n');
    const again = ledgerAt({ dir });
    expect((await again.lookup(MAILBOX, ['a'])).get('a')?.status).toBe('stored');
    await again.markAnnounced(MAILBOX, ['d'], 9);
    expect(decodeLog(await readFile(logPath())).corruptLines).toBe(0);
  });

  it('reloads when another process appended to the log since it was read', async () => {
    const mine = ledgerAt({ dir });
    await mine.record([entry('a')]);
    const theirs = ledgerAt({ dir });
    await theirs.record([entry('b')]);
    await theirs.updateMailboxState(MAILBOX, { acceptUidlReset: true });
    expect((await mine.record([entry('b')]))[0]!.ok).toBe(false);
    expect((await mine.getMailboxState(MAILBOX)).acceptUidlReset).toBe(true);
  });

  it('compaction keeps everything live, drops expired entries, and survives a reopen', async () => {
    const now = 1_700_000_000_000;
    const ledger = ledgerAt({ dir, now: () => now });
    const uidls = Array.from({ length: 300 }, (_, i) => `u${i}`);
    await ledger.record(uidls.map(entry));
    await ledger.markAnnounced(MAILBOX, uidls.slice(0, 200), 10);
    await ledger.markDeleted(MAILBOX, uidls.slice(0, 50), 20, now / 1000 + 3600);
    await ledger.markDeleted(MAILBOX, ['u299'], 20, now / 1000 - 1); // expired
    for (let i = 0; i < 50; i++) await ledger.updateMailboxState(MAILBOX, { backlogSince: i, lastRun: run });
    const before = new Map(await ledgerAt({ dir }).lookup(MAILBOX, uidls));
    const sizeBefore = (await stat(logPath())).size;

    await ledger.compact(MAILBOX);
    expect((await stat(logPath())).size).toBeLessThan(sizeBefore);
    await ledger.record([entry('after')]);
    // No temp file left; the compaction wrote the new log's index beside it.
    expect((await readdir(dir)).sort()).toEqual([`${MAILBOX}.ledger`, `${MAILBOX}.ledger-index`]);

    for (const reader of [ledger, ledgerAt({ dir })]) {
      const after = await reader.lookup(MAILBOX, [...uidls, 'after']);
      expect(after.has('u299')).toBe(false);
      before.delete('u299');
      for (const [uidl, e] of before) expect(after.get(uidl)).toEqual(e);
      expect(after.get('after')).toEqual(entry('after'));
      expect((await reader.pending(MAILBOX)).length).toBe(99 + 1);
      expect(await reader.getMailboxState(MAILBOX)).toEqual({ mailboxId: MAILBOX, backlogSince: 49, lastRun: run });
    }
  });

  it('compacts by itself once the log is far larger than its live state', async () => {
    const ledger = ledgerAt({ dir, compactMinBytes: 64 * 1024 });
    await ledger.record([entry('a')]);
    for (let i = 0; i < 400; i++) await ledger.updateMailboxState(MAILBOX, { lastRun: { ...run, fetched: i } });
    await ledger.record([entry('b')]); // lets a compaction queued by the last update run first
    expect((await stat(logPath())).size).toBeLessThan(64 * 1024);
    const reopened = ledgerAt({ dir });
    expect((await reopened.getMailboxState(MAILBOX)).lastRun?.fetched).toBe(399);
    expect((await reopened.lookup(MAILBOX, ['a', 'b'])).size).toBe(2);
  });

  it('refuses a log written by a newer format, and invalid mailbox ids', async () => {
    await mkdir(dir, { recursive: true });
    await writeFile(logPath(), encodeRecord({ t: 'hdr', v: 99, mailboxId: MAILBOX }));
    const error = await rejection(ledgerAt({ dir }).lookup(MAILBOX, ['a']));
    expect(error.code).toBe('LEDGER_FAILED');
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/version 99/);
    const invalid = await rejection(ledgerAt({ dir }).lookup('../x', ['a']));
    expect(invalid.code).toBe('CONFIG_INVALID');
  });

  it('maps write failures to LEDGER_FAILED and recovers once the cause is gone', async () => {
    const blocked = join(dir, 'ledger');
    await writeFile(blocked, 'a file where the folder should be');
    const ledger = ledgerAt({ dir: blocked });
    const error = await rejection(ledger.record([entry('a')]));
    expect(error.code).toBe('LEDGER_FAILED');
    expect(error.phase).toBe('ledger');
    await rm(blocked);
    expect(await ledger.record([entry('a')])).toEqual([{ uidl: 'a', ok: true }]);
  });

  it.skipIf(!existsSync('/dev/full'))('reports a full disk as a retryable LEDGER_FAILED', async () => {
    await symlink('/dev/full', logPath());
    const error = await rejection(ledgerAt({ dir }).record([entry('a')]));
    expect(error.code).toBe('LEDGER_FAILED');
    expect(error.retryable).toBe(true);
    expect(error.message).toMatch(/ENOSPC/);
  });

  describe('lease', () => {
    // The lease's semantics are in test/contract/ledger-contract.ts; here its files.
    it('is a lease file per generation, 0600; released generations stay until the next holder removes them', async () => {
      const a = ledgerAt({ dir });
      const b = ledgerAt({ dir });
      const leaseA = await a.acquireLease(MAILBOX, 'run-a', 10_000, 1000);
      expect((await stat(join(dir, `${MAILBOX}.lease.1`))).mode & 0o777).toBe(0o600);
      const leaseB = await b.acquireLease(MAILBOX, 'run-b', 10_000, 11_000);
      const lost = await rejection(a.renewLease(leaseA!, 10_000, 11_001));
      expect(lost.message).toContain('run-b');
      await b.releaseLease(leaseB!);
      // Released generations stay (numbers only grow); the next holder removes the older ones.
      expect(await readdir(dir)).toEqual([`${MAILBOX}.lease.2`]);
      expect(await a.acquireLease(MAILBOX, 'run-c', 1000, 17_000)).toBeDefined();
      expect(await readdir(dir)).toEqual([`${MAILBOX}.lease.3`]);
    });

    it('is taken over from a process that no longer exists, however long it had left', async () => {
      await writeFile(
        join(dir, `${MAILBOX}.lease.1`),
        JSON.stringify({ v: 1, mailboxId: MAILBOX, owner: 'crashed', pid: deadPid(), host: (await import('node:os')).hostname(), expiresAt: 9e15, nonce: 'n' }),
      );
      const ledger = ledgerAt({ dir });
      expect(await ledger.leaseHolder(MAILBOX, 1000)).toBeUndefined();
      expect((await ledger.acquireLease(MAILBOX, 'next', 1000, 1000))?.owner).toBe('next');
    });

    it('an unreadable lock (a crash before its data reached the disk) is stale', async () => {
      await writeFile(join(dir, `${MAILBOX}.lease.1`), '');
      expect((await ledgerAt({ dir }).acquireLease(MAILBOX, 'next', 1000, 1000))?.owner).toBe('next');
    });

    it('goes to exactly one of many runs taking over the same expired lease at once', async () => {
      const first = ledgerAt({ dir });
      await first.acquireLease(MAILBOX, 'old', 1000, 0);
      for (let round = 0; round < 5; round++) {
        const now = 10_000 * (round + 1);
        const contenders = Array.from({ length: 8 }, () => ledgerAt({ dir }));
        const results = await Promise.all(contenders.map((l, i) => l.acquireLease(MAILBOX, `r${round}-${i}`, 1000, now)));
        const winners = results.filter((r) => r !== undefined);
        expect(winners).toHaveLength(1);
        expect((await first.leaseHolder(MAILBOX, now))?.owner).toBe(winners[0]!.owner);
      }
      expect(await readdir(dir)).toEqual([`${MAILBOX}.lease.6`]);
    });
  });
});
