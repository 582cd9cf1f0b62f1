/**
 * The request marker on the DynamoDB ledger's state item (see ports.ts, `requestMarker`): a
 * map attribute `requestMarker` { token (S), expiresAt (N, ms) } claimed and released with
 * conditional UpdateItems, so two schedulers (or a scheduler and an operator) never both
 * believe they enqueued the one outstanding request.
 */
import { UpdateItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DrainError } from '../../drain/errors.js';
import type { RequestMarker } from '../../drain/ports.js';
import { isConditionFailed, ledgerFailure } from './dynamodb-conditions.js';
import { num, stateKey } from './dynamodb-items.js';

export const REQUEST_MARKER_ATTRIBUTE = 'requestMarker';

export class DynamoDbRequestMarkers {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
  ) {}

  /** SET the marker if there is none, it is this token's, or it expired by `now`. */
  async claim(mailboxId: string, marker: RequestMarker, now: number): Promise<boolean> {
    if (marker.token === '' || !Number.isFinite(marker.expiresAt)) {
      throw new DrainError('LEDGER_FAILED', `invalid request marker for mailbox ${mailboxId}`, { phase: 'ledger', retryable: false });
    }
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: stateKey(mailboxId),
          UpdateExpression: 'SET #m = :m',
          ConditionExpression: 'attribute_not_exists(#m) OR #m.#t = :t OR #m.#e <= :now',
          ExpressionAttributeNames: { '#m': REQUEST_MARKER_ATTRIBUTE, '#t': 'token', '#e': 'expiresAt' },
          ExpressionAttributeValues: {
            ':m': { M: { token: { S: marker.token }, expiresAt: num(marker.expiresAt) } },
            ':t': { S: marker.token },
            ':now': num(now),
          },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailed(error)) return false;
      throw ledgerFailure(this.tableName, `claiming the request marker of mailbox ${mailboxId}`, error, 'ledger');
    }
  }

  /**
   * Move the expiry of a marker this token still holds to `expiresAt` (the scheduler, once its
   * request is sent). Unlike `claim`, it never creates a marker: one the drainer already
   * released (the request ran) stays released. Resolves false when the marker is not this token's.
   */
  async extend(mailboxId: string, token: string, expiresAt: number): Promise<boolean> {
    if (token === '' || !Number.isFinite(expiresAt)) {
      throw new DrainError('LEDGER_FAILED', `invalid request marker for mailbox ${mailboxId}`, { phase: 'ledger', retryable: false });
    }
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: stateKey(mailboxId),
          UpdateExpression: 'SET #m.#e = :e',
          ConditionExpression: '#m.#t = :t',
          ExpressionAttributeNames: { '#m': REQUEST_MARKER_ATTRIBUTE, '#t': 'token', '#e': 'expiresAt' },
          ExpressionAttributeValues: { ':t': { S: token }, ':e': num(expiresAt) },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailed(error)) return false;
      throw ledgerFailure(this.tableName, `extending the request marker of mailbox ${mailboxId}`, error, 'ledger');
    }
  }

  /** REMOVE the marker if it is still this token's. */
  async release(mailboxId: string, token: string): Promise<void> {
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: stateKey(mailboxId),
          UpdateExpression: 'REMOVE #m',
          ConditionExpression: '#m.#t = :t',
          ExpressionAttributeNames: { '#m': REQUEST_MARKER_ATTRIBUTE, '#t': 'token' },
          ExpressionAttributeValues: { ':t': { S: token } },
        }),
      );
    } catch (error) {
      if (isConditionFailed(error)) return;
      throw ledgerFailure(this.tableName, `releasing the request marker of mailbox ${mailboxId}`, error, 'ledger');
    }
  }
}
