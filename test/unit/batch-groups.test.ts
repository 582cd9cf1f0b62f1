// The drainer's batch decision (lambdas/batch-groups.ts): groups in order, and what is reported
// failed once a record of a group fails.
import { describe, expect, it } from 'vitest';
import { batchItemFailures, groupBatch, groupIdOf, retryPlan, type BatchRecord, type RecordOutcome } from '../../lambdas/batch-groups.js';
import { runBatch } from '../../lambdas/drain-batch.js';
import { drainSlots, FIXED_MEMORY_MIB, RUN_MEMORY_WORST_MIB } from '../../lambdas/drain-slots.js';

const rec = (messageId: string, group?: string): BatchRecord => ({ messageId, attributes: group === undefined ? {} : { MessageGroupId: group } });

describe('groupBatch', () => {
  it('groups by MessageGroupId in the order of each group first record, keeping batch order within a group', () => {
    const batch = [rec('1', 'a'), rec('2', 'b'), rec('3', 'a'), rec('4', 'c'), rec('5', 'b'), rec('6', 'a')];
    expect(groupBatch(batch).map((g) => [g.groupId, g.records.map((r) => r.messageId)])).toEqual([
      ['a', ['1', '3', '6']],
      ['b', ['2', '5']],
      ['c', ['4']],
    ]);
  });

  it('puts a record without a group id in a group of its own', () => {
    const groups = groupBatch([rec('1'), rec('2'), rec('3', '1')]);
    expect(groups.map((g) => g.records.map((r) => r.messageId))).toEqual([['1'], ['2'], ['3']]);
    expect(groupIdOf(rec('9'))).toBe('9');
    expect(groupIdOf(rec('9', 'a'))).toBe('a');
  });

  it('gives an empty batch no groups, and a batch of one one group', () => {
    expect(groupBatch([])).toEqual([]);
    expect(groupBatch([rec('1', 'a')])).toEqual([{ groupId: 'a', records: [rec('1', 'a')] }]);
  });
});

describe('batchItemFailures', () => {
  const batch = [rec('1', 'a'), rec('2', 'b'), rec('3', 'a'), rec('4', 'b'), rec('5', 'a')];
  const outcomes = (entries: Array<[string, RecordOutcome]>) => new Map(entries);

  it('reports nothing when every record was done', () => {
    expect(batchItemFailures(batch, outcomes(batch.map((r) => [r.messageId, 'done'])))).toEqual([]);
  });

  it('reports a failed record and the later records of its group that were not run; other groups go on', () => {
    // a: 1 done, 3 failed, 5 not run. b: both done.
    const seen = outcomes([['1', 'done'], ['2', 'done'], ['3', 'failed'], ['4', 'done']]);
    expect(batchItemFailures(batch, seen)).toEqual(['3', '5']);
  });

  it('reports in batch order when groups fail at different points', () => {
    const seen = outcomes([['1', 'failed'], ['2', 'done'], ['4', 'failed']]);
    expect(batchItemFailures(batch, seen)).toEqual(['1', '3', '4', '5']);
  });

  it('never takes a record without an outcome as done', () => {
    expect(batchItemFailures(batch, new Map())).toEqual(['1', '2', '3', '4', '5']);
  });
});

describe('drainSlots', () => {
  it('runs one mailbox per group while the memory holds them at worst', () => {
    expect(drainSlots(3, 1024)).toBe(3);
    expect(drainSlots(10, 1024)).toBe(Math.floor((1024 - FIXED_MEMORY_MIB) / RUN_MEMORY_WORST_MIB));
    expect(drainSlots(10, 1024)).toBe(8);
    expect(drainSlots(10, 1280)).toBe(10);
    expect(drainSlots(10, 10_240)).toBe(10);
  });

  it('runs at least one, even in a function too small for the worst case', () => {
    expect(drainSlots(10, 128)).toBe(1);
    expect(drainSlots(0, 1024)).toBe(1);
  });
});

describe('retryPlan', () => {
  const batch = [rec('1', 'a'), rec('2', 'b'), rec('3', 'a'), rec('4', 'a')];
  it('gives the records not run the retry delay of their group failed record', () => {
    const plan = retryPlan(batch, new Map<string, RecordOutcome>([['1', 'done'], ['2', 'failed'], ['3', 'failed']]));
    expect(plan.map((p) => [p.record.messageId, p.delayOf.messageId])).toEqual([
      ['2', '2'],
      ['3', '3'],
      ['4', '3'],
    ]);
  });
  it('lets a record without an outcome in a group without a failure take its own', () => {
    const plan = retryPlan(batch, new Map<string, RecordOutcome>([['1', 'done'], ['3', 'done'], ['4', 'done']]));
    expect(plan.map((p) => [p.record.messageId, p.delayOf.messageId])).toEqual([['2', '2']]);
  });
});

describe('runBatch', () => {
  it('runs a group in order, stops it at its first failure, and runs the other groups', async () => {
    const batch = [rec('1', 'a'), rec('2', 'b'), rec('3', 'a'), rec('4', 'b'), rec('5', 'a')];
    const ran: string[] = [];
    const outcomes = await runBatch(batch, 4, async (r) => {
      ran.push(r.messageId);
      await Promise.resolve();
      return r.messageId === '3' ? 'failed' : 'done';
    });
    expect([...outcomes].sort()).toEqual([['1', 'done'], ['2', 'done'], ['3', 'failed'], ['4', 'done']]);
    expect(ran.filter((id) => ['1', '3', '5'].includes(id))).toEqual(['1', '3']);
    expect(batchItemFailures(batch, outcomes)).toEqual(['3', '5']);
  });

  it('has at most `slots` records running at once, and one per group', async () => {
    const batch = ['a', 'b', 'c', 'd', 'e'].flatMap((g, i) => [rec(`${i}x`, g), rec(`${i}y`, g)]);
    let running = 0;
    let most = 0;
    const active = new Set<string>();
    const outcomes = await runBatch(batch, 3, async (r) => {
      const group = r.attributes.MessageGroupId!;
      expect(active.has(group)).toBe(false);
      active.add(group);
      running += 1;
      most = Math.max(most, running);
      await new Promise((resolve) => setTimeout(resolve, 1));
      running -= 1;
      active.delete(group);
      return 'done';
    });
    expect(most).toBe(3);
    expect(outcomes.size).toBe(10);
  });
});
