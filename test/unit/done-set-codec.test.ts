import { describe, expect, it } from 'vitest';
import {
  decodeShard,
  DONE_SHARD_COUNT,
  encodeShard,
  hitAnswers,
  keptEntry,
  MAX_SHARD_PAYLOAD_BYTES,
  nextShard,
  shardOf,
  shouldFlush,
  summarizable,
  type DoneEntry,
} from '../../lib/adapters/aws/done-set-codec.js';
import { storedEntry } from '../../testkit/fixtures/ledger-fixtures.js';

const DAY = 86_400_000;
const done = (uidl: string, over: Partial<DoneEntry> = {}): DoneEntry => ({ uidl, size: 1234, firstSeenAt: 1_700_000_000_000, skipped: false, ...over });

describe('done-set codec', () => {
  it('packs and unpacks entries, UTF-8 UIDLs, sizes to 2^32-1, and the skipped flag', () => {
    const entries = [done('0000000100000001'), done('ünï', { size: 0xffff_ffff, skipped: true }), done('x'.repeat(255), { firstSeenAt: 0 })];
    expect(decodeShard(encodeShard(entries))).toEqual(entries);
    expect(encodeShard([done('0000000100000001')])).toHaveLength(26);
    expect(decodeShard(new Uint8Array())).toEqual([]);
  });

  it('refuses a truncated shard at every cut', () => {
    const bytes = encodeShard([done('abc'), done('defg')]);
    for (let cut = 1; cut < bytes.length; cut++) {
      if (cut === 13) continue; // the end of the first entry: a whole shard of one
      expect(() => decodeShard(bytes.subarray(0, cut)), `cut ${cut}`).toThrow(/truncated/);
    }
  });

  it('spreads UIDLs over every shard', () => {
    const seen = new Set(Array.from({ length: 2_000 }, (_, i) => shardOf(`uidl-${i}`)));
    expect(seen.size).toBe(DONE_SHARD_COUNT);
    expect(shardOf('same')).toBe(shardOf('same'));
  });

  it('summarizes only final, undeleted entries the policy keeps beyond the margin', () => {
    const base = storedEntry('m', 'u');
    const announced = { ...base, status: 'announced' as const, announcedAt: base.firstSeenAt };
    const now = base.firstSeenAt;
    expect(summarizable(base, { mode: 'keep' }, now)).toBe(false); // stored: re-announced, needs its event
    expect(summarizable(announced, { mode: 'keep' }, now)).toBe(true);
    expect(summarizable({ ...announced, deletedAt: now }, { mode: 'keep' }, now)).toBe(false);
    expect(summarizable(announced, { mode: 'delete' }, now)).toBe(false);
    expect(summarizable(announced, { mode: 'keep-days', days: 30 }, now + 28 * DAY)).toBe(true);
    expect(summarizable(announced, { mode: 'keep-days', days: 30 }, now + 29 * DAY + 1)).toBe(false);
    expect(summarizable({ ...announced, status: 'skipped' }, { mode: 'delete' }, now)).toBe(true);
    expect(summarizable({ ...announced, uidl: 'x'.repeat(256) }, { mode: 'keep' }, now)).toBe(false);
  });

  it('answers a hit only when the policy cannot let the message go within the margin', () => {
    const hit = done('u');
    expect(hitAnswers(hit, { mode: 'keep' }, hit.firstSeenAt)).toBe(true);
    expect(hitAnswers(hit, { mode: 'delete' }, hit.firstSeenAt)).toBe(false);
    expect(hitAnswers({ ...hit, skipped: true }, { mode: 'delete' }, hit.firstSeenAt)).toBe(true);
    expect(hitAnswers(hit, { mode: 'keep-days', days: 10 }, hit.firstSeenAt + 8 * DAY)).toBe(true);
    expect(hitAnswers(hit, { mode: 'keep-days', days: 10 }, hit.firstSeenAt + 9 * DAY)).toBe(false);
  });

  it('a kept entry carries what the summary knows and refuses to give an event', () => {
    const entry = keptEntry('m', done('u', { skipped: true }));
    expect(entry).toEqual({ mailboxId: 'm', uidl: 'u', status: 'skipped', size: 1234, firstSeenAt: 1_700_000_000_000, announcedAt: 1_700_000_000_000 });
    expect(() => entry.event).toThrow(/not in the done set/);
  });

  it('drops entries no longer listed, keeps one per UIDL, and stops at the item limit', () => {
    const next = nextShard([done('a'), done('gone')], [done('b'), done('a', { size: 1 })], new Set(['a', 'b']));
    expect(next).toEqual([done('a'), done('b')]);
    const many = Array.from({ length: 30_000 }, (_, i) => done(`uidl-${String(i).padStart(20, '0')}`));
    const full = nextShard([], many, new Set(many.map((e) => e.uidl)));
    expect(full.length).toBeLessThan(many.length);
    expect(encodeShard(full).length).toBeLessThanOrEqual(MAX_SHARD_PAYLOAD_BYTES);
  });

  it('flushes when enough is missing, or when the set is small next to what is missing', () => {
    expect(shouldFlush(0, 0)).toBe(false);
    expect(shouldFlush(5, 20_000)).toBe(false);
    expect(shouldFlush(32, 20_000)).toBe(true);
    expect(shouldFlush(5, 3)).toBe(true);
  });
});
