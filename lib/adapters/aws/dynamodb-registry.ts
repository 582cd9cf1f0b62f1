/**
 * The mailbox registry in the ledger table, under a partition of its own: pk `#registry`, sk the
 * mailbox id, attributes `mailbox` (the entry as JSON text, validated), `paused` (BOOL) and
 * `updatedAt` (N, ms). Mailbox ids start with a letter or digit, so `#registry` is never a
 * mailbox's partition. One Query pages through the whole registry (10,000 entries of ~500
 * bytes is 5 MB: five pages); nothing here touches a mailbox's ledger items.
 */
import {
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { ConfigError } from '../../drain/config.js';
import { describeError } from '../../drain/errors.js';
import { REGISTRY_PARTITION, type MailboxRegistry, type RegistryListing } from '../../drain/mailbox-registry.js';
import { parseRegistryMailbox, type RegistryMailbox } from '../../drain/registry-mailbox.js';
import { isConditionFailed, ledgerFailure } from './dynamodb-conditions.js';
import { num, type Item } from './dynamodb-items.js';

export { REGISTRY_PARTITION } from '../../drain/mailbox-registry.js';
/** Sort keys of the registry's own bookkeeping (seed markers) start with this; mailbox ids cannot. */
export const REGISTRY_META_PREFIX = '#';

function registryKey(mailboxId: string): Item {
  return { pk: { S: REGISTRY_PARTITION }, sk: { S: mailboxId } };
}

function fromItem(item: Record<string, AttributeValue>): RegistryMailbox {
  const id = item['sk']?.S ?? '?';
  const text = item['mailbox']?.S;
  let raw: unknown;
  try {
    raw = JSON.parse(text ?? '');
  } catch {
    throw new ConfigError(`registry entry "${id}": its mailbox attribute is not JSON`, [`registry entry "${id}": not JSON`]);
  }
  const entry = parseRegistryMailbox(raw, item['paused']?.BOOL === true);
  if (entry.mailbox.id !== id) {
    throw new ConfigError(`registry entry "${id}" holds mailbox "${entry.mailbox.id}"`, [`registry entry "${id}": holds mailbox "${entry.mailbox.id}"`]);
  }
  return entry;
}

export class DynamoDbMailboxRegistry implements MailboxRegistry {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
    private readonly now: () => number = Date.now,
  ) {}

  async list(): Promise<RegistryListing> {
    const entries: RegistryMailbox[] = [];
    const problems: string[] = [];
    let start: Record<string, AttributeValue> | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new QueryCommand({
            TableName: this.tableName,
            KeyConditionExpression: 'pk = :pk',
            ExpressionAttributeValues: { ':pk': { S: REGISTRY_PARTITION } },
            ExclusiveStartKey: start,
          }),
        );
      } catch (error) {
        throw ledgerFailure(this.tableName, 'listing the mailbox registry', error, 'ledger');
      }
      for (const item of page.Items ?? []) {
        if (item['sk']?.S?.startsWith(REGISTRY_META_PREFIX) === true) continue;
        try {
          entries.push(fromItem(item));
        } catch (error) {
          problems.push(error instanceof ConfigError && error.problems.length > 0 ? error.problems.join('; ') : describeError(error));
        }
      }
      start = page.LastEvaluatedKey;
    } while (start !== undefined);
    return { entries, problems };
  }

  async get(mailboxId: string): Promise<RegistryMailbox | undefined> {
    let item;
    try {
      ({ Item: item } = await this.client.send(new GetItemCommand({ TableName: this.tableName, Key: registryKey(mailboxId), ConsistentRead: true })));
    } catch (error) {
      throw ledgerFailure(this.tableName, `reading registry entry ${mailboxId}`, error, 'ledger');
    }
    return item === undefined ? undefined : fromItem(item);
  }

  async put(raw: unknown, options: { paused?: boolean; ifAbsent?: boolean } = {}): Promise<boolean> {
    const { mailbox } = parseRegistryMailbox(raw);
    const values: Record<string, AttributeValue> = { ':m': { S: JSON.stringify(raw) }, ':u': num(this.now()) };
    let update = 'SET #m = :m, updatedAt = :u';
    if (options.paused !== undefined) {
      update += ', paused = :p';
      values[':p'] = { BOOL: options.paused };
    }
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: registryKey(mailbox.id),
          UpdateExpression: update,
          ...(options.ifAbsent === true ? { ConditionExpression: 'attribute_not_exists(pk)' } : {}),
          ExpressionAttributeNames: { '#m': 'mailbox' },
          ExpressionAttributeValues: values,
        }),
      );
      return true;
    } catch (error) {
      if (options.ifAbsent === true && isConditionFailed(error)) return false;
      throw ledgerFailure(this.tableName, `writing registry entry ${mailbox.id}`, error, 'ledger');
    }
  }

  async seedOnce(digest: string, entries: readonly unknown[]): Promise<{ written: number; problems: string[] } | undefined> {
    // The marker is written after the entries, so a seeder that dies half-way leaves the seed to
    // the next one; two at once both write with ifAbsent, which is harmless.
    const marker = registryKey(`${REGISTRY_META_PREFIX}seed#${digest}`);
    try {
      const { Item } = await this.client.send(new GetItemCommand({ TableName: this.tableName, Key: marker, ConsistentRead: true }));
      if (Item !== undefined) return undefined;
    } catch (error) {
      throw ledgerFailure(this.tableName, 'reading the registry seed marker', error, 'ledger');
    }
    let written = 0;
    const problems: string[] = [];
    for (const entry of entries) {
      try {
        if (await this.put(entry, { ifAbsent: true })) written++;
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        problems.push(...(error.problems.length > 0 ? error.problems : [error.message]));
      }
    }
    try {
      await this.client.send(new PutItemCommand({ TableName: this.tableName, Item: { ...marker, seededAt: num(this.now()), entries: num(entries.length) } }));
    } catch (error) {
      throw ledgerFailure(this.tableName, 'marking the registry seed', error, 'ledger');
    }
    return { written, problems };
  }

  async setPaused(mailboxId: string, paused: boolean): Promise<boolean> {
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: registryKey(mailboxId),
          UpdateExpression: 'SET paused = :p, updatedAt = :u',
          ConditionExpression: 'attribute_exists(pk)',
          ExpressionAttributeValues: { ':p': { BOOL: paused }, ':u': num(this.now()) },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailed(error)) return false;
      throw ledgerFailure(this.tableName, `${paused ? 'pausing' : 'resuming'} registry entry ${mailboxId}`, error, 'ledger');
    }
  }

  async remove(mailboxId: string): Promise<boolean> {
    try {
      const { Attributes } = await this.client.send(
        new DeleteItemCommand({ TableName: this.tableName, Key: registryKey(mailboxId), ReturnValues: 'ALL_OLD' }),
      );
      return Attributes !== undefined;
    } catch (error) {
      throw ledgerFailure(this.tableName, `removing registry entry ${mailboxId}`, error, 'ledger');
    }
  }
}
