/**
 * The DynamoDB ledger's checks and error mapping: arguments it refuses before any request, a lost
 * condition recognised (and the item it returned, where the service sends one), and an SDK
 * failure turned into a DrainError LEDGER_FAILED.
 */
import { DrainError, type DrainPhase } from '../../drain/errors.js';
import type { LedgerEntry } from '../../drain/ports.js';
import type { Item } from './dynamodb-items.js';
import { describeSdkError, isRetryableSdkError, sdkErrorName } from './sdk-error.js';

/** An SDK failure of a ledger call as a DrainError (a missing table is not worth a retry). */
export function ledgerFailure(tableName: string, what: string, error: unknown, phase: DrainPhase): DrainError {
  if (sdkErrorName(error) === 'ResourceNotFoundException') {
    return new DrainError('LEDGER_FAILED', `${what} failed: DynamoDB table ${tableName} does not exist (in this account and region)`, {
      phase,
      retryable: false,
      cause: error,
    });
  }
  return new DrainError('LEDGER_FAILED', `${what} in DynamoDB table ${tableName} failed: ${describeSdkError(error)}`, {
    phase,
    retryable: isRetryableSdkError(error),
    cause: error,
  });
}

export function checkEntry(entry: LedgerEntry): void {
  const problem =
    entry.mailboxId === ''
      ? 'an empty mailbox id'
      : entry.uidl === ''
        ? `an empty UIDL (mailbox ${entry.mailboxId})`
        : entry.status === 'announced'
          ? `status 'announced' (UIDL ${entry.uidl}): new entries are 'stored' or 'skipped'`
          : undefined;
  if (problem !== undefined) {
    throw new DrainError('LEDGER_FAILED', `cannot record a ledger entry with ${problem}`, { phase: 'ledger', retryable: false });
  }
}

export function checkLeaseArgs(mailboxId: string, owner: string, ttlMs: number): void {
  const problem =
    mailboxId === '' ? 'an empty mailbox id' : owner === '' ? 'an empty owner' : !(ttlMs > 0) ? `a ttl of ${ttlMs} ms` : undefined;
  if (problem !== undefined) {
    throw new DrainError('LEDGER_FAILED', `invalid lease request: ${problem}`, { phase: 'lease', retryable: false });
  }
}

export function isConditionFailed(error: unknown): boolean {
  return sdkErrorName(error) === 'ConditionalCheckFailedException';
}

/** The item a lost condition returned (ReturnValuesOnConditionCheckFailure: ALL_OLD), if any. */
export function conditionItem(error: unknown): Item | undefined {
  if (error === null || typeof error !== 'object' || !('Item' in error)) return undefined;
  const item = (error as { Item?: unknown }).Item;
  return item !== null && typeof item === 'object' && Object.keys(item).length > 0 ? (item as Item) : undefined;
}

