/**
 * Runs the records of a batch: the groups at once (at most `slots` of them at a time), the
 * records of one group one after the other in batch order, and none of a group after one of
 * its records failed (batch-groups.ts decides what that means for the reply to SQS).
 */
import { groupBatch, type BatchGroup, type BatchRecord, type RecordOutcome } from './batch-groups.js';

/** Run one record; a record's failure is its outcome, never a rejection. */
export type RunRecord<R> = (record: R) => Promise<RecordOutcome>;

/** The outcome of every record that ran (those not run have none). */
export async function runBatch<R extends BatchRecord>(records: readonly R[], slots: number, run: RunRecord<R>): Promise<Map<string, RecordOutcome>> {
  const outcomes = new Map<string, RecordOutcome>();
  const waiting: BatchGroup<R>[] = groupBatch(records);
  const runGroup = async (group: BatchGroup<R>): Promise<void> => {
    for (const record of group.records) {
      const outcome = await run(record);
      outcomes.set(record.messageId, outcome);
      if (outcome === 'failed') return;
    }
  };
  const worker = async (): Promise<void> => {
    for (let group = waiting.shift(); group !== undefined; group = waiting.shift()) await runGroup(group);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(slots, waiting.length)) }, worker));
  return outcomes;
}
