// Entries imported from another client's seen-list ('imported') and --refetch: what the plan
// does with them (lib/drain/plan.ts), and how the local ledger records and replaces them.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileLedger } from '../../lib/adapters/local/file-ledger.js';
import type { DeletePolicy } from '../../lib/drain/mailbox.js';
import { DAY_MS, deleteAllowed, planRun, sameMessageUnseen, type ServerMessage } from '../../lib/drain/plan.js';
import type { LedgerEntry, LedgerStatus } from '../../lib/drain/ports.js';
import { refetchVerdict } from '../../lib/drain/refetch.js';
import { storedEntry } from '../../testkit/fixtures/ledger-fixtures.js';

const NOW = Date.parse('2026-03-01T12:00:00Z');
const DELETE: DeletePolicy = { mode: 'delete' };
const KEEP: DeletePolicy = { mode: 'keep' };

const msg = (number: number, uidl: string, size = 100): ServerMessage => ({ number, uidl, size });

function entry(uidl: string, status: LedgerStatus, extra: Partial<LedgerEntry> = {}): LedgerEntry {
  const base: LedgerEntry = { mailboxId: 'mb', uidl, status, size: 100, firstSeenAt: NOW - 10 * DAY_MS };
  if (status === 'imported') return { ...base, size: 0, ...extra };
  return { ...base, key: `k/${uidl}`, sha256: 'a'.repeat(64), event: { id: `e-${uidl}`, detailType: 'Email Stored', time: '', detail: {} as never }, ...extra };
}

const known = (...entries: LedgerEntry[]): Map<string, LedgerEntry> => new Map(entries.map((e) => [e.uidl, e]));

describe('imported entries in the plan', () => {
  it('are never deleted: not by the policy, not unseen by UIDL and size', () => {
    const imp = entry('i', 'imported');
    expect(deleteAllowed(imp, DELETE, NOW)).toBe(false);
    expect(sameMessageUnseen(msg(1, 'i', 0), imp)).toBe(false);
  });

  it('are left on the server under --delete, counted as known, neither fetched nor deleted nor re-announced', () => {
    const plan = planRun({
      messages: [msg(1, 'i1'), msg(2, 'new'), msg(3, 'i2'), msg(4, 'old')],
      known: known(entry('i1', 'imported'), entry('i2', 'imported'), entry('old', 'announced')),
      policy: DELETE,
      maxMessageBytes: undefined,
      now: NOW,
    });
    expect(plan.fetch.map((m) => m.uidl)).toEqual(['new']);
    expect(plan.imported.map((m) => m.uidl)).toEqual(['i1', 'i2']);
    expect(plan.deleteKnown.map((m) => m.uidl)).toEqual(['old']);
    expect(plan.reannounce).toEqual([]);
    expect(plan.verify).toEqual([]);
    expect(plan.keep).toEqual([]);
    expect(plan.alreadyKnown).toBe(3);
    expect(plan.toFetchBytes).toBe(100);
  });
});

describe('the plan under --refetch', () => {
  const facts = {
    messages: [msg(1, 'ann', 10), msg(2, 'imp', 20), msg(3, 'new', 30), msg(4, 'sto', 40), msg(5, 'skp', 50), msg(6, 'big', 5000), msg(7, 'bigimp', 6000)],
    known: known(
      entry('ann', 'announced', { announcedAt: NOW - DAY_MS }),
      entry('imp', 'imported'),
      entry('sto', 'stored'),
      entry('skp', 'skipped', { announcedAt: NOW - DAY_MS }),
      entry('big', 'announced', { announcedAt: NOW - DAY_MS, size: 5000 }),
      entry('bigimp', 'imported'),
    ),
    policy: DELETE,
    maxMessageBytes: 1000,
    now: NOW,
  };

  it('fetches stored and announced messages again (compared later), imported ones as new, in server order', () => {
    const plan = planRun({ ...facts, refetch: true });
    expect(plan.fetch.map((m) => m.uidl)).toEqual(['ann', 'imp', 'new', 'sto']);
    expect(plan.refetch.map((r) => [r.message.uidl, r.entry.status])).toEqual([
      ['ann', 'announced'],
      ['sto', 'stored'],
    ]);
    expect(plan.toFetchBytes).toBe(10 + 20 + 30 + 40);
    // Imported ones are new to popdrain: not "already known"; the size cap still skips them.
    expect(plan.alreadyKnown).toBe(4);
    expect(plan.skip.map((m) => m.uidl)).toEqual(['bigimp']);
    expect(plan.imported).toEqual([]);
    // Not re-announced or deleted unseen: the refetch announces and decides on the bytes.
    expect(plan.reannounce).toEqual([]);
    expect(plan.deleteKnown.map((m) => m.uidl)).toEqual(['big']);
    // Skipped messages stay skipped (never stored, nothing to compare), left on the server.
    expect(plan.keep.map((m) => m.uidl)).toEqual(['skp']);
  });

  it('without --refetch the same facts fetch only the new message', () => {
    const plan = planRun({ ...facts, policy: KEEP });
    expect(plan.fetch.map((m) => m.uidl)).toEqual(['new']);
    expect(plan.refetch).toEqual([]);
    expect(plan.imported.map((m) => m.uidl)).toEqual(['imp', 'bigimp']);
    expect(plan.skip).toEqual([]);
    expect(plan.reannounce.map((e) => e.uidl)).toEqual(['sto']);
  });
});

describe('the local ledger and imported entries', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('records imported UIDLs once, keeps known entries, survives a reload and a compaction', async () => {
    dir = await mkdtemp(join(tmpdir(), 'popdrain-imported-'));
    const ledger = new FileLedger({ dir });
    expect(await ledger.record([storedEntry('mb', 'u1')])).toEqual([{ uidl: 'u1', ok: true }]);
    expect(await ledger.recordImported('mb', ['u1', 'u2', 'u3', 'u2'], NOW)).toEqual({ imported: 2, known: 1 });
    expect(await ledger.recordImported('mb', ['u3'], NOW)).toEqual({ imported: 0, known: 1 });
    await ledger.markAnnounced('mb', ['u1', 'u2'], NOW);
    await ledger.close();

    const again = new FileLedger({ dir });
    const found = await again.lookup('mb', ['u1', 'u2', 'u3']);
    expect(found.get('u1')?.status).toBe('announced');
    expect(found.get('u2')).toEqual({ mailboxId: 'mb', uidl: 'u2', status: 'imported', size: 0, firstSeenAt: NOW });
    expect(await again.counts('mb')).toMatchObject({ announced: 1, imported: 2 });
    expect(await again.pending('mb')).toEqual([]);
    await again.compact('mb');
    await again.close();
    const compacted = new FileLedger({ dir });
    expect((await compacted.lookup('mb', ['u3'])).get('u3')?.status).toBe('imported');
    await compacted.close();
  });

  it('a new entry replaces an imported one (a refetch stores it as new); a stored one still conflicts', async () => {
    dir = await mkdtemp(join(tmpdir(), 'popdrain-imported-'));
    const ledger = new FileLedger({ dir });
    await ledger.recordImported('mb', ['u1'], NOW);
    expect(await ledger.record([storedEntry('mb', 'u1')])).toEqual([{ uidl: 'u1', ok: true }]);
    const second = await ledger.record([storedEntry('mb', 'u1')]);
    expect(second[0]).toMatchObject({ uidl: 'u1', ok: false });
    await ledger.close();
    const again = new FileLedger({ dir });
    const e = (await again.lookup('mb', ['u1'])).get('u1')!;
    expect(e.status).toBe('stored');
    expect(e.event?.id).toBe(storedEntry('mb', 'u1').event.id);
    await again.close();
  });
});

describe('refetchVerdict: what a stored message retrieved again shows', () => {
  const stored = entry('u', 'announced', { sha256: 'b'.repeat(64), size: 100 });
  const same = { sha256: 'b'.repeat(64), size: 100 };
  const other = { sha256: 'c'.repeat(64), size: 101 };

  it('the same bytes, held by the store: same; written to a store that had lost them: restored', () => {
    expect(refetchVerdict(stored, same, { kind: 'existed' })).toEqual({ kind: 'same' });
    expect(refetchVerdict(stored, same, { kind: 'written' })).toEqual({ kind: 'restored' });
  });

  it('the stored copy changed (the store kept other bytes): a difference naming both hashes', () => {
    expect(refetchVerdict(stored, same, { kind: 'conflict', message: 'holds sha256 d…' })).toEqual({
      kind: 'differs',
      difference: { uidl: 'u', storedSha256: 'b'.repeat(64), storedSize: 100, receivedSha256: 'b'.repeat(64), receivedSize: 100, storedCopy: 'differs', storeSays: 'holds sha256 d…' },
    });
  });

  it('the server serves other bytes: a difference whatever the store says', () => {
    for (const store of [{ kind: 'existed' }, { kind: 'written' }, { kind: 'conflict', message: 'm' }] as const) {
      const verdict = refetchVerdict(stored, other, store);
      expect(verdict.kind).toBe('differs');
      if (verdict.kind === 'differs') expect(verdict.difference).toMatchObject({ storedSha256: 'b'.repeat(64), receivedSha256: 'c'.repeat(64), receivedSize: 101 });
    }
    // Same hash, other size (a ledger that disagrees with itself): not the same either.
    expect(refetchVerdict(stored, { sha256: 'b'.repeat(64), size: 99 }, { kind: 'existed' }).kind).toBe('differs');
  });
});
