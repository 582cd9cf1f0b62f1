/**
 * PopDrain: the whole AWS deployment of popdrain as one construct.
 *
 *   EventBridge rule (every tickMinutes) -> scheduler Lambda -> SQS FIFO queue (one message per
 *   due mailbox; group = mailbox id) -> drainer Lambda (batches of up to drainerBatchSize
 *   mailboxes, drained at once) -> S3 (raw messages),
 *   DynamoDB (UIDL ledger and leases), EventBridge (events; Email Stored/Skipped archived).
 *
 * The mailbox file is read and validated at synth time with lib/drain/config.ts; a mailbox
 * the deployment cannot serve (a login not in Secrets Manager, a VPC placement without a VPC)
 * aborts synth with a message naming the mailbox and the field. Nothing here grows with the
 * number of mailboxes except the list of secret ARNs the drainer may read: alarms watch the
 * aggregate metrics, and Contributor Insights rules over the run log lines rank mailboxes
 * (per-mailbox metric series are an opt-in prop).
 *
 * Each concern lives in its own file, in the order this constructor composes them:
 * message-storage, ledger-table, drain-events, mailbox-config, drain-queues, lambda-defaults,
 * scheduler-function, drainer-function, drain-alarms, drain-dashboard. They build in this
 * construct's scope rather than in constructs of their own, so every resource keeps the
 * construct path, and therefore the logical ID, it had when this file held them all: a
 * deployed stack is updated in place, never replaced.
 */
import { Annotations, Duration, Tags } from 'aws-cdk-lib';
import type * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as iam from 'aws-cdk-lib/aws-iam';
import * as events from 'aws-cdk-lib/aws-events';
import { emailStoredRule } from './email-routing.js';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type { Asset } from 'aws-cdk-lib/aws-s3-assets';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { ConfigError, loadMailboxFile, type ConfiguredMailbox } from '../../lib/drain/config.js';
import { checkForDeployment } from './deployment-checks.js';
import { DrainAlarms } from './drain-alarms.js';
import { DrainDashboard } from './drain-dashboard.js';
import { DrainEvents } from './drain-events.js';
import { DEFAULT_MAX_RECEIVE_COUNT, DRAIN_QUEUE_RETENTION, DrainQueues, VISIBILITY_TIMEOUT_FACTOR } from './drain-queues.js';
import { DataKey } from './data-key.js';
import { DrainSchedule } from './drain-schedule.js';
import { decideDrainerConcurrency } from './drainer-concurrency.js';
import { DrainerFunction } from './drainer-function.js';
import { defaultQueueAgeThreshold, FleetAlarms } from './fleet-alarms.js';
import { LambdaDefaults } from './lambda-defaults.js';
import { DrainInsightRules, type DrainInsightRule } from './insight-rules.js';
import { LedgerTable } from './ledger-table.js';
import { MailboxLogQuery } from './mailbox-log-query.js';
import { MailboxConfigDelivery } from './mailbox-config.js';
import { MessageStorage } from './message-storage.js';
import type { PopDrainProps } from './pop-drain-props.js';
import { SchedulerFunction } from './scheduler-function.js';
import { decideTickMinutes } from './tick-minutes.js';
import { withoutUndefined } from '../../lib/drain/without-undefined.js';

export { METRIC_NAMESPACE, SERVICE_NAME } from './metrics.js';
export { EVENT_SOURCE, DEFAULT_ARCHIVE_RETENTION_DAYS } from './drain-events.js';
export { BUNDLED_CONFIG_NAME } from './mailbox-config.js';
export { DEFAULT_MESSAGE_PREFIX } from './message-storage.js';
export { DEFAULT_MAX_RECEIVE_COUNT } from './drain-queues.js';
export { DEFAULT_DRAINER_BATCH_SIZE, DEFAULT_DRAINER_MAX_CONCURRENCY, DEFAULT_LEDGER_RETENTION_DAYS, DEFAULT_MAX_CONTINUATIONS } from './drainer-function.js';
export { neededConcurrency, type DrainerSizing } from './drainer-concurrency.js';
export { MAX_TICK_MINUTES, defaultTickMinutes } from './tick-minutes.js';

/** The secret name prefix the drainers may read with mailboxes in the registry. */
export const DEFAULT_SECRET_NAME_PREFIX = 'popdrain/';

export class PopDrain extends Construct {
  /** The validated mailboxes of `configPath`. */
  public readonly mailboxes: readonly ConfiguredMailbox[];
  /** Where the functions find the mailboxes: the file, or the registry in the ledger table. */
  public readonly mailboxSource: 'file' | 'registry';
  /** How often the scheduler runs. */
  public readonly tickMinutes: number;
  /** The `maximumConcurrency` of each drainer's SQS event source (drainerSizing, or explicit). */
  public readonly drainerMaxConcurrency: number;
  /** Where raw messages are stored, under `messagePrefix`. */
  public readonly bucket: s3.IBucket;
  /** The key stored messages are encrypted with, when SSE-KMS is used. */
  public readonly encryptionKey?: kms.IKey;
  /** The customer-managed key of `customerManagedKey` (table, queues, log groups, archive, bucket). */
  public readonly customerManagedKey?: kms.IKey;
  public readonly messagePrefix: string;
  /** The UIDL ledger and the mailbox leases. */
  public readonly table: dynamodb.ITable;
  public readonly eventBus: events.IEventBus;
  /** The archive of the bus the construct created (absent with an existing `eventBus`). */
  public readonly archive?: events.Archive;
  /** Drain requests for mailboxes with the default placement. */
  public readonly queue: sqs.Queue;
  public readonly deadLetterQueue: sqs.Queue;
  /** Drain requests for mailboxes with `placement: "vpc"` (only when there are any). */
  public readonly vpcQueue?: sqs.Queue;
  public readonly vpcDeadLetterQueue?: sqs.Queue;
  public readonly schedulerFunction: NodejsFunction;
  public readonly drainerFunction: NodejsFunction;
  public readonly vpcDrainerFunction?: NodejsFunction;
  public readonly scheduleRule: events.Rule;
  /** Ticks EventBridge could not deliver to the scheduler. */
  public readonly scheduleDeadLetterQueue: sqs.Queue;
  /** The mailbox file as an S3 asset (`configDelivery: 's3'` only). */
  public readonly configAsset?: Asset;
  /** Every alarm; a fixed set, whatever the number of mailboxes. */
  public readonly alarms: readonly cloudwatch.Alarm[];
  public readonly dashboard: cloudwatch.Dashboard;
  /** Contributor Insights rules: top mailboxes by backlog age, failures, bytes; stale mailboxes. */
  public readonly insightRules: readonly DrainInsightRule[];
  /** The saved Logs Insights query for one mailbox's runs. */
  public readonly mailboxLogQuery: logs.QueryDefinition;

  constructor(scope: Construct, id: string, props: PopDrainProps) {
    super(scope, id);

    // ---- the mailbox file, checked against this deployment -----------------------------------
    const mailboxes = loadMailboxFile(props.configPath);
    this.mailboxes = mailboxes;
    this.mailboxSource = props.mailboxSource ?? 'file';
    const secretNamePrefix = this.mailboxSource === 'registry' ? (props.secretNamePrefix ?? DEFAULT_SECRET_NAME_PREFIX) : undefined;
    const checked = checkForDeployment(mailboxes, {
      hasVpc: props.vpc !== undefined,
      ephemeralStorageMib: props.ephemeralStorageSize?.toMebibytes(),
      ...withoutUndefined({ secretNamePrefix }),
    });
    if (checked.problems.length > 0) {
      throw new ConfigError(`${props.configPath}: invalid mailbox configuration for the deployment:\n  ${checked.problems.join('\n  ')}`, [...checked.problems]);
    }
    this.tickMinutes = this.resolveTickMinutes(props.tickMinutes, mailboxes);
    const concurrency = decideDrainerConcurrency({ explicit: props.drainerMaxConcurrency, sizing: props.drainerSizing, tickMinutes: this.tickMinutes });
    if (concurrency.error !== undefined) throw new Error(concurrency.error);
    this.drainerMaxConcurrency = concurrency.maxConcurrency;

    // ---- storage, state and events -----------------------------------------------------------
    const dataKey = new DataKey(this, props);
    dataKey.allowEventBridgeRules();
    this.customerManagedKey = dataKey.key;
    const storage = new MessageStorage(this, { ...props, ...withoutUndefined({ encryptionKey: props.encryptionKey ?? (props.bucket === undefined ? dataKey.key : undefined) }) });
    this.bucket = storage.bucket;
    this.encryptionKey = storage.encryptionKey;
    this.messagePrefix = storage.messagePrefix;
    this.table = new LedgerTable(this, { ...props, encryptionKey: dataKey.key }).table;
    const drainEvents = new DrainEvents(this, { ...props, encryptionKey: dataKey.key });
    this.eventBus = drainEvents.eventBus;
    this.archive = drainEvents.archive;
    const config = new MailboxConfigDelivery(this, { ...props, mailboxes });
    this.configAsset = config.asset;

    // ---- queues: one pair per placement ------------------------------------------------------
    const drainerTimeout = props.drainerTimeout ?? Duration.minutes(15);
    const queueProps = { drainerTimeout, maxReceiveCount: props.maxReceiveCount, encryptionKey: dataKey.key };
    const queues = new DrainQueues(this, { name: 'Drain', ...queueProps });
    // A request marker holds its mailbox as long as its request can wait in the queue plus one
    // visibility timeout (a run of it): no tick duplicates a waiting request; a lost one frees it then.
    const requestMarkerTtl = Duration.seconds(DRAIN_QUEUE_RETENTION.toSeconds() + drainerTimeout.toSeconds() * VISIBILITY_TIMEOUT_FACTOR);
    const maxReceiveCount = props.maxReceiveCount ?? DEFAULT_MAX_RECEIVE_COUNT;
    this.queue = queues.queue;
    this.deadLetterQueue = queues.deadLetterQueue;
    const vpcMailboxes = mailboxes.filter((m) => m.placement === 'vpc');
    // With the registry, a VPC mailbox may be added later: the VPC drainer exists whenever a VPC is given.
    const wantsVpcDrainer = vpcMailboxes.length > 0 || (this.mailboxSource === 'registry' && props.vpc !== undefined);
    const vpcQueues = wantsVpcDrainer ? new DrainQueues(this, { name: 'VpcDrain', ...queueProps }) : undefined;
    if (vpcQueues !== undefined) {
      this.vpcQueue = vpcQueues.queue;
      this.vpcDeadLetterQueue = vpcQueues.deadLetterQueue;
    }

    // ---- functions ---------------------------------------------------------------------------
    const defaults = new LambdaDefaults(this, { ...props, config, table: this.table, dataKey: dataKey.key });
    this.schedulerFunction = new SchedulerFunction({
      defaults,
      table: this.table,
      queue: this.queue,
      vpcQueue: this.vpcQueue,
      tickMinutes: this.tickMinutes,
      requestMarkerTtl,
      registry: this.mailboxSource === 'registry',
      memorySize: props.schedulerMemorySize,
      timeout: props.schedulerTimeout,
    }).function;
    const drainer = {
      defaults,
      storage,
      table: this.table,
      eventBus: this.eventBus,
      timeout: drainerTimeout,
      ephemeralMib: checked.ephemeralMib,
      memorySize: props.drainerMemorySize,
      reservedConcurrentExecutions: props.reservedConcurrentExecutions,
      maxConcurrency: this.drainerMaxConcurrency,
      batchSize: props.drainerBatchSize,
      deadlineMargin: props.drainerDeadlineMargin,
      ledgerRetentionDays: props.ledgerRetentionDays,
      maxContinuations: props.maxContinuations,
      requestMarkerTtl,
      maxReceiveCount,
      perMailboxMetrics: props.perMailboxMetrics,
      ...withoutUndefined({ secretNamePrefix }),
    };
    this.drainerFunction = new DrainerFunction({
      ...drainer,
      id: 'Drainer',
      queue: this.queue,
      mailboxes: mailboxes.filter((m) => m.placement === 'default'),
    }).function;
    if (vpcQueues !== undefined && props.vpc !== undefined) {
      this.vpcDrainerFunction = new DrainerFunction({
        ...drainer,
        id: 'VpcDrainer',
        queue: vpcQueues.queue,
        mailboxes: vpcMailboxes,
        vpc: props.vpc,
        vpcSubnets: props.vpcSubnets,
        securityGroups: props.securityGroups,
      }).function;
    }

    const schedule = new DrainSchedule(this, { scheduler: this.schedulerFunction, tickMinutes: this.tickMinutes, encryptionKey: dataKey.key });
    this.scheduleRule = schedule.rule;
    this.scheduleDeadLetterQueue = schedule.deadLetterQueue;

    // ---- operations --------------------------------------------------------------------------
    const drainers = [this.drainerFunction, ...(this.vpcDrainerFunction === undefined ? [] : [this.vpcDrainerFunction])];
    const logGroupOf = (fn: NodejsFunction): logs.ILogGroup => fn.logGroup;
    this.insightRules = new DrainInsightRules(this, {
      drainerLogGroupNames: drainers.map((fn) => logGroupOf(fn).logGroupName),
      schedulerLogGroupName: logGroupOf(this.schedulerFunction).logGroupName,
    }).rules;
    const mailboxQuery = new MailboxLogQuery(this, { logGroups: [...drainers, this.schedulerFunction].map(logGroupOf) });
    this.mailboxLogQuery = mailboxQuery.queryDefinition;
    this.alarms = new DrainAlarms(this, {
      deadLetterQueue: this.deadLetterQueue,
      vpcDeadLetterQueue: this.vpcDeadLetterQueue,
      drainer: this.drainerFunction,
      vpcDrainer: this.vpcDrainerFunction,
      scheduler: this.schedulerFunction,
      scheduleDeadLetterQueue: this.scheduleDeadLetterQueue,
      tickMinutes: this.tickMinutes,
      alarmTopic: props.alarmTopic,
    }).alarms.concat(
      new FleetAlarms(this, {
        queues: [['Drain', this.queue] as const, ...(this.vpcQueue === undefined ? [] : [['VpcDrain', this.vpcQueue] as const])],
        queueAgeThreshold: props.queueAgeAlarmThreshold ?? defaultQueueAgeThreshold(this.tickMinutes),
        alarmTopic: props.alarmTopic,
      }).alarms,
    );
    this.dashboard = new DrainDashboard(this, {
      scheduler: this.schedulerFunction,
      drainers,
      queues: [this.queue, ...(this.vpcQueue === undefined ? [] : [this.vpcQueue])],
      deadLetterQueues: [this.deadLetterQueue, ...(this.vpcDeadLetterQueue === undefined ? [] : [this.vpcDeadLetterQueue])],
      dashboardName: props.dashboardName,
      insightRules: this.insightRules,
      mailboxQueryName: mailboxQuery.queryDefinitionName,
      perMailboxMetrics: props.perMailboxMetrics,
    }).dashboard;

    for (const [key, value] of Object.entries(props.tags ?? {})) Tags.of(this).add(key, value);
  }

  /**
   * Let `grantee` read the stored messages (GetObject under the message prefix, and decrypt
   * with the bucket's key when SSE-KMS is used): for the consumers of `Email Stored`.
   */
  public grantReadMessages(grantee: iam.IGrantable): iam.Grant {
    return this.bucket.grantRead(grantee, `${this.messagePrefix}*`);
  }

  /**
   * Route every `Email Stored` event (optionally only some mailboxes') to `target`: a rule on
   * the bus, in this construct. Call it once per id.
   */
  public onEmailStored(id: string, target: events.IRuleTarget, options: { mailboxIds?: readonly string[] } = {}): events.Rule {
    return emailStoredRule(this, id, { eventBus: this.eventBus, target, ...options });
  }

  /** The tick (requested or the default); a warning names the mailboxes it does not divide. */
  private resolveTickMinutes(requested: number | undefined, mailboxes: readonly ConfiguredMailbox[]): number {
    const verdict = decideTickMinutes(requested, mailboxes);
    if (verdict.error !== undefined) throw new Error(verdict.error);
    const { uneven, tickMinutes: tick } = verdict;
    if (uneven.length > 0) {
      Annotations.of(this).addWarningV2(
        'popdrain:tickMinutes',
        `tickMinutes ${tick} does not divide the schedule of ${uneven.slice(0, 5).join(', ')}${uneven.length > 5 ? ` and ${uneven.length - 5} more` : ''}: they run every round(everyMinutes / tickMinutes) ticks`,
      );
    }
    return tick;
  }
}
