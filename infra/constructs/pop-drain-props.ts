/**
 * The props of the `PopDrain` construct (pop-drain.ts). Every optional prop documents its
 * default; the defaults are the secure, retain-the-data choices.
 */
import type { Duration, RemovalPolicy, Size } from 'aws-cdk-lib';
import type { IVpc, ISecurityGroup, SubnetSelection } from 'aws-cdk-lib/aws-ec2';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import type { IEventBus } from 'aws-cdk-lib/aws-events';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { Runtime } from 'aws-cdk-lib/aws-lambda';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import type { DrainerSizing } from './drainer-concurrency.js';

/** How the mailbox file reaches the Lambdas. */
export type ConfigDelivery =
  /** Copied into each function's bundle (`POPDRAIN_CONFIG_PATH=mailboxes.json`). */
  | 'bundle'
  /** Uploaded as an S3 asset the functions read at cold start (`POPDRAIN_CONFIG_S3_URI`). */
  | 's3';

/** The Powertools log level of both functions. */
export type PopDrainLogLevel = 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';

export interface MessageLifecycle {
  /**
   * Move stored messages to S3 Standard-IA this many days after they were stored (S3 requires
   * at least 30).
   * @default - messages stay in S3 Standard
   */
  readonly transitionToInfrequentAccessAfterDays?: number;
  /**
   * Expire stored messages this many days after they were stored. The bucket is versioned, so
   * an expired message becomes a noncurrent version that is removed
   * `noncurrentVersionExpireAfterDays` later.
   * @default - messages are kept forever
   */
  readonly expireAfterDays?: number;
  /**
   * Remove noncurrent versions (expired or deleted messages) this many days after they became
   * noncurrent: the window in which a mistaken deletion can still be undone.
   * @default 30
   */
  readonly noncurrentVersionExpireAfterDays?: number;
}

export interface PopDrainProps {
  /**
   * The mailbox file (JSON, the schema of lib/drain/config.ts). It is read and validated at
   * synth time: an invalid file aborts synth with a message naming the mailbox and the field.
   * Every mailbox must take its login from AWS Secrets Manager (`auth.secret`); the deployment
   * grants read access to exactly those secrets.
   */
  readonly configPath: string;

  /**
   * How the Lambdas get the mailbox file: copied into each bundle, or shipped as an S3 asset
   * (in the CDK bootstrap bucket) that they read at cold start.
   * @default 'bundle'
   */
  readonly configDelivery?: ConfigDelivery;

  /**
   * Where the scheduler and the drainers find the mailboxes. `'file'`: the mailbox file of
   * `configPath`, changed by a redeploy. `'registry'`: entries under their own partition of the
   * ledger table, added, changed, paused and removed without a redeploy (`popdrain fleet`, or a
   * DynamoDB write validated by lib/drain/registry-mailbox.ts); the scheduler seeds the registry
   * from `configPath` once per file content, and secrets are granted by `secretNamePrefix`.
   * @default 'file'
   */
  readonly mailboxSource?: 'file' | 'registry';

  /**
   * With `mailboxSource: 'registry'`: the drainers may read every secret whose name starts
   * with this prefix, and write (rotated refresh tokens) those of them tagged
   * `popdrain:rotating=true`. Every mailbox of `configPath` must name a secret under it.
   * @default 'popdrain/'
   */
  readonly secretNamePrefix?: string;

  // ---------------------------------------------------------------------------------------
  // Storage

  /**
   * An existing bucket for the raw messages. The construct then creates no bucket, and
   * `removalPolicy`, `messageLifecycle`, `kms` and the access-log props do not apply to it.
   * @default - a new bucket: public access blocked, SSL enforced, versioned, encrypted, retained
   */
  readonly bucket?: IBucket;

  /**
   * Encrypt stored messages with this KMS key (SSE-KMS with an S3 Bucket Key). With an
   * existing `bucket`, it is the key the drainer asks S3 to use (`POPDRAIN_KMS_KEY_ID`).
   * @default - the new bucket's key when `kms` is true, else S3-managed encryption (SSE-S3)
   */
  readonly encryptionKey?: IKey;

  /**
   * Create a KMS key (rotation enabled, retained) for the new bucket instead of S3-managed
   * encryption. Ignored when `encryptionKey` is given.
   * @default false
   */
  readonly kms?: boolean;

  /**
   * One customer-managed KMS key for everything popdrain keeps at rest: the ledger table, the
   * queues and their dead-letter queues (also the schedule's), the functions' log groups, the
   * event archive and the new bucket (unless `encryptionKey` names the bucket's). `true` creates
   * one (rotation on, retained with the data, a key policy for CloudWatch Logs of this account
   * and region and for dead letters of this account's EventBridge rules); a given key's policy must allow the same.
   * The functions' roles may use it. KMS requests are then billed (docs/deploy.md §9).
   * @default - the services' own keys (DynamoDB-owned, SQS-managed, CloudWatch Logs', EventBridge's, SSE-S3 or `kms`)
   */
  readonly customerManagedKey?: IKey | true;

  /**
   * The key prefix of stored messages (`<prefix><mailbox id>/<digest>.eml`). The drainer may
   * write and read only under it.
   * @default 'messages/'
   */
  readonly messagePrefix?: string;

  /**
   * Lifecycle of stored messages (new bucket only). Incomplete multipart uploads are always
   * aborted after 7 days.
   * @default - messages are kept forever in S3 Standard
   */
  readonly messageLifecycle?: MessageLifecycle;

  /**
   * Write S3 server access logs of the new bucket to this bucket.
   * @default - no server access logs (CloudTrail data events are the alternative)
   */
  readonly serverAccessLogsBucket?: IBucket;

  /**
   * The key prefix of the server access logs in `serverAccessLogsBucket`.
   * @default 'popdrain-access-logs/'
   */
  readonly serverAccessLogsPrefix?: string;

  /**
   * What `cdk destroy` (or removing the construct) does to the bucket, the table, the KMS key
   * the construct creates and the log groups. Stored mail and the ledger are the product's
   * data, so they are kept.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;

  /**
   * An existing ledger table: partition key `pk` (string), sort key `sk` (string), TTL on
   * `expiresAt`.
   * @default - a new table: on-demand, point-in-time recovery, TTL `expiresAt`, retained
   */
  readonly table?: ITable;

  /**
   * Ledger entries of messages deleted from the server expire (DynamoDB TTL) this many days
   * after the deletion (`POPDRAIN_RETENTION_DAYS`).
   * @default 30
   */
  readonly ledgerRetentionDays?: number;

  // ---------------------------------------------------------------------------------------
  // Events

  /**
   * An existing event bus to publish to.
   * @default - a new custom bus with a retained archive of `Email Stored` and `Email Skipped`
   */
  readonly eventBus?: IEventBus;

  /**
   * How long the archive of the new bus keeps events (the replay window). A year lets a new
   * or broken consumer catch up on a year of mail without touching the mailboxes; events are
   * small, so it costs little (see docs/deploy.md).
   * @default Duration.days(365)
   */
  readonly archiveRetention?: Duration;

  // ---------------------------------------------------------------------------------------
  // Scheduling and the queue

  /**
   * How often the scheduler runs, in minutes (1-60). A mailbox with `everyMinutes: N` is due
   * on one tick out of N / tickMinutes.
   * @default - the greatest common divisor of the mailboxes' `everyMinutes`, at most 60
   */
  readonly tickMinutes?: number;

  /**
   * Receives of one drain request before it moves to the dead-letter queue.
   * @default 5
   */
  readonly maxReceiveCount?: number;

  // ---------------------------------------------------------------------------------------
  // Functions

  /**
   * The Lambda runtime of both functions (a Node.js runtime).
   * @default Runtime.NODEJS_24_X
   */
  readonly runtime?: Runtime;

  /**
   * Active X-Ray tracing of both functions (Lambda's own segments: invocation, init, the
   * handler; the SDK calls are not instrumented, which would cost cold-start time).
   * @default true
   */
  readonly tracing?: boolean;

  /**
   * Retention of both functions' log groups.
   * @default RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: RetentionDays;

  /**
   * `POWERTOOLS_LOG_LEVEL` of both functions.
   * @default 'INFO'
   */
  readonly logLevel?: PopDrainLogLevel;

  /** @default 512 */
  readonly schedulerMemorySize?: number;

  /** @default Duration.minutes(2) */
  readonly schedulerTimeout?: Duration;

  /** @default 1024 */
  readonly drainerMemorySize?: number;

  /**
   * The drainer's timeout. The queue's visibility timeout is six times this.
   * @default Duration.minutes(15)
   */
  readonly drainerTimeout?: Duration;

  /**
   * The drainer stops taking new messages this long before its timeout, so a run ends with a
   * QUIT and a continuation instead of being killed (`POPDRAIN_DEADLINE_MARGIN_MS`).
   * @default Duration.seconds(60)
   */
  readonly drainerDeadlineMargin?: Duration;

  /**
   * Reserved concurrency of each drainer function. When set it must be at least
   * `drainerMaxConcurrency`.
   * @default - no reserved concurrency (the account's unreserved pool)
   */
  readonly reservedConcurrentExecutions?: number;

  /**
   * The most drainer invocations the SQS event source runs at once (2-1000), per drainer. Each
   * invocation drains up to `drainerBatchSize` mailboxes at once, so up to this times the batch
   * size mailboxes drain in parallel (and as many POP3 sessions are open). With `drainerSizing`
   * it must be at least what the sizing needs (synth stops otherwise).
   * @default - what `drainerSizing` needs, else 10
   */
  readonly drainerMaxConcurrency?: number;

  /**
   * Drain requests per drainer invocation (the SQS event source's `batchSize`, 1-10 as a FIFO
   * queue allows). The batch's mailboxes drain at once (the records of one mailbox in order, and
   * none after one of them failed), as many as the drainer's memory holds at worst (8 in
   * 1,024 MB, lambdas/drain-slots.ts): a run is mostly waiting on the network, and Lambda bills
   * an invocation's wall time, so a batch costs about what one run costs (docs/deploy.md §9).
   * 1 gives each mailbox an invocation of its own.
   * @default 10
   */
  readonly drainerBatchSize?: number;

  /**
   * The fleet a drainer serves, from which its concurrency is computed (drainer-concurrency.ts):
   * `ceil(expectedMailboxes x typicalRunSeconds / (intervalMinutes x 60) x headroom)`, at least
   * 2; synth stops when that exceeds 1,000 (one event source's maximum) or an explicit
   * `drainerMaxConcurrency` below it. Example: 1,000 mailboxes, 10 s runs, every 5 minutes,
   * headroom 2: 67. The formula counts one mailbox per invocation, as a batch of 1 on a quiet
   * queue is: with fuller batches (`drainerBatchSize`) the invocations it allows drain more
   * mailboxes at once, so the figure errs on the side of keeping up.
   * @default - no sizing: `drainerMaxConcurrency`, or 10
   */
  readonly drainerSizing?: DrainerSizing;

  /**
   * The `<name>QueueOldestRequestAge` alarms fire when a drain request has waited longer than
   * this (the drainers do not keep up).
   * @default - two ticks, at least 30 minutes
   */
  readonly queueAgeAlarmThreshold?: Duration;

  /**
   * Continuations one scheduled request may lead to before the drainer ends the chain and
   * records `chainCappedAt` in the mailbox state (a guard against a chain that makes no
   * progress); the next scheduled tick starts a new chain (`POPDRAIN_MAX_CONTINUATIONS`).
   * @default 200
   */
  readonly maxContinuations?: number;

  /**
   * The drainer's /tmp. Messages over 1 MiB are spooled there while they upload, so it must
   * hold the largest message a mailbox may deliver (`limits.maxMessageSize`).
   * @default - 2 GiB, or more when a mailbox's maxMessageSize needs it (512 MiB headroom)
   */
  readonly ephemeralStorageSize?: Size;

  // ---------------------------------------------------------------------------------------
  // VPC placement

  /**
   * The VPC of the second drainer, for mailboxes with `placement: "vpc"` (POP3 servers only
   * reachable from a VPC). It needs egress to the POP3 servers, to the AWS APIs (NAT or VPC
   * endpoints for S3, DynamoDB, SQS, EventBridge, Secrets Manager, CloudWatch Logs) and to
   * the OAuth2 token endpoints. Without it, a mailbox with `placement: "vpc"` fails synth.
   * @default - no VPC drainer
   */
  readonly vpc?: IVpc;

  /** @default - the VPC's private subnets with egress */
  readonly vpcSubnets?: SubnetSelection;

  /** @default - a new security group that allows all outbound traffic and no inbound */
  readonly securityGroups?: ISecurityGroup[];

  // ---------------------------------------------------------------------------------------
  // Operations

  /**
   * Where the alarms send their ALARM and OK notifications.
   * @default - alarms without actions (visible in the console and the dashboard)
   */
  readonly alarmTopic?: ITopic;

  /**
   * Also publish `MessagesStored`, `BytesStored`, `RunDurationMs` and `BacklogAgeSeconds` with
   * a `mailbox` dimension (`POPDRAIN_PER_MAILBOX_METRICS`). Each (metric, mailbox) pair is a
   * CloudWatch custom metric: 4 per mailbox, $0.30 each a month at list price (us-east-1,
   * first 10,000), so $1,200 a month per 1,000 mailboxes (infra/cost-model.ts). Without it the
   * Contributor Insights rules and the saved Logs Insights query give the per-mailbox view.
   * @default false
   */
  readonly perMailboxMetrics?: boolean;

  /**
   * Tags applied to every resource the construct creates (cost allocation, ownership).
   * @default - none
   */
  readonly tags?: Readonly<Record<string, string>>;

  /**
   * The CloudWatch dashboard's name.
   * @default - a name CloudFormation generates
   */
  readonly dashboardName?: string;
}
