/**
 * The DynamoDB ledger's writes of one message entry: the conditional put that records it (a run
 * that recorded it first wins, and its entry is returned), and the marks, which only update an
 * entry that exists (never a half item; a missing entry is left alone, as the local ledger does).
 */
import { PutItemCommand, UpdateItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DrainError, DrainPhase } from '../../drain/errors.js';
import type { LedgerEntry, RecordOutcome } from '../../drain/ports.js';
import { conditionItem, isConditionFailed, ledgerFailure } from './dynamodb-conditions.js';
import { entryFromItem, itemFromEntry, LEDGER_TTL_ATTRIBUTE, messageKey, num, type Item } from './dynamodb-items.js';
import type { DynamoDbReader } from './dynamodb-reader.js';

export class DynamoDbEntryWriter {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
    private readonly reader: DynamoDbReader,
  ) {}

  async record(entry: LedgerEntry): Promise<RecordOutcome> {
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: itemFromEntry(entry),
          ConditionExpression: 'attribute_not_exists(#pk)',
          ExpressionAttributeNames: { '#pk': 'pk' },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      return { uidl: entry.uidl, ok: true };
    } catch (error) {
      if (!isConditionFailed(error)) {
        throw this.failure(`recording UIDL ${entry.uidl} of mailbox ${entry.mailboxId}`, error, 'ledger');
      }
      const item =
        conditionItem(error) ??
        (await this.reader.getItem(messageKey(entry.mailboxId, entry.uidl), `reading UIDL ${entry.uidl} of mailbox ${entry.mailboxId}`, 'ledger'));
      return { uidl: entry.uidl, ok: false, conflict: item === undefined ? undefined : entryFromItem(item) };
    }
  }

  /**
   * `stored` becomes `announced`; a `skipped` entry keeps its status (it is never deleted) and
   * gains `announcedAt`. The first announcement's time is kept. False when there is no entry.
   */
  async markAnnounced(mailboxId: string, uidl: string, at: number): Promise<boolean> {
    const what = 'marking announced';
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: messageKey(mailboxId, uidl),
          UpdateExpression: 'SET #status = :announced, #announcedAt = if_not_exists(#announcedAt, :at)',
          ConditionExpression: 'attribute_exists(#pk) AND #status IN (:stored, :announced)',
          ExpressionAttributeNames: { '#pk': 'pk', '#status': 'status', '#announcedAt': 'announcedAt' },
          ExpressionAttributeValues: { ':announced': { S: 'announced' }, ':stored': { S: 'stored' }, ':at': num(at) },
        }),
      );
      return true;
    } catch (error) {
      if (!isConditionFailed(error)) throw this.failure(`${what} UIDL ${uidl} of mailbox ${mailboxId}`, error, 'ledger');
    }
    // Skipped (or missing): only the time.
    return this.updateExisting(
      mailboxId,
      uidl,
      {
        UpdateExpression: 'SET #announcedAt = if_not_exists(#announcedAt, :at)',
        ExpressionAttributeNames: { '#announcedAt': 'announcedAt' },
        ExpressionAttributeValues: { ':at': num(at) },
      },
      what,
    );
  }

  /** The first deletion's time is kept, the expiry is the latest. False when there is no entry. */
  markDeleted(mailboxId: string, uidl: string, at: number, expiresAt: number): Promise<boolean> {
    return this.updateExisting(
      mailboxId,
      uidl,
      {
        UpdateExpression: 'SET #deletedAt = if_not_exists(#deletedAt, :at), #ttl = :ttl',
        ExpressionAttributeNames: { '#deletedAt': 'deletedAt', '#ttl': LEDGER_TTL_ATTRIBUTE },
        ExpressionAttributeValues: { ':at': num(at), ':ttl': num(expiresAt) },
      },
      'marking deleted',
    );
  }

  /** An UpdateItem on an existing message entry; false when there is none. */
  private async updateExisting(
    mailboxId: string,
    uidl: string,
    update: { UpdateExpression: string; ExpressionAttributeNames: Record<string, string>; ExpressionAttributeValues: Item },
    what: string,
  ): Promise<boolean> {
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: messageKey(mailboxId, uidl),
          UpdateExpression: update.UpdateExpression,
          ConditionExpression: 'attribute_exists(#pk)',
          ExpressionAttributeNames: { ...update.ExpressionAttributeNames, '#pk': 'pk' },
          ExpressionAttributeValues: update.ExpressionAttributeValues,
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailed(error)) return false;
      throw this.failure(`${what} UIDL ${uidl} of mailbox ${mailboxId}`, error, 'ledger');
    }
  }

  private failure(what: string, error: unknown, phase: DrainPhase): DrainError {
    return ledgerFailure(this.tableName, what, error, phase);
  }
}
