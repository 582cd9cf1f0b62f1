/**
 * The DynamoDB ledger's leases: one `lease` item per mailbox, taken with a conditional put (free,
 * expired, or already ours), renewed and released on the condition that we still own it. Lease
 * times are kept in `leaseExpiresAt` (ms); `expiresAt` (s) is the TTL, so a stale lease of a
 * removed mailbox goes away.
 */
import { DeleteItemCommand, PutItemCommand, UpdateItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DrainError, type DrainPhase } from '../../drain/errors.js';
import type { Lease } from '../../drain/ports.js';
import { checkLeaseArgs, conditionItem, isConditionFailed, ledgerFailure } from './dynamodb-conditions.js';
import { LEASE_SORT_KEY, LEDGER_TTL_ATTRIBUTE, leaseFromItem, leaseKey, num } from './dynamodb-items.js';
import type { DynamoDbReader } from './dynamodb-reader.js';

export class DynamoDbLeases {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
    private readonly reader: DynamoDbReader,
  ) {}

  async acquire(mailboxId: string, owner: string, ttlMs: number, now: number): Promise<Lease | undefined> {
    checkLeaseArgs(mailboxId, owner, ttlMs);
    const expiresAt = now + ttlMs;
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: {
            pk: { S: mailboxId },
            sk: { S: LEASE_SORT_KEY },
            owner: { S: owner },
            leaseExpiresAt: num(expiresAt),
            acquiredAt: num(now),
            [LEDGER_TTL_ATTRIBUTE]: num(Math.ceil(expiresAt / 1000)),
          },
          ConditionExpression: 'attribute_not_exists(#pk) OR #leaseExpiresAt <= :now OR #owner = :owner',
          ExpressionAttributeNames: { '#pk': 'pk', '#leaseExpiresAt': 'leaseExpiresAt', '#owner': 'owner' },
          ExpressionAttributeValues: { ':now': num(now), ':owner': { S: owner } },
        }),
      );
      return { mailboxId, owner, expiresAt };
    } catch (error) {
      if (isConditionFailed(error)) return undefined;
      throw this.failure(`acquiring the lease of mailbox ${mailboxId}`, error, 'lease');
    }
  }

  async renew(lease: Lease, ttlMs: number, now: number): Promise<Lease> {
    checkLeaseArgs(lease.mailboxId, lease.owner, ttlMs);
    const expiresAt = now + ttlMs;
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: leaseKey(lease.mailboxId),
          UpdateExpression: 'SET #leaseExpiresAt = :until, #ttl = :ttl',
          ConditionExpression: '#owner = :owner',
          ExpressionAttributeNames: { '#leaseExpiresAt': 'leaseExpiresAt', '#ttl': LEDGER_TTL_ATTRIBUTE, '#owner': 'owner' },
          ExpressionAttributeValues: { ':until': num(expiresAt), ':ttl': num(Math.ceil(expiresAt / 1000)), ':owner': { S: lease.owner } },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      return { mailboxId: lease.mailboxId, owner: lease.owner, expiresAt };
    } catch (error) {
      if (isConditionFailed(error)) {
        const holder = conditionItem(error)?.['owner']?.S;
        throw new DrainError(
          'LEASE_HELD',
          `the lease of mailbox ${lease.mailboxId} is no longer held by ${lease.owner}` +
            (holder === undefined ? '' : ` (now held by ${holder})`),
          { phase: 'lease', retryable: false },
        );
      }
      throw this.failure(`renewing the lease of mailbox ${lease.mailboxId}`, error, 'lease');
    }
  }

  async release(lease: Lease): Promise<void> {
    try {
      await this.client.send(
        new DeleteItemCommand({
          TableName: this.tableName,
          Key: leaseKey(lease.mailboxId),
          ConditionExpression: '#owner = :owner',
          ExpressionAttributeNames: { '#owner': 'owner' },
          ExpressionAttributeValues: { ':owner': { S: lease.owner } },
        }),
      );
    } catch (error) {
      if (isConditionFailed(error)) return; // not ours any more (or gone): nothing to give up
      throw this.failure(`releasing the lease of mailbox ${lease.mailboxId}`, error, 'lease');
    }
  }

  async holder(mailboxId: string, now: number): Promise<Lease | undefined> {
    const item = await this.reader.getItem(leaseKey(mailboxId), `reading the lease of mailbox ${mailboxId}`, 'lease');
    return item === undefined ? undefined : leaseFromItem(item, now);
  }

  /**
   * The unexpired leases of many mailboxes at once (BatchGetItem), for a scheduler that skips
   * busy mailboxes. Not part of the UidlLedger port.
   */
  async holders(mailboxIds: readonly string[], now: number): Promise<Map<string, Lease>> {
    const keys = [...new Set(mailboxIds)].map(leaseKey);
    const holders = new Map<string, Lease>();
    for (const item of await this.reader.batchGetAll(keys, `reading the leases of ${keys.length} mailboxes`, 'lease')) {
      const lease = leaseFromItem(item, now);
      if (lease !== undefined) holders.set(lease.mailboxId, lease);
    }
    return holders;
  }

  // -----------------------------------------------------------------------------------------

  private failure(what: string, error: unknown, phase: DrainPhase): DrainError {
    return ledgerFailure(this.tableName, what, error, phase);
  }
}
