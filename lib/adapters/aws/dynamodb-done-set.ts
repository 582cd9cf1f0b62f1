/**
 * The done set: per mailbox, DONE_SHARD_COUNT summary items (`done#00`..`done#15` in the
 * mailbox's partition) that list the messages a run leaves alone (announced or skipped, not
 * deleted, kept by the policy), so a `keep` run learns which listed UIDLs are done with one
 * BatchGetItem of 16 small items instead of one read per kept message (see done-set-codec.ts
 * for the packing and the decisions).
 *
 *   done#NN   v (N: version), n (N: entries), d (B: the packed entries)
 *
 * Reads are eventually consistent: a summary that lags misses recent additions, which only
 * means more per-message reads, never a wrong answer (entries leave the set only when they are
 * no longer listed on the server). Writes are a conditional put on the version read, so two
 * writers never lose each other's additions (the loser re-reads and merges); they are best
 * effort: a failed write leaves the set lagging and the run goes on. The per-message
 * conditional writes stay the exactly-once guarantee; the done set is only a read cache of them.
 */
import { PutItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { isConditionFailed } from './dynamodb-conditions.js';
import type { Item } from './dynamodb-items.js';
import type { DynamoDbReader } from './dynamodb-reader.js';
import { decodeShard, DONE_SHARD_COUNT, encodeShard, nextShard, shardOf, type DoneEntry } from './done-set-codec.js';

export const DONE_SORT_KEY_PREFIX = 'done#';
/** Attempts at one shard's conditional write before leaving it for a later run. */
const MAX_FLUSH_ATTEMPTS = 3;

export interface DoneShard {
  index: number;
  /** 0 when the item does not exist yet. */
  version: number;
  entries: DoneEntry[];
}

export function doneKey(mailboxId: string, index: number): Item {
  return { pk: { S: mailboxId }, sk: { S: `${DONE_SORT_KEY_PREFIX}${String(index).padStart(2, '0')}` } };
}

/** A shard from its item (a missing or corrupt item reads as empty at version 0 or its own). */
export function shardFromItem(index: number, item: Item | undefined): DoneShard {
  if (item === undefined) return { index, version: 0, entries: [] };
  const version = Number(item['v']?.N ?? '0');
  try {
    return { index, version, entries: item['d']?.B === undefined ? [] : decodeShard(item['d'].B) };
  } catch {
    return { index, version, entries: [] };
  }
}

export class DynamoDbDoneSet {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
    private readonly reader: DynamoDbReader,
  ) {}

  /** All shards of the mailbox: one BatchGetItem, eventually consistent. */
  async read(mailboxId: string): Promise<DoneShard[]> {
    const keys = Array.from({ length: DONE_SHARD_COUNT }, (_, i) => doneKey(mailboxId, i));
    const items = await this.reader.batchGetAll(keys, `reading the done set of mailbox ${mailboxId}`, 'ledger', false);
    const bySk = new Map(items.map((item) => [item['sk']?.S, item]));
    return keys.map((key, i) => shardFromItem(i, bySk.get(key['sk']!.S)));
  }

  /**
   * Add entries to their shards (dropping entries no longer in `listed`); one conditional put
   * per touched shard, re-read and merged on a lost condition. Best effort: never throws.
   */
  async add(mailboxId: string, shards: readonly DoneShard[], additions: readonly DoneEntry[], listed: ReadonlySet<string>): Promise<number> {
    const byShard = new Map<number, DoneEntry[]>();
    for (const e of additions) {
      const i = shardOf(e.uidl);
      byShard.set(i, [...(byShard.get(i) ?? []), e]);
    }
    const written = await Promise.all(
      [...byShard].map(([i, adds]) => this.writeShard(mailboxId, shards[i] ?? { index: i, version: 0, entries: [] }, adds, listed)),
    );
    return written.filter(Boolean).length;
  }

  private async writeShard(mailboxId: string, shard: DoneShard, additions: readonly DoneEntry[], listed: ReadonlySet<string>): Promise<boolean> {
    let current = shard;
    for (let attempt = 1; attempt <= MAX_FLUSH_ATTEMPTS; attempt++) {
      const entries = nextShard(current.entries, additions, listed);
      try {
        await this.client.send(
          new PutItemCommand({
            TableName: this.tableName,
            Item: {
              ...doneKey(mailboxId, current.index),
              v: { N: String(current.version + 1) },
              n: { N: String(entries.length) },
              d: { B: encodeShard(entries) },
            },
            ConditionExpression: current.version === 0 ? 'attribute_not_exists(pk)' : '#v = :v',
            ExpressionAttributeNames: current.version === 0 ? undefined : { '#v': 'v' },
            ExpressionAttributeValues: current.version === 0 ? undefined : { ':v': { N: String(current.version) } },
          }),
        );
        return true;
      } catch (error) {
        if (!isConditionFailed(error)) return false;
        try {
          const item = await this.reader.getItem(doneKey(mailboxId, current.index), `re-reading a done-set shard of mailbox ${mailboxId}`, 'ledger');
          current = shardFromItem(current.index, item);
        } catch {
          return false;
        }
      }
    }
    return false;
  }
}
