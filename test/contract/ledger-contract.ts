/**
 * The UidlLedger contract (lib/drain/ports.ts), written once and run against every ledger:
 * `describeLedgerContract(name, harness)` in a *.test.ts file per adapter. Each case uses its own
 * mailbox, so one stand-in serves the whole suite. `open()` gives a ledger on the same storage as
 * the others (a second instance: another run, or the same run after a restart).
 *
 * What the port promises, and each case checks:
 * - record is a conditional write per UIDL: the first run to record a UIDL wins, later ones get
 *   `ok: false` with the entry that was recorded (exactly once, also under concurrency, also
 *   across instances); outcomes keep the order of the entries.
 * - new entries are 'stored' or 'skipped'; an entry without a UIDL, or recorded as 'announced',
 *   is refused (LEDGER_FAILED, not retryable) before any of the call's entries is written.
 * - lookup returns exactly the entries that exist, as recorded; unknown UIDLs are absent.
 *   Given the run's policy, an entry the policy keeps may come from a summary (uidl, status,
 *   size, firstSeenAt and an announcedAt as recorded); every other entry (not announced yet,
 *   deleted, or one the policy lets go now) comes whole, run after run.
 * - markAnnounced: stored becomes announced, skipped stays skipped, both keep the first
 *   announcedAt; markDeleted keeps the first deletedAt and takes the latest expiresAt; marks
 *   of UIDLs that were never recorded are ignored (no half entries).
 * - pending lists the stored, unannounced entries only.
 * - mailbox state: unknown mailbox → `{ mailboxId }`; fields set, null removes, undefined keeps.
 * - leases: one holder at a time (also among many at once); the holder may renew (and take it
 *   again); an expired lease goes to the next owner; a lost lease fails renewal with LEASE_HELD;
 *   release only gives up a lease that is still ours.
 * - request marker: claimed when absent, expired or already this token's (the expiry moves on);
 *   refused while another token's is unexpired (also when many claim at once: one wins);
 *   released only by its token; the backoff fields of the state round-trip like the others.
 * - mailboxes are independent of each other.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DrainEvent } from '../../lib/drain/events.js';
import { skippedEventId } from '../../lib/drain/keys.js';
import type { DeletePolicy } from '../../lib/drain/mailbox.js';
import { triageCode } from '../../lib/drain/listing-triage.js';
import { deleteAllowed } from '../../lib/drain/plan.js';
import { TRIAGE, type LedgerEntry, type RunSummary, type UidlLedger } from '../../lib/drain/ports.js';
import { drainErrorOf } from '../support/drain-error.js';
import { storedEntry } from '../../testkit/fixtures/ledger-fixtures.js';

export const LEDGER_CASES = [
  'record-once',
  'record-concurrent',
  'record-order',
  'record-refuses',
  'lookup',
  'lookup-with-policy',
  'triage',
  'mark-announced',
  'mark-deleted',
  'pending',
  'state',
  'request-marker',
  'request-marker-race',
  'lease-lifecycle',
  'lease-same-owner',
  'lease-race',
  'mailboxes-independent',
] as const;
export type LedgerCase = (typeof LEDGER_CASES)[number];

export interface LedgerHarness {
  /** Start the storage (once for the suite). */
  setup(): Promise<void>;
  /** A ledger on the suite's storage; every call gives another instance. */
  open(): UidlLedger;
  teardown(): Promise<void>;
  /** Cases this adapter leaves out, each with the reason (reported, never silent). */
  exclude?: Partial<Record<LedgerCase, string>>;
}

const T0 = Date.UTC(2025, 5, 1, 12, 0, 0);

export function skippedEntry(mailboxId: string, uidl: string, size = 50_000_000): LedgerEntry {
  const id = skippedEventId(mailboxId, uidl);
  const event: DrainEvent = {
    id,
    detailType: 'Email Skipped',
    time: new Date(T0).toISOString(),
    detail: { schemaVersion: 1, id, mailboxId, uidl, reason: 'too-large', size, limit: 25_000_000, seenAt: new Date(T0).toISOString() },
  };
  return { mailboxId, uidl, status: 'skipped', size, firstSeenAt: T0, event };
}

const RUN: RunSummary = {
  runId: 'run-1',
  startedAt: T0,
  finishedAt: T0 + 5_000,
  stopReason: 'complete',
  moreRemaining: false,
  fetched: 3,
  fetchedBytes: 12_345,
  skipped: 1,
  deleted: 0,
  failures: 0,
  knownOnServer: 4,
  serverMessages: 4,
  pendingAnnouncements: 0,
};

export function describeLedgerContract(name: string, harness: LedgerHarness): void {
  describe(`UidlLedger contract: ${name}`, () => {
    let counter = 0;
    const newMailbox = (): string => `contract-${++counter}`;
    const excluded = harness.exclude ?? {};
    const check = (id: LedgerCase, title: string, fn: () => Promise<void>): void => {
      if (excluded[id] === undefined) it(`${id}: ${title}`, fn);
    };

    beforeAll(() => harness.setup());
    afterAll(() => harness.teardown());

    check('record-once', 'the first record wins; a later one, from any instance, gets the recorded entry', async () => {
      const mbx = newMailbox();
      const ledger = harness.open();
      const first = [storedEntry(mbx, 'uidl-1'), skippedEntry(mbx, 'uidl-2')];
      expect(await ledger.record(first)).toEqual([
        { uidl: 'uidl-1', ok: true },
        { uidl: 'uidl-2', ok: true },
      ]);
      const retry = { ...storedEntry(mbx, 'uidl-1'), sha256: 'f'.repeat(64), firstSeenAt: T0 + 1 };
      expect(await ledger.record([retry])).toEqual([{ uidl: 'uidl-1', ok: false, conflict: first[0] }]);
      expect(await harness.open().record([retry, storedEntry(mbx, 'uidl-3')])).toEqual([
        { uidl: 'uidl-1', ok: false, conflict: first[0] },
        { uidl: 'uidl-3', ok: true },
      ]);
      expect((await harness.open().lookup(mbx, ['uidl-1'])).get('uidl-1')).toEqual(first[0]);
    });

    check('record-concurrent', 'of many runs recording the same UIDL at once, exactly one wins', async () => {
      const mbx = newMailbox();
      const outcomes = await Promise.all(Array.from({ length: 6 }, () => harness.open().record([storedEntry(mbx, 'same')])));
      const winners = outcomes.filter((o) => o[0]!.ok);
      expect(winners).toHaveLength(1);
      for (const o of outcomes) if (!o[0]!.ok) expect(o[0]).toEqual({ uidl: 'same', ok: false, conflict: storedEntry(mbx, 'same') });
    });

    check('record-order', 'outcomes of a large call keep the order of its entries', async () => {
      const mbx = newMailbox();
      const ledger = harness.open();
      const entries = Array.from({ length: 120 }, (_, i) => storedEntry(mbx, `u${i}`));
      await ledger.record(entries.filter((_, i) => i % 3 === 0));
      const outcomes = await harness.open().record(entries);
      expect(outcomes.map((o) => o.uidl)).toEqual(entries.map((e) => e.uidl));
      expect(outcomes.map((o) => o.ok)).toEqual(entries.map((_, i) => i % 3 !== 0));
    });

    check('record-refuses', "refuses an entry without a UIDL, or recorded as 'announced', before writing any", async () => {
      const mbx = newMailbox();
      const ledger = harness.open();
      for (const bad of [{ ...storedEntry(mbx, 'x'), uidl: '' }, { ...storedEntry(mbx, 'y'), status: 'announced' as const }]) {
        const error = await drainErrorOf(ledger.record([storedEntry(mbx, 'ok'), bad]));
        expect(error).toMatchObject({ code: 'LEDGER_FAILED', retryable: false });
      }
      expect((await ledger.lookup(mbx, ['ok', 'y'])).size).toBe(0);
      expect((await harness.open().lookup(mbx, ['ok', 'y'])).size).toBe(0);
    });

    check('lookup', 'returns exactly the recorded entries asked for, ignoring duplicates and unknown UIDLs', async () => {
      const mbx = newMailbox();
      const known = Array.from({ length: 150 }, (_, i) => `k${i}`);
      await harness.open().record([...known.map((u) => storedEntry(mbx, u)), skippedEntry(mbx, 'big')]);
      const asked = [...known, 'big', 'unknown-1', ...known.slice(0, 20), 'unknown-2'];
      const found = await harness.open().lookup(mbx, asked);
      expect([...found.keys()].sort()).toEqual([...known, 'big'].sort());
      expect(found.get('k42')).toEqual(storedEntry(mbx, 'k42'));
      expect(found.get('big')).toEqual(skippedEntry(mbx, 'big'));
      expect((await harness.open().lookup(mbx, [])).size).toBe(0);
      expect((await harness.open().lookup(newMailbox(), ['k1'])).size).toBe(0);
    });

    check('lookup-with-policy', 'kept entries may come from a summary; the others come whole, run after run', async () => {
      const mbx = newMailbox();
      const kept = Array.from({ length: 120 }, (_, i) => `u${i}`);
      const ledger = harness.open();
      await ledger.record([...kept, 'fresh', 'gone'].map((u): LedgerEntry => storedEntry(mbx, u)).concat(skippedEntry(mbx, 'big')));
      await ledger.markAnnounced(mbx, [...kept, 'gone', 'big'], T0);
      await ledger.markDeleted(mbx, ['gone'], T0 + 1, 2_000_000_000);
      const recorded = await ledger.lookup(mbx, [...kept, 'fresh', 'gone', 'big']);
      const asked = [...kept, 'fresh', 'gone', 'big', 'unknown'];
      const same = (found: Map<string, LedgerEntry>, policy: DeletePolicy, now: number): void => {
        expect([...found.keys()].sort()).toEqual([...recorded.keys()].sort());
        for (const [uidl, entry] of found) {
          const full = recorded.get(uidl)!;
          const whole = full.status === 'stored' || full.deletedAt !== undefined || deleteAllowed(full, policy, now);
          if (whole) expect(entry, uidl).toEqual(full);
          else expect({ ...entry, announcedAt: entry.announcedAt !== undefined }).toMatchObject({ uidl, status: full.status, size: full.size, firstSeenAt: full.firstSeenAt, announcedAt: true });
        }
      };
      const policies: Array<[DeletePolicy, number]> = [
        [{ mode: 'keep' }, T0],
        [{ mode: 'keep-days', days: 200 }, T0],
        [{ mode: 'keep-days', days: 200 }, Date.UTC(2025, 6, 25)],
        [{ mode: 'delete' }, T0],
        [{ mode: 'keep' }, T0 + 1],
      ];
      for (const [policy, now] of policies) {
        for (let run = 0; run < 2; run++) same(await harness.open().lookup(mbx, asked, { deletePolicy: policy, now }), policy, now);
      }
      await ledger.record([storedEntry(mbx, 'new')]);
      await ledger.markAnnounced(mbx, ['new'], T0 + 2);
      const later = await harness.open().lookup(mbx, [...asked, 'new'], { deletePolicy: { mode: 'keep' }, now: T0 + 3 });
      expect(later.get('new')).toEqual({ ...storedEntry(mbx, 'new'), status: 'announced', announcedAt: T0 + 2 });
      expect(later.size).toBe(recorded.size + 1);
      const fewer = await harness.open().lookup(mbx, kept.slice(10), { deletePolicy: { mode: 'keep' }, now: T0 + 4 });
      expect([...fewer.keys()].sort()).toEqual(kept.slice(10).sort());
    });

    check('triage', 'codes each listed UIDL as triageCode of its entry, with whole entries only for those coded entry, run after run', async () => {
      const mbx = newMailbox();
      const kept = Array.from({ length: 120 }, (_, i) => `t${i}`);
      const ledger = harness.open();
      await ledger.record([...kept, 'fresh', 'gone', 'young'].map((u): LedgerEntry => storedEntry(mbx, u)).concat(skippedEntry(mbx, 'big'), skippedEntry(mbx, 'big-new')));
      await ledger.markAnnounced(mbx, [...kept, 'gone', 'big'], T0);
      await ledger.markDeleted(mbx, ['gone'], T0 + 1, 2_000_000_000);
      const asked = ['unknown', ...kept, 'fresh', 'gone', 'big', 'big-new', 'unknown-2'];
      const recorded = await ledger.lookup(mbx, asked);
      const policies: Array<[DeletePolicy, number]> = [
        [{ mode: 'keep' }, T0],
        [{ mode: 'keep-days', days: 200 }, T0],
        [{ mode: 'keep-days', days: 200 }, Date.UTC(2026, 6, 25)],
        [{ mode: 'delete' }, T0],
      ];
      for (const [policy, now] of policies) {
        for (let run = 0; run < 2; run++) {
          const answer = await harness.open().triage!(mbx, asked, { deletePolicy: policy, now });
          const expected = asked.map((u) => triageCode(recorded.get(u), policy, now));
          expect([...answer.codes]).toEqual(expected);
          const wanted = asked.filter((_, i) => expected[i] === TRIAGE.entry);
          expect([...answer.entries.keys()].sort()).toEqual(wanted.sort());
          for (const uidl of wanted) expect(answer.entries.get(uidl), uidl).toEqual(recorded.get(uidl));
        }
      }
      // Every code occurs in this mailbox under some policy: the comparison above is not vacuous.
      const keep = await harness.open().triage!(mbx, asked, { deletePolicy: { mode: 'keep' }, now: T0 });
      expect(new Set(keep.codes)).toEqual(new Set([TRIAGE.unknown, TRIAGE.kept, TRIAGE.entry]));
      expect(keep.codes[asked.indexOf('gone')]).toBe(TRIAGE.kept);
      expect(keep.codes[asked.indexOf('fresh')]).toBe(TRIAGE.entry);
      const del = await harness.open().triage!(mbx, asked, { deletePolicy: { mode: 'delete' }, now: T0 });
      expect(del.codes[asked.indexOf('t7')]).toBe(TRIAGE.entry);
      expect(del.codes[asked.indexOf('big')]).toBe(TRIAGE.kept);
    });

    check('mark-announced', 'stored becomes announced, skipped stays skipped, the first time stays, unknown UIDLs are ignored', async () => {
      const mbx = newMailbox();
      const ledger = harness.open();
      await ledger.record([storedEntry(mbx, 's'), skippedEntry(mbx, 'k')]);
      await ledger.markAnnounced(mbx, ['s', 'k', 's', 'never-recorded'], T0 + 1_000);
      await ledger.markAnnounced(mbx, ['s', 'k'], T0 + 2_000);
      for (const reader of [ledger, harness.open()]) {
        const found = await reader.lookup(mbx, ['s', 'k', 'never-recorded']);
        expect(found.get('s')).toEqual({ ...storedEntry(mbx, 's'), status: 'announced', announcedAt: T0 + 1_000 });
        expect(found.get('k')).toEqual({ ...skippedEntry(mbx, 'k'), announcedAt: T0 + 1_000 });
        expect(found.has('never-recorded')).toBe(false);
      }
    });

    check('mark-deleted', 'keeps the first deletedAt, takes the latest expiresAt, ignores unknown UIDLs', async () => {
      const mbx = newMailbox();
      const ledger = harness.open();
      await ledger.record([storedEntry(mbx, 'd')]);
      await ledger.markAnnounced(mbx, ['d'], T0);
      const expiresAt = Math.floor((T0 + 30 * 86_400_000) / 1000);
      await ledger.markDeleted(mbx, ['d', 'gone'], T0 + 5_000, expiresAt);
      await ledger.markDeleted(mbx, ['d'], T0 + 9_000, expiresAt + 60);
      for (const reader of [ledger, harness.open()]) {
        const found = await reader.lookup(mbx, ['d', 'gone']);
        expect(found.get('d')).toEqual({ ...storedEntry(mbx, 'd'), status: 'announced', announcedAt: T0, deletedAt: T0 + 5_000, expiresAt: expiresAt + 60 });
        expect(found.has('gone')).toBe(false);
      }
    });

    check('pending', 'lists the stored entries not yet announced, and nothing for an unknown mailbox', async () => {
      const mbx = newMailbox();
      const ledger = harness.open();
      await ledger.record([storedEntry(mbx, 'p1'), storedEntry(mbx, 'p2'), storedEntry(mbx, 'p3'), skippedEntry(mbx, 'p4')]);
      await ledger.markAnnounced(mbx, ['p2'], T0);
      await ledger.updateMailboxState(mbx, { backlogSince: T0 });
      await ledger.acquireLease(mbx, 'owner', 60_000, T0);
      for (const reader of [ledger, harness.open()]) {
        const pending = await reader.pending(mbx);
        expect(pending.map((e) => e.uidl).sort()).toEqual(['p1', 'p3']);
        expect(pending.find((e) => e.uidl === 'p1')).toEqual(storedEntry(mbx, 'p1'));
      }
      expect(await ledger.pending(newMailbox())).toEqual([]);
    });

    check('state', 'an unknown mailbox has only its id; fields set, null removes, undefined keeps', async () => {
      const mbx = newMailbox();
      const ledger = harness.open();
      expect(await ledger.getMailboxState(mbx)).toEqual({ mailboxId: mbx });
      await ledger.updateMailboxState(mbx, {
        lastRun: RUN,
        lastSuccessAt: T0 + 5_000,
        backlogSince: T0,
        uidlResetTrippedAt: T0,
        acceptUidlReset: true,
        pendingDeletes: ['a', 'b'],
      });
      expect(await harness.open().getMailboxState(mbx)).toEqual({
        mailboxId: mbx,
        lastRun: RUN,
        lastSuccessAt: T0 + 5_000,
        backlogSince: T0,
        uidlResetTrippedAt: T0,
        acceptUidlReset: true,
        pendingDeletes: ['a', 'b'],
      });
      await ledger.updateMailboxState(mbx, { backlogSince: null, uidlResetTrippedAt: null, acceptUidlReset: null, pendingDeletes: null });
      await ledger.updateMailboxState(mbx, {});
      for (const reader of [ledger, harness.open()]) {
        expect(await reader.getMailboxState(mbx)).toEqual({ mailboxId: mbx, lastRun: RUN, lastSuccessAt: T0 + 5_000 });
      }
      expect(await ledger.pending(mbx)).toEqual([]);
    });

    check('request-marker', 'claimed unless another token holds an unexpired one; the same token claims again; released only by its token', async () => {
      const mbx = newMailbox();
      const a = harness.open();
      expect(await a.claimRequestMarker(mbx, { token: 'tick-1', expiresAt: T0 + 60_000 }, T0)).toBe(true);
      const b = harness.open();
      expect(await b.claimRequestMarker(mbx, { token: 'tick-2', expiresAt: T0 + 120_000 }, T0 + 1_000)).toBe(false);
      // The same token again (a repeated tick, a continuation): the expiry moves on.
      expect(await b.claimRequestMarker(mbx, { token: 'tick-1', expiresAt: T0 + 90_000 }, T0 + 2_000)).toBe(true);
      expect((await harness.open().getMailboxState(mbx)).requestMarker).toEqual({ token: 'tick-1', expiresAt: T0 + 90_000 });
      expect(await a.claimRequestMarker(mbx, { token: 'tick-2', expiresAt: T0 + 200_000 }, T0 + 89_999)).toBe(false);
      // Expired: the next token takes it, and the old token's release leaves it alone.
      expect(await a.claimRequestMarker(mbx, { token: 'tick-2', expiresAt: T0 + 200_000 }, T0 + 90_000)).toBe(true);
      await b.releaseRequestMarker(mbx, 'tick-1');
      expect((await harness.open().getMailboxState(mbx)).requestMarker).toEqual({ token: 'tick-2', expiresAt: T0 + 200_000 });
      await harness.open().releaseRequestMarker(mbx, 'tick-2');
      const c = harness.open();
      expect((await c.getMailboxState(mbx)).requestMarker).toBeUndefined();
      expect(await c.claimRequestMarker(mbx, { token: 'tick-3', expiresAt: T0 + 300_000 }, T0 + 100_000)).toBe(true);
      // The marker lives beside the other state fields: updates keep it, and the backoff fields round-trip.
      const failure = { at: T0, stopReason: 'auth-failed', code: 'AUTH_FAILED', message: 'login refused' };
      await c.updateMailboxState(mbx, { nextAttemptAt: T0 + 900_000, failureStreak: 2, lastFailure: failure, chainCappedAt: T0 });
      expect(await harness.open().getMailboxState(mbx)).toEqual({
        mailboxId: mbx,
        requestMarker: { token: 'tick-3', expiresAt: T0 + 300_000 },
        nextAttemptAt: T0 + 900_000,
        failureStreak: 2,
        lastFailure: failure,
        chainCappedAt: T0,
      });
      await c.updateMailboxState(mbx, { nextAttemptAt: null, failureStreak: null, lastFailure: null, chainCappedAt: null, requestMarker: null });
      expect(await harness.open().getMailboxState(mbx)).toEqual({ mailboxId: mbx });
    });

    check('request-marker-race', 'of many claiming the marker at once with different tokens, exactly one gets it', async () => {
      const mbx = newMailbox();
      const results = await Promise.all(
        Array.from({ length: 6 }, (_, i) => harness.open().claimRequestMarker(mbx, { token: `t-${i}`, expiresAt: T0 + 60_000 }, T0)),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
      const winner = results.indexOf(true);
      expect((await harness.open().getMailboxState(mbx)).requestMarker).toEqual({ token: `t-${winner}`, expiresAt: T0 + 60_000 });
    });

    check('lease-lifecycle', 'one holder until expiry; renewal by the holder; LEASE_HELD once lost; release only if ours', async () => {
      const mbx = newMailbox();
      const ttl = 60_000;
      const a = harness.open();
      const b = harness.open();
      const leaseA = await a.acquireLease(mbx, 'owner-a', ttl, T0);
      expect(leaseA).toEqual({ mailboxId: mbx, owner: 'owner-a', expiresAt: T0 + ttl });
      expect(await b.acquireLease(mbx, 'owner-b', ttl, T0 + 1_000)).toBeUndefined();
      expect(await b.leaseHolder(mbx, T0 + 1_000)).toEqual(leaseA);

      const renewed = await a.renewLease(leaseA!, ttl, T0 + 30_000);
      expect(renewed).toEqual({ mailboxId: mbx, owner: 'owner-a', expiresAt: T0 + 30_000 + ttl });
      expect(await b.acquireLease(mbx, 'owner-b', ttl, T0 + ttl + 1_000)).toBeUndefined();

      const expiredAt = renewed.expiresAt;
      expect(await b.leaseHolder(mbx, expiredAt)).toBeUndefined();
      const leaseB = await b.acquireLease(mbx, 'owner-b', ttl, expiredAt);
      expect(leaseB).toEqual({ mailboxId: mbx, owner: 'owner-b', expiresAt: expiredAt + ttl });
      const lost = await drainErrorOf(a.renewLease(renewed, ttl, expiredAt + 1));
      expect(lost).toMatchObject({ code: 'LEASE_HELD', phase: 'lease', retryable: false });
      expect(lost.message).toContain(mbx);
      await a.releaseLease(renewed); // not ours any more: no effect
      expect(await a.leaseHolder(mbx, expiredAt + 1)).toEqual(leaseB);

      await b.releaseLease(leaseB!);
      expect(await a.leaseHolder(mbx, expiredAt + 1)).toBeUndefined();
      await b.releaseLease(leaseB!); // already given up: no effect
      expect((await drainErrorOf(b.renewLease(leaseB!, ttl, expiredAt + 2))).code).toBe('LEASE_HELD');
      expect((await a.acquireLease(mbx, 'owner-c', ttl, expiredAt + 2))?.owner).toBe('owner-c');
    });

    check('lease-same-owner', 'the holder may take its unexpired lease again (a restarted run with the same owner id)', async () => {
      const mbx = newMailbox();
      const ttl = 60_000;
      expect(await harness.open().acquireLease(mbx, 'owner-a', ttl, T0)).toBeDefined();
      expect(await harness.open().acquireLease(mbx, 'owner-a', ttl, T0 + 2_000)).toEqual({ mailboxId: mbx, owner: 'owner-a', expiresAt: T0 + 2_000 + ttl });
      expect(await harness.open().leaseHolder(mbx, T0 + 2_000)).toEqual({ mailboxId: mbx, owner: 'owner-a', expiresAt: T0 + 2_000 + ttl });
    });

    check('lease-race', 'of many owners taking the same lease at once, exactly one gets it', async () => {
      const mbx = newMailbox();
      await harness.open().acquireLease(mbx, 'old', 1_000, T0);
      for (let round = 1; round <= 3; round++) {
        const now = T0 + round * 10_000;
        const results = await Promise.all(Array.from({ length: 8 }, (_, i) => harness.open().acquireLease(mbx, `r${round}-${i}`, 1_000, now)));
        const winners = results.filter((r) => r !== undefined);
        expect(winners).toHaveLength(1);
        expect(await harness.open().leaseHolder(mbx, now)).toEqual(winners[0]);
      }
    });

    check('mailboxes-independent', "one mailbox's entries, state and lease do not touch another's", async () => {
      const [m1, m2] = [newMailbox(), newMailbox()];
      const ledger = harness.open();
      await ledger.record([storedEntry(m1, 'same-uidl')]);
      expect(await ledger.record([storedEntry(m2, 'same-uidl')])).toEqual([{ uidl: 'same-uidl', ok: true }]);
      await ledger.markAnnounced(m1, ['same-uidl'], T0);
      expect((await ledger.lookup(m2, ['same-uidl'])).get('same-uidl')?.status).toBe('stored');
      await ledger.updateMailboxState(m1, { backlogSince: T0 });
      expect(await ledger.getMailboxState(m2)).toEqual({ mailboxId: m2 });
      expect(await ledger.acquireLease(m1, 'a', 60_000, T0)).toBeDefined();
      expect(await ledger.acquireLease(m2, 'b', 60_000, T0)).toBeDefined();
      expect((await ledger.pending(m2)).map((e) => e.uidl)).toEqual(['same-uidl']);
    });
  });
}
