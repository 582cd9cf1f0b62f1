/**
 * The UIDL ledger, the mailbox leases and the mailbox state, in one DynamoDB table
 * (docs/ledger-table.md): a new one, or an existing one with the same key schema.
 *
 * Builds in the given scope (the PopDrain), not in a construct of its own, so the retained
 * table keeps its logical ID (`<PopDrain>/Ledger`).
 */
import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type { Construct } from 'constructs';

export interface LedgerTableProps {
  /**
   * An existing table: partition key `pk` (string), sort key `sk` (string), TTL on `expiresAt`.
   * @default - a new table: on-demand, point-in-time recovery, TTL `expiresAt`, deletion protection
   */
  readonly table?: dynamodb.ITable;
  /** Encrypt the new table with this customer-managed key. @default - a DynamoDB-owned key */
  readonly encryptionKey?: kms.IKey;
  /** @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

export class LedgerTable {
  public readonly table: dynamodb.ITable;

  constructor(scope: Construct, props: LedgerTableProps) {
    this.table =
      props.table ??
      new dynamodb.Table(scope, 'Ledger', {
        partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
        sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        timeToLiveAttribute: 'expiresAt',
        ...(props.encryptionKey === undefined ? {} : { encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED, encryptionKey: props.encryptionKey }),
        removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
        // A table the stack may destroy must be deletable; otherwise guard it against deletion.
        deletionProtection: props.removalPolicy !== RemovalPolicy.DESTROY,
      });
  }
}
