/**
 * The one customer-managed KMS key of `PopDrainProps.customerManagedKey`: the key the ledger
 * table, the queues (and their dead-letter queues, and the schedule's), the functions' log groups,
 * the event archive and the new bucket are encrypted with. `true` creates one here (rotation on,
 * retained with the data); a given key is used as it is.
 *
 * The key policy of a key created here lets CloudWatch Logs of this region use it for this
 * account's log groups only (the encryption-context condition AWS documents in "Encrypt log data
 * in CloudWatch Logs using AWS KMS"), and EventBridge for this account's rules only (the schedule's
 * dead-letter queue). The archive's statements come from events.Archive, the functions' from
 * their roles (identity policies on this key's ARN). No statement has a wildcard principal. A
 * given key's policy is the caller's: it must allow the same (docs/deploy.md).
 *
 * Builds in the given scope (the PopDrain): `<PopDrain>/DataKey`.
 */
import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type { Construct } from 'constructs';

export class DataKey {
  /** The key, or undefined without `customerManagedKey`. */
  public readonly key?: kms.IKey;
  private readonly created?: kms.Key;

  constructor(scope: Construct, props: { customerManagedKey?: kms.IKey | true; removalPolicy?: RemovalPolicy }) {
    if (props.customerManagedKey === undefined) return;
    if (props.customerManagedKey !== true) {
      this.key = props.customerManagedKey;
      return;
    }
    const { region, account, partition } = Stack.of(scope);
    const key = new kms.Key(scope, 'DataKey', {
      description: 'popdrain: ledger table, queues, log groups, event archive, stored messages',
      enableKeyRotation: true,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchLogsOfThisAccount',
        principals: [new iam.ServicePrincipal(`logs.${region}.amazonaws.com`)],
        actions: ['kms:Encrypt*', 'kms:Decrypt*', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:Describe*'],
        resources: ['*'],
        conditions: { ArnLike: { 'kms:EncryptionContext:aws:logs:arn': `arn:${partition}:logs:${region}:${account}:log-group:*` } },
      }),
    );
    this.key = key;
    this.created = key;
  }

  /**
   * Let EventBridge put the undeliverable events of this account's rules into a queue under this
   * key (the schedule's dead-letter queue; created keys only). The condition names the account's
   * rules, not the schedule rule itself: its ARN would make the key depend on the rule, the rule
   * on the scheduler, and the scheduler's log group on the key (a cycle).
   */
  allowEventBridgeRules(): void {
    if (this.created === undefined) return;
    const { region, account, partition } = Stack.of(this.created);
    this.created.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'EventBridgeRuleDeadLetters',
        principals: [new iam.ServicePrincipal('events.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
        resources: ['*'],
        conditions: { ArnLike: { 'aws:SourceArn': `arn:${partition}:events:${region}:${account}:rule/*` } },
      }),
    );
  }
}
