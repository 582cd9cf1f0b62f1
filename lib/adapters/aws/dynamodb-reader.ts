/**
 * The DynamoDB ledger's reads: GetItem, BatchGetItem (100 keys a request, UnprocessedKeys retried
 * with backoff, chunks in parallel) and a Query of a mailbox's message items, page by page. All
 * reads are strongly consistent, except a BatchGetItem asked for with `consistent: false` (the
 * scheduler's advisory reads of many mailboxes' states).
 */
import { BatchGetItemCommand, GetItemCommand, QueryCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DrainError, type DrainPhase } from '../../drain/errors.js';
import type { LedgerEntry, LedgerStatus } from '../../drain/ports.js';
import { ledgerFailure } from './dynamodb-conditions.js';
import { entryFromItem, MESSAGE_SORT_KEY_PREFIX, type Item } from './dynamodb-items.js';
import { mapBounded } from './map-bounded.js';

/** BatchGetItem takes at most this many keys. */
export const MAX_BATCH_GET_KEYS = 100;
/** Attempts at a BatchGetItem's UnprocessedKeys before giving up (retryably). */
export const MAX_UNPROCESSED_ATTEMPTS = 8;
const UNPROCESSED_BASE_DELAY_MS = 50;
const UNPROCESSED_MAX_DELAY_MS = 2_000;

export class DynamoDbReader {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
    private readonly concurrency: number,
    private readonly sleep: (ms: number) => Promise<void>,
  ) {}

  /** BatchGetItem of at most 100 keys, retrying UnprocessedKeys with backoff. */
  async batchGet(keys: Item[], what: string, phase: DrainPhase, consistent = true): Promise<Item[]> {
    let pending = keys;
    const items: Item[] = [];
    for (let attempt = 1; ; attempt++) {
      let output;
      try {
        output = await this.client.send(
          new BatchGetItemCommand({ RequestItems: { [this.tableName]: { Keys: pending, ConsistentRead: consistent } } }),
        );
      } catch (error) {
        throw ledgerFailure(this.tableName, what, error, phase);
      }
      items.push(...(output.Responses?.[this.tableName] ?? []));
      const unprocessed = output.UnprocessedKeys?.[this.tableName]?.Keys ?? [];
      if (unprocessed.length === 0) return items;
      if (attempt >= MAX_UNPROCESSED_ATTEMPTS) {
        throw new DrainError(
          'LEDGER_FAILED',
          `${what}: DynamoDB left ${unprocessed.length} keys of table ${this.tableName} unprocessed after ${attempt} attempts`,
          { phase, retryable: true },
        );
      }
      const cap = Math.min(UNPROCESSED_MAX_DELAY_MS, UNPROCESSED_BASE_DELAY_MS * 2 ** (attempt - 1));
      await this.sleep(Math.round(cap / 2 + (Math.random() * cap) / 2));
      pending = unprocessed;
    }
  }

  /** `batchGet` over any number of keys: chunks of 100, `concurrency` chunks at once. */
  async batchGetAll(keys: Item[], what: string, phase: DrainPhase, consistent = true): Promise<Item[]> {
    const chunks: Item[][] = [];
    for (let i = 0; i < keys.length; i += MAX_BATCH_GET_KEYS) chunks.push(keys.slice(i, i + MAX_BATCH_GET_KEYS));
    const results = await mapBounded(chunks, this.concurrency, (chunk) => this.batchGet(chunk, what, phase, consistent));
    return results.flat();
  }

  /** Query the mailbox's message items (optionally only those of one status), page by page. */
  async queryMessages(
    mailboxId: string,
    what: string,
    status: LedgerStatus | undefined,
    onEntry: (entry: LedgerEntry) => void,
  ): Promise<void> {
    let startKey: Item | undefined;
    do {
      let output;
      try {
        output = await this.client.send(
          new QueryCommand({
            TableName: this.tableName,
            KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :m)',
            FilterExpression: status === undefined ? undefined : '#status = :status',
            ExpressionAttributeNames: { '#pk': 'pk', '#sk': 'sk', ...(status === undefined ? {} : { '#status': 'status' }) },
            ExpressionAttributeValues: {
              ':pk': { S: mailboxId },
              ':m': { S: MESSAGE_SORT_KEY_PREFIX },
              ...(status === undefined ? {} : { ':status': { S: status } }),
            },
            ConsistentRead: true,
            ExclusiveStartKey: startKey,
          }),
        );
      } catch (error) {
        throw ledgerFailure(this.tableName, what, error, 'ledger');
      }
      for (const item of output.Items ?? []) onEntry(entryFromItem(item));
      startKey = output.LastEvaluatedKey;
    } while (startKey !== undefined);
  }

  async getItem(key: Item, what: string, phase: DrainPhase): Promise<Item | undefined> {
    try {
      const output = await this.client.send(new GetItemCommand({ TableName: this.tableName, Key: key, ConsistentRead: true }));
      return output.Item;
    } catch (error) {
      throw ledgerFailure(this.tableName, what, error, phase);
    }
  }
}
