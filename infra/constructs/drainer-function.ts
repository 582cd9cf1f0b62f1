/**
 * A drainer: drains one mailbox per SQS message, a batch of them per invocation, storing messages under the prefix of the
 * bucket, recording them in the ledger, publishing events and reading (and, for rotating
 * refresh tokens, writing) exactly its mailboxes' secrets. A second one runs in the VPC for
 * `placement: "vpc"` mailboxes.
 *
 * Builds in the given scope (the PopDrain) through LambdaDefaults, so its function, role and
 * log group keep their logical IDs (`<PopDrain>/<id>`, `<id>Role`, `<id>Logs`).
 */
import { Duration, Size, Validations } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { ConfiguredMailbox } from '../../lib/drain/config.js';
import { DRAINER_ENTRY, type LambdaDefaults } from './lambda-defaults.js';
import type { MessageStorage } from './message-storage.js';
import { wildcardResourceFinding } from './nag-finding.js';
import { DEFAULT_DRAINER_BATCH_SIZE, DEFAULT_DRAINER_MAX_CONCURRENCY, MAX_FIFO_BATCH_SIZE } from './drainer-concurrency.js';
import { grantSecretPrefix, grantSecrets, MAX_SECRET_STATEMENTS, ROTATION_ACTIONS } from './secret-grants.js';
import { withoutUndefined } from '../../lib/drain/without-undefined.js';

export { DEFAULT_DRAINER_BATCH_SIZE, DEFAULT_DRAINER_MAX_CONCURRENCY, MAX_FIFO_BATCH_SIZE } from './drainer-concurrency.js';
export const DEFAULT_LEDGER_RETENTION_DAYS = 30;
export const DEFAULT_MAX_CONTINUATIONS = 200;
/** AWS::Lambda::Function RecursiveLoop: the value that lets the drainer's own SQS loop run. */
export const RECURSIVE_LOOP_ALLOW = 'Allow';

/** The action set of AWSLambdaVPCAccessExecutionRole, without its logs:* on every log group. */
const VPC_NETWORK_INTERFACE_ACTIONS = [
  'ec2:CreateNetworkInterface',
  'ec2:DescribeNetworkInterfaces',
  'ec2:DescribeSubnets',
  'ec2:DeleteNetworkInterface',
  'ec2:AssignPrivateIpAddresses',
  'ec2:UnassignPrivateIpAddresses',
];

export interface DrainerFunctionProps {
  readonly defaults: LambdaDefaults;
  /** The construct id: `Drainer`, or `VpcDrainer`. */
  readonly id: string;
  /** The queue it reads drain requests from and sends continuations to. */
  readonly queue: sqs.Queue;
  /** The mailboxes it drains: it may read exactly their secrets. */
  readonly mailboxes: readonly ConfiguredMailbox[];
  readonly storage: MessageStorage;
  readonly table: dynamodb.ITable;
  readonly eventBus: events.IEventBus;
  readonly timeout: Duration;
  /** Its /tmp in MiB. */
  readonly ephemeralMib: number;
  /** Run in this VPC. @default - not in a VPC */
  readonly vpc?: ec2.IVpc;
  /** @default - the VPC's private subnets with egress */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /** @default - a new security group that allows all outbound traffic */
  readonly securityGroups?: ec2.ISecurityGroup[];
  /** @default 1024 */
  readonly memorySize?: number;
  /** @default - no reserved concurrency */
  readonly reservedConcurrentExecutions?: number;
  /** Invocations the SQS event source runs at once (2-1000). @default 10 */
  readonly maxConcurrency?: number;
  /** Drain requests per invocation (1-10), their mailboxes drained at once. @default 10 */
  readonly batchSize?: number;
  /** @default Duration.seconds(60) */
  readonly deadlineMargin?: Duration;
  /** @default 30 */
  readonly ledgerRetentionDays?: number;
  /** Continuations one request may lead to (`POPDRAIN_MAX_CONTINUATIONS`). @default 200 */
  readonly maxContinuations?: number;
  /** How long a request marker holds a mailbox (`POPDRAIN_REQUEST_MARKER_TTL_SECONDS`). */
  readonly requestMarkerTtl: Duration;
  /** The drain queue's maxReceiveCount (`POPDRAIN_MAX_RECEIVE_COUNT`): on that receive the marker is released first. */
  readonly maxReceiveCount: number;
  /** Publish the opt-in per-mailbox metric series. @default false */
  readonly perMailboxMetrics?: boolean;
  /**
   * Grant secrets by this name prefix (mailboxes in the registry) instead of one ARN per
   * secret of `mailboxes`. @default - one ARN per secret
   */
  readonly secretNamePrefix?: string;
}

export class DrainerFunction {
  public readonly function: NodejsFunction;

  constructor(props: DrainerFunctionProps) {
    const { defaults, id, queue, vpc, storage } = props;
    const maxConcurrency = props.maxConcurrency ?? DEFAULT_DRAINER_MAX_CONCURRENCY;
    if (!Number.isInteger(maxConcurrency) || maxConcurrency < 2 || maxConcurrency > 1000) {
      throw new Error(`PopDrain: drainerMaxConcurrency must be a whole number from 2 to 1000, not ${maxConcurrency}`);
    }
    if (props.reservedConcurrentExecutions !== undefined && props.reservedConcurrentExecutions < maxConcurrency) {
      throw new Error(
        `PopDrain: reservedConcurrentExecutions (${props.reservedConcurrentExecutions}) must be at least drainerMaxConcurrency (${maxConcurrency}), or SQS deliveries are throttled`,
      );
    }
    const batchSize = props.batchSize ?? DEFAULT_DRAINER_BATCH_SIZE;
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_FIFO_BATCH_SIZE) {
      throw new Error(`PopDrain: drainerBatchSize must be a whole number from 1 to ${MAX_FIFO_BATCH_SIZE} (what an SQS FIFO event source allows), not ${batchSize}`);
    }
    const margin = props.deadlineMargin ?? Duration.seconds(60);
    if (margin.toMilliseconds() >= props.timeout.toMilliseconds()) {
      throw new Error('PopDrain: drainerDeadlineMargin must be shorter than drainerTimeout');
    }
    const retentionDays = props.ledgerRetentionDays ?? DEFAULT_LEDGER_RETENTION_DAYS;
    if (!Number.isInteger(retentionDays) || retentionDays < 1) {
      throw new Error(`PopDrain: ledgerRetentionDays must be a whole number of days, not ${retentionDays}`);
    }

    const maxContinuations = props.maxContinuations ?? DEFAULT_MAX_CONTINUATIONS;
    if (!Number.isInteger(maxContinuations) || maxContinuations < 0) {
      throw new Error(`PopDrain: maxContinuations must be a whole number >= 0, not ${maxContinuations}`);
    }

    const logGroup = defaults.logGroup(id);
    const role = defaults.role(id, logGroup, `popdrain ${vpc === undefined ? '' : 'VPC '}drainer: drains one mailbox per SQS message`);
    this.grantStorage(role, props);
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'UseLedger',
        actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:BatchGetItem', 'dynamodb:Query'],
        resources: [props.table.tableArn],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ sid: 'PublishEvents', actions: ['events:PutEvents'], resources: [props.eventBus.eventBusArn] }),
    );
    this.grantMailboxSecrets(role, props);
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ sid: 'EnqueueContinuations', actions: ['sqs:SendMessage'], resources: [queue.queueArn] }),
    );
    if (vpc !== undefined) {
      role.addToPrincipalPolicy(new iam.PolicyStatement({ sid: 'ManageVpcNetworkInterfaces', actions: VPC_NETWORK_INTERFACE_ACTIONS, resources: ['*'] }));
      Validations.of(role).acknowledge({
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'Lambda needs these EC2 network-interface actions to attach the function to the VPC; the Describe actions support no resource-level permissions and the interfaces do not exist before Lambda creates them. This is the action set of the AWSLambdaVPCAccessExecutionRole managed policy, without its logs:* on every log group.',
      });
    }

    this.function = defaults.nodejsFunction(id, DRAINER_ENTRY, role, logGroup, {
      description: `popdrain drainer${vpc === undefined ? '' : ' (VPC)'}: drains one mailbox per SQS message`,
      memorySize: props.memorySize ?? 1024,
      timeout: props.timeout,
      ephemeralStorageSize: Size.mebibytes(props.ephemeralMib),
      ...withoutUndefined({ reservedConcurrentExecutions: props.reservedConcurrentExecutions }),
      ...(vpc === undefined
        ? {}
        : {
            vpc,
            ...withoutUndefined({ vpcSubnets: props.vpcSubnets, securityGroups: props.securityGroups }),
          }),
      environment: {
        ...defaults.environment(),
        POPDRAIN_BUCKET: storage.bucket.bucketName,
        POPDRAIN_PREFIX: storage.messagePrefix,
        ...(storage.encryptionKey === undefined ? {} : { POPDRAIN_KMS_KEY_ID: storage.encryptionKey.keyArn }),
        POPDRAIN_EVENT_BUS: props.eventBus.eventBusArn,
        POPDRAIN_QUEUE_URL: queue.queueUrl,
        POPDRAIN_DEADLINE_MARGIN_MS: String(margin.toMilliseconds()),
        POPDRAIN_RETENTION_DAYS: String(retentionDays),
        POPDRAIN_MAX_CONTINUATIONS: String(maxContinuations),
        POPDRAIN_REQUEST_MARKER_TTL_SECONDS: String(props.requestMarkerTtl.toSeconds()),
        POPDRAIN_MAX_RECEIVE_COUNT: String(props.maxReceiveCount),
        POPDRAIN_PER_MAILBOX_METRICS: props.perMailboxMetrics === true ? 'true' : 'false',
      },
    });
    // The drainer sends continuations to the queue that triggers it: SQS -> Lambda -> SQS is the
    // loop Lambda's recursive-loop detection stops after about 16 invocations (dropping the
    // event) unless allowed. The chain is bounded by maxContinuations instead. (FunctionOptions,
    // which LambdaDefaults takes, has no recursiveLoop: set on the CloudFormation resource.)
    (this.function.node.defaultChild as lambda.CfnFunction).recursiveLoop = RECURSIVE_LOOP_ALLOW;
    this.function.addEventSource(new SqsEventSource(queue, { batchSize, reportBatchItemFailures: true, maxConcurrency }));
    Validations.of(this.function).acknowledge({
      id: 'Serverless::Serverless-LambdaDLQ',
      reason:
        'The drainer is invoked only by its SQS event source mapping, synchronously; a Lambda dead-letter queue applies to asynchronous invocations only. Failed drain requests go to the FIFO dead-letter queue of the drain queue after maxReceiveCount receives.',
    });
    Validations.of(this.function).acknowledge({
      id: 'Serverless::Serverless-LambdaEventSourceMappingDestination',
      reason:
        'On-failure destinations of event source mappings exist for stream and Kafka sources, not SQS: a failed drain request stays in its queue with a growing visibility timeout and moves to the FIFO dead-letter queue after maxReceiveCount receives (the DeadLetterQueueNotEmpty alarm).',
    });
  }

  /** Put, head and abort-upload under the message prefix; the bucket's key when SSE-KMS is used. */
  private grantStorage(role: iam.Role, { storage }: DrainerFunctionProps): void {
    const objects = storage.bucket.arnForObjects(`${storage.messagePrefix}*`);
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'StoreMessages',
        // GetObject is for HeadObject, which decides whether a conflicting put is a retry.
        actions: ['s3:PutObject', 's3:GetObject', 's3:AbortMultipartUpload'],
        resources: [objects],
      }),
    );
    Validations.of(role).acknowledge({
      id: wildcardResourceFinding(role, objects),
      reason:
        'Object keys are <prefix><mailbox id>/<sha256 of mailbox and UIDL>.eml, computed per message at run time, so no finite list of ARNs exists; the wildcard is confined to the message prefix of this one bucket and to put/head/abort-upload.',
    });
    if (storage.encryptionKey !== undefined) {
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'EncryptMessages',
          actions: ['kms:GenerateDataKey', 'kms:Encrypt', 'kms:Decrypt'],
          resources: [storage.encryptionKey.keyArn],
        }),
      );
    }
  }

  /** GetSecretValue on its mailboxes' secrets; PutSecretValue and UpdateSecretVersionStage on the rotating ones. */
  private grantMailboxSecrets(role: iam.Role, { mailboxes, vpc, secretNamePrefix }: DrainerFunctionProps): void {
    if (secretNamePrefix !== undefined) {
      const resource = grantSecretPrefix(role, secretNamePrefix);
      Validations.of(role).acknowledge({
        id: wildcardResourceFinding(role, resource),
        reason:
          'Mailboxes live in the registry and are added without a redeploy, so their secrets are granted by a naming convention: reads of the secrets under the prefix, and writes only of those tagged popdrain:rotating=true (rotated refresh tokens). One ARN per secret would grow the policy with the fleet past what IAM allows.',
      });
      return;
    }
    const secretIds = [...new Set(mailboxes.flatMap((m) => (m.secret.type === 'secrets-manager' ? [m.secret.secretId] : [])))].sort();
    const rotating = [
      ...new Set(mailboxes.flatMap((m) => (m.secret.type === 'secrets-manager' && m.rotatingRefreshToken ? [m.secret.secretId] : []))),
    ].sort();
    const statements =
      grantSecrets(role, 'ReadMailboxSecrets', 'secretsmanager:GetSecretValue', secretIds) +
      grantSecrets(role, 'SaveRotatedRefreshTokens', ROTATION_ACTIONS, rotating);
    if (statements > MAX_SECRET_STATEMENTS) {
      throw new Error(
        `PopDrain: the ${vpc === undefined ? '' : 'VPC '}drainer would need ${statements} IAM statements for ${secretIds.length} secrets (${rotating.length} rotating), more than the 20 managed policies IAM attaches to a role at most: let mailboxes share secrets (one Microsoft 365 client-credentials secret serves every mailbox of a tenant) or split the mailboxes over several PopDrain stacks`,
      );
    }
  }
}
