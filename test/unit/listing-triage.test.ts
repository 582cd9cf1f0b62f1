/**
 * The triage of a listed message by its entry (listing-triage.ts), and planRun from a triage: the
 * same plan as from every entry, for every status, announcement, age, size and policy.
 */
import { describe, expect, it } from 'vitest';
import { triageCode } from '../../lib/drain/listing-triage.js';
import type { DeletePolicy } from '../../lib/drain/mailbox.js';
import { DAY_MS, planRun, type ServerMessage } from '../../lib/drain/plan.js';
import { TRIAGE, type LedgerEntry, type LedgerStatus } from '../../lib/drain/ports.js';

const NOW = Date.parse('2026-03-01T12:00:00Z');
const POLICIES: DeletePolicy[] = [{ mode: 'keep' }, { mode: 'delete' }, { mode: 'keep-days', days: 7 }];
const STATUSES: LedgerStatus[] = ['stored', 'announced', 'skipped', 'imported'];

/** Every kind of entry a listing can meet, each under its own UIDL, and one message each (some at another size). */
function cases(): { messages: ServerMessage[]; entries: Map<string, LedgerEntry> } {
  const messages: ServerMessage[] = [];
  const entries = new Map<string, LedgerEntry>();
  let n = 0;
  for (const status of STATUSES) {
    for (const announcedAt of [undefined, NOW - DAY_MS]) {
      for (const ageDays of [1, 30]) {
        for (const deletedAt of [undefined, NOW - 1000]) {
          for (const sizeOnServer of [100, 120, 5000]) {
            const uidl = `u${++n}`;
            messages.push({ number: n, uidl, size: sizeOnServer });
            const entry: LedgerEntry = { mailboxId: 'mb', uidl, status, size: status === 'imported' ? 0 : 100, firstSeenAt: NOW - ageDays * DAY_MS };
            if (status !== 'imported') entry.event = { id: `e-${uidl}`, detailType: 'Email Stored', time: '', detail: {} as never };
            if (announcedAt !== undefined) entry.announcedAt = announcedAt;
            if (deletedAt !== undefined) entry.deletedAt = deletedAt;
            entries.set(uidl, entry);
          }
        }
      }
    }
  }
  for (let i = 0; i < 5; i++) messages.push({ number: ++n, uidl: `new${i}`, size: i === 0 ? 5000 : 100 });
  return { messages, entries };
}

describe('triageCode', () => {
  it('unknown without an entry, imported for a seen-list entry', () => {
    expect(triageCode(undefined, { mode: 'keep' }, NOW)).toBe(TRIAGE.unknown);
    expect(triageCode({ status: 'imported', firstSeenAt: 0 }, { mode: 'delete' }, NOW)).toBe(TRIAGE.imported);
  });

  it('a stored entry, or a skipped one not yet announced, needs its entry (re-announced)', () => {
    for (const policy of POLICIES) {
      expect(triageCode({ status: 'stored', firstSeenAt: 0, announcedAt: NOW }, policy, NOW)).toBe(TRIAGE.entry);
      expect(triageCode({ status: 'skipped', firstSeenAt: 0 }, policy, NOW)).toBe(TRIAGE.entry);
      expect(triageCode({ status: 'skipped', firstSeenAt: 0, announcedAt: NOW }, policy, NOW)).toBe(TRIAGE.kept);
    }
  });

  it('an announced entry is kept while the policy keeps it, and needs its entry once it may go', () => {
    const young = { status: 'announced' as const, firstSeenAt: NOW - DAY_MS, announcedAt: NOW };
    const old = { ...young, firstSeenAt: NOW - 8 * DAY_MS };
    expect(triageCode(old, { mode: 'keep' }, NOW)).toBe(TRIAGE.kept);
    expect(triageCode(young, { mode: 'delete' }, NOW)).toBe(TRIAGE.entry);
    expect(triageCode(young, { mode: 'keep-days', days: 7 }, NOW)).toBe(TRIAGE.kept);
    expect(triageCode(old, { mode: 'keep-days', days: 7 }, NOW)).toBe(TRIAGE.entry);
  });
});

describe('planRun from a triage', () => {
  it('plans what it plans from every entry, under every policy and size cap', () => {
    const { messages, entries } = cases();
    let kept = 0;
    for (const policy of POLICIES) {
      for (const maxMessageBytes of [undefined, 1000]) {
        const whole = planRun({ messages, known: entries, policy, maxMessageBytes, now: NOW });
        const codes = Uint8Array.from(messages, (m) => triageCode(entries.get(m.uidl), policy, NOW));
        const needed = new Map([...entries].filter(([uidl]) => codes[messages.findIndex((m) => m.uidl === uidl)] === TRIAGE.entry));
        const triaged = planRun({ messages, known: needed, triage: codes, policy, maxMessageBytes, now: NOW });
        expect(triaged).toEqual(whole);
        kept += codes.filter((c) => c === TRIAGE.kept).length;
        expect(needed.size).toBeLessThan(entries.size);
      }
    }
    expect(kept).toBeGreaterThan(0);
  });

  it('refuses a triage with --refetch (a refetch needs the stored entries)', () => {
    const { messages, entries } = cases();
    const codes = Uint8Array.from(messages, (m) => triageCode(entries.get(m.uidl), { mode: 'keep' }, NOW));
    expect(() => planRun({ messages, known: entries, triage: codes, policy: { mode: 'keep' }, maxMessageBytes: undefined, now: NOW, refetch: true })).toThrow(/refetch/);
  });
});
