/**
 * How the drainer takes a batch of SQS FIFO records apart, and what it reports back: a pure
 * decision, unit-tested (test/unit/batch-groups.test.ts).
 *
 * A FIFO batch may hold records of several message groups (one group per mailbox), each group
 * in its order (AWS: "each group retains FIFO order"). The drainer runs different groups at
 * once and the records of one group one after the other, in batch order. Once a record of a
 * group fails, the later records of that group are not run: they are reported failed with it,
 * so SQS delivers them again after it, in order. The other groups go on (Powertools'
 * SqsFifoPartialProcessor calls this `skipGroupOnError`).
 */

/** The fields of an SQS record the decision reads. */
export interface BatchRecord {
  readonly messageId: string;
  readonly attributes: { readonly MessageGroupId?: string | undefined };
}

/** The records of one message group, in batch order. */
export interface BatchGroup<R extends BatchRecord> {
  readonly groupId: string;
  readonly records: readonly R[];
}

/** What became of a record that was run: drained (or dropped as malformed), or failed. */
export type RecordOutcome = 'done' | 'failed';

/** The record's group: its MessageGroupId, or (not FIFO) the record alone, under its message id. */
export function groupIdOf(record: BatchRecord): string {
  return record.attributes.MessageGroupId ?? record.messageId;
}

/** Keys that keep a group id apart from a message id that happens to be equal to it. */
function groupKey(record: BatchRecord): string {
  return record.attributes.MessageGroupId === undefined ? `m:${record.messageId}` : `g:${record.attributes.MessageGroupId}`;
}

/** The batch's groups, in the order of their first record; each group's records in batch order. */
export function groupBatch<R extends BatchRecord>(records: readonly R[]): BatchGroup<R>[] {
  const byKey = new Map<string, R[]>();
  for (const record of records) {
    const key = groupKey(record);
    const group = byKey.get(key);
    if (group === undefined) byKey.set(key, [record]);
    else group.push(record);
  }
  return [...byKey.values()].map((grouped) => ({ groupId: groupIdOf(grouped[0]!), records: grouped }));
}

/**
 * The records to report in `batchItemFailures`, in batch order: every record that failed, and
 * every record that was not run (a later record of a group whose earlier record failed). A
 * record without an outcome is never taken as done: SQS delivers it again.
 */
export function batchItemFailures(records: readonly BatchRecord[], outcomes: ReadonlyMap<string, RecordOutcome>): string[] {
  return records.filter((r) => outcomes.get(r.messageId) !== 'done').map((r) => r.messageId);
}

/**
 * Each record to report with the record whose retry delay it takes: the failed record of its
 * group, so the records not run come back with it rather than after the queue's visibility
 * timeout (SQS keeps them behind it in the group's order either way); itself when it failed, or
 * when no record of its group failed.
 */
export function retryPlan<R extends BatchRecord>(records: readonly R[], outcomes: ReadonlyMap<string, RecordOutcome>): Array<{ record: R; delayOf: R }> {
  const reported = new Set(batchItemFailures(records, outcomes));
  const failedOfGroup = new Map<string, R>();
  for (const group of groupBatch(records)) {
    const failed = group.records.find((r) => outcomes.get(r.messageId) === 'failed');
    if (failed !== undefined) for (const r of group.records) failedOfGroup.set(r.messageId, failed);
  }
  return records.filter((r) => reported.has(r.messageId)).map((record) => ({ record, delayOf: failedOfGroup.get(record.messageId) ?? record }));
}
