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
 * effort: a failed write leaves the set lagging and the run goes on, with one warning per shard
 * whose write failed (the mailbox id, the shard and the error's name: nothing else of the error).
 * The per-message conditional writes stay the exactly-once guarantee; the done set is only a read
 * cache of them.
 */
import { PutItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { isConditionFailed } from './dynamodb-conditions.js';
import { silentLogger, type DrainLogger } from '../../drain/ports.js';
import type { Item } from './dynamodb-items.js';
import type { DynamoDbReader } from './dynamodb-reader.js';
import { sdkErrorName } from './sdk-error.js';
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
    private readonly logger: DrainLogger = silentLogger,
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
   * per touched shard, re-read and merged on a lost condition. Best effort: never throws; a
   * shard left unwritten is one warning. Resolves to the number of shards written.
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
    const failure = await this.tryWriteShard(mailboxId, shard, additions, listed);
    if (failure === undefined) return true;
    this.logger.warn('done-set write failed: the done set lags, later runs read these messages one by one', {
      mailboxId,
      shard: doneKey(mailboxId, shard.index)['sk']!.S,
      code: failure.code,
      step: failure.step,
    });
    return false;
  }

  /** undefined once written; otherwise the error's name and the step that failed. */
  private async tryWriteShard(
    mailboxId: string,
    shard: DoneShard,
    additions: readonly DoneEntry[],
    listed: ReadonlySet<string>,
  ): Promise<{ code: string; step: 'put' | 're-read' | 'lost-race' } | undefined> {
    let current = shard;
    for (let attempt = 1; attempt <= MAX_FLUSH_ATTEMPTS; attempt++) {
      const entries = nextShard(current.entries, additions, listed);
      // A full shard that gains nothing (the additions do not fit) is not rewritten.
      if (current.version > 0 && unchanged(current.entries, entries)) return undefined;
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
        return undefined;
      } catch (error) {
        if (!isConditionFailed(error)) return { code: sdkErrorName(error), step: 'put' };
        try {
          const item = await this.reader.getItem(doneKey(mailboxId, current.index), `re-reading a done-set shard of mailbox ${mailboxId}`, 'ledger');
          current = shardFromItem(current.index, item);
        } catch (reread) {
          return { code: codeOf(reread), step: 're-read' };
        }
      }
    }
    return { code: 'ConditionalCheckFailedException', step: 'lost-race' };
  }
}

/** nextShard keeps the current entries first, in order: the same UIDLs in the same order are the same shard. */
function unchanged(current: readonly DoneEntry[], next: readonly DoneEntry[]): boolean {
  return current.length === next.length && next.every((e, i) => e.uidl === current[i]!.uidl);
}

/** The SDK error's name; for a DrainError from the reader (which wraps it), its cause's. */
function codeOf(error: unknown): string {
  const cause = error instanceof Error && error.cause !== undefined ? error.cause : error;
  return sdkErrorName(cause);
}
