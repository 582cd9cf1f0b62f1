/**
 * PopDrain: the whole AWS deployment of popdrain as one construct.
 *
 *   EventBridge rule (every tickMinutes) -> scheduler Lambda -> SQS FIFO queue (one message per
 *   due mailbox; group = mailbox id) -> drainer Lambda (batch size 1) -> S3 (raw messages),
 *   DynamoDB (UIDL ledger and leases), EventBridge (events, archived for replay).
 *
 * The mailbox file is read and validated at synth time with lib/drain/config.ts; a mailbox
 * the deployment cannot serve (a login not in Secrets Manager, a VPC placement without a VPC)
 * aborts synth with a message naming the mailbox and the field. Nothing here grows with the
 * number of mailboxes except the list of secret ARNs the drainer may read: alarms watch the
 * aggregate metrics, and the dashboard finds per-mailbox series with search expressions.
 */
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Annotations, Duration, Fn, RemovalPolicy, Size, Stack, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Asset } from 'aws-cdk-lib/aws-s3-assets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { ConfigError, loadMailboxFile, type ConfiguredMailbox } from '../../lib/drain/config.js';
import { wildcardResourceFinding } from './nag-finding.js';
import type { PopDrainLogLevel, PopDrainProps } from './pop-drain-props.js';

/** The repository root: the Lambda entries, the lock file and the esbuild project root. */
const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SCHEDULER_ENTRY = join(PROJECT_ROOT, 'lambdas', 'scheduler.ts');
const DRAINER_ENTRY = join(PROJECT_ROOT, 'lambdas', 'drainer.ts');
const LOCK_FILE = join(PROJECT_ROOT, 'package-lock.json');

/** The metric namespace and `service` dimension the Lambdas' Powertools Metrics use. */
export const METRIC_NAMESPACE = 'popdrain';
export const SERVICE_NAME = 'popdrain';
/** The `source` of every event popdrain publishes (lib/drain/events.ts). */
export const EVENT_SOURCE = 'popdrain';
/** The mailbox file's name inside each bundle (`POPDRAIN_CONFIG_PATH`). */
export const BUNDLED_CONFIG_NAME = 'mailboxes.json';

export const DEFAULT_MESSAGE_PREFIX = 'messages/';
export const DEFAULT_MAX_RECEIVE_COUNT = 5;
export const DEFAULT_DRAINER_MAX_CONCURRENCY = 10;
export const DEFAULT_LEDGER_RETENTION_DAYS = 30;
export const DEFAULT_ARCHIVE_RETENTION_DAYS = 365;
export const MAX_TICK_MINUTES = 60;
/** The drainer's /tmp when no mailbox needs more: spooled messages over 1 MiB live there. */
const DEFAULT_EPHEMERAL_MIB = 2048;
const EPHEMERAL_HEADROOM_MIB = 512;
const MAX_EPHEMERAL_MIB = 10240;
/** The queue's visibility timeout is this many drainer timeouts (AWS's advice for SQS sources). */
const VISIBILITY_TIMEOUT_FACTOR = 6;
const MIB = 1024 * 1024;
/** The size (as CDK measures it) up to which secret ARNs share one IAM statement (see grantSecrets). */
const SECRET_STATEMENT_CHARS = 5400;
/** IAM attaches at most 20 managed policies to a role (10 without a quota increase). */
const MAX_SECRET_STATEMENTS = 19;

/**
 * ESM bundles still meet CommonJS dependencies that call `require` (Node built-ins): give them
 * one. The name is unusual so no bundled module's own top-level binding collides with it.
 */
const CREATE_REQUIRE_BANNER =
  "import { createRequire as __popdrainCreateRequire } from 'node:module'; const require = __popdrainCreateRequire(import.meta.url);";

/** Secrets Manager secret names: 1-512 of these characters (so never an IAM wildcard). */
const SECRET_NAME = /^[A-Za-z0-9/_+=.@-]{1,512}$/;
const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}$/;

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/** The default tick: every schedule is a whole number of ticks, and ticks are at most an hour. */
export function defaultTickMinutes(mailboxes: readonly ConfiguredMailbox[]): number {
  const g = mailboxes.map((m) => m.everyMinutes).reduce(gcd, 0);
  for (let d = Math.min(g, MAX_TICK_MINUTES); d > 1; d--) if (g % d === 0) return d;
  return 1;
}

function shellQuote(path: string): string {
  return process.platform === 'win32' ? `"${path}"` : `'${path.replace(/'/g, `'\\''`)}'`;
}

function copyCommand(from: string, to: string): string {
  return `${process.platform === 'win32' ? 'copy /Y' : 'cp'} ${shellQuote(from)} ${shellQuote(to)}`;
}

/** Where a mailbox is named in errors, as lib/drain/config.ts names it. */
function where(index: number, mailbox: ConfiguredMailbox): string {
  return `mailbox ${index + 1} "${mailbox.id}"`;
}

export class PopDrain extends Construct {
  /** The validated mailboxes of `configPath`. */
  public readonly mailboxes: readonly ConfiguredMailbox[];
  /** How often the scheduler runs. */
  public readonly tickMinutes: number;
  /** Where raw messages are stored, under `messagePrefix`. */
  public readonly bucket: s3.IBucket;
  /** The key stored messages are encrypted with, when SSE-KMS is used. */
  public readonly encryptionKey?: kms.IKey;
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
  /** The mailbox file as an S3 asset (`configDelivery: 's3'` only). */
  public readonly configAsset?: Asset;
  /** Every alarm; a fixed set, whatever the number of mailboxes. */
  public readonly alarms: readonly cloudwatch.Alarm[];
  public readonly dashboard: cloudwatch.Dashboard;

  private readonly props: PopDrainProps;
  private readonly stagedConfigPath: string;
  private readonly alarmList: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, id: string, props: PopDrainProps) {
    super(scope, id);
    this.props = props;

    const mailboxes = loadMailboxFile(props.configPath);
    this.mailboxes = mailboxes;
    const ephemeralMib = this.validateForDeployment(mailboxes);
    this.stagedConfigPath = this.stageConfig(props.configPath, mailboxes);
    this.tickMinutes = this.resolveTickMinutes(mailboxes);
    const needsVpcDrainer = mailboxes.some((m) => m.placement === 'vpc');

    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    this.messagePrefix = props.messagePrefix ?? DEFAULT_MESSAGE_PREFIX;
    if (this.messagePrefix.startsWith('/') || /[*?]/.test(this.messagePrefix)) {
      throw new Error(`PopDrain: messagePrefix "${this.messagePrefix}" must not start with "/" or hold "*" or "?"`);
    }

    // ---- storage ---------------------------------------------------------------------------
    const { bucket, key } = this.createBucket(removalPolicy);
    this.bucket = bucket;
    this.encryptionKey = key;
    this.table = props.table ?? this.createTable(removalPolicy);
    if (props.eventBus !== undefined) {
      this.eventBus = props.eventBus;
    } else {
      const bus = new events.EventBus(this, 'EventBus', { description: 'popdrain: Email Stored, Email Skipped, Mailbox Drained' });
      this.eventBus = bus;
      this.archive = new events.Archive(this, 'EventArchive', {
        sourceEventBus: bus,
        description: 'Every popdrain event, for replay',
        eventPattern: { source: [EVENT_SOURCE] },
        retention: props.archiveRetention ?? Duration.days(DEFAULT_ARCHIVE_RETENTION_DAYS),
      });
    }

    if (props.configDelivery === 's3') {
      this.configAsset = new Asset(this, 'MailboxConfig', { path: this.stagedConfigPath });
    }

    // ---- queues ----------------------------------------------------------------------------
    const drainerTimeout = props.drainerTimeout ?? Duration.minutes(15);
    const queues = this.createQueues('Drain', drainerTimeout);
    this.queue = queues.queue;
    this.deadLetterQueue = queues.deadLetterQueue;
    if (needsVpcDrainer) {
      const vpcQueues = this.createQueues('VpcDrain', drainerTimeout);
      this.vpcQueue = vpcQueues.queue;
      this.vpcDeadLetterQueue = vpcQueues.deadLetterQueue;
    }

    // ---- functions -------------------------------------------------------------------------
    this.schedulerFunction = this.createScheduler();
    this.drainerFunction = this.createDrainer('Drainer', this.queue, mailboxes.filter((m) => m.placement === 'default'), drainerTimeout, ephemeralMib);
    if (needsVpcDrainer && this.vpcQueue !== undefined) {
      this.vpcDrainerFunction = this.createDrainer(
        'VpcDrainer',
        this.vpcQueue,
        mailboxes.filter((m) => m.placement === 'vpc'),
        drainerTimeout,
        ephemeralMib,
        props.vpc,
      );
    }

    this.scheduleRule = new events.Rule(this, 'Schedule', {
      description: `popdrain: enqueue the due mailboxes every ${this.tickMinutes} minute(s)`,
      schedule: events.Schedule.rate(Duration.minutes(this.tickMinutes)),
      targets: [
        new targets.LambdaFunction(this.schedulerFunction, {
          retryAttempts: 2,
          maxEventAge: Duration.minutes(Math.max(this.tickMinutes, 1) * 2),
        }),
      ],
    });

    // ---- operations ------------------------------------------------------------------------
    this.createAlarms();
    this.alarms = this.alarmList;
    this.dashboard = this.createDashboard();
  }

  // -----------------------------------------------------------------------------------------
  // Configuration

  /**
   * What lib/drain/config.ts cannot know: the deployment reads logins from Secrets Manager
   * only, VPC mailboxes need a VPC drainer, and /tmp must hold the largest message. Returns
   * the drainer's /tmp size in MiB.
   */
  private validateForDeployment(mailboxes: readonly ConfiguredMailbox[]): number {
    const problems: string[] = [];
    const explicitMib = this.props.ephemeralStorageSize?.toMebibytes();
    let ephemeralMib = explicitMib ?? DEFAULT_EPHEMERAL_MIB;
    mailboxes.forEach((m, index) => {
      const secret = m.secret;
      if (secret.type !== 'secrets-manager') {
        const field = secret.type === 'env' ? 'passwordEnv' : secret.type === 'file' ? 'passwordFile' : 'oauth2';
        problems.push(
          `${where(index, m)}: auth.${field}: a deployment reads mailbox logins from AWS Secrets Manager only; use auth.secret (a secret name or ARN)`,
        );
      } else if (secret.secretId.startsWith('arn:')) {
        if (!SECRET_ARN.test(secret.secretId)) {
          problems.push(`${where(index, m)}: auth.secret: "${secret.secretId}" is not a Secrets Manager secret ARN`);
        }
      } else if (!SECRET_NAME.test(secret.secretId)) {
        problems.push(`${where(index, m)}: auth.secret: "${secret.secretId}" is not a Secrets Manager secret name (1-512 of A-Z a-z 0-9 / _ + = . @ -)`);
      }
      if (m.placement === 'vpc' && this.props.vpc === undefined) {
        problems.push(`${where(index, m)}: placement: "vpc" needs the vpc prop of PopDrain (the drainer that runs in the VPC)`);
      }
      if (m.maxMessageBytes !== undefined) {
        const needMib = Math.ceil(m.maxMessageBytes / MIB);
        if (explicitMib !== undefined && needMib > explicitMib) {
          problems.push(
            `${where(index, m)}: limits.maxMessageSize: ${m.maxMessageBytes} bytes does not fit the drainer's ephemeralStorageSize of ${explicitMib} MiB`,
          );
        } else if (explicitMib === undefined) {
          const wanted = needMib + EPHEMERAL_HEADROOM_MIB;
          if (wanted > MAX_EPHEMERAL_MIB) {
            problems.push(`${where(index, m)}: limits.maxMessageSize: ${m.maxMessageBytes} bytes exceeds the 10 GiB a Lambda function's /tmp can hold`);
          } else {
            ephemeralMib = Math.max(ephemeralMib, wanted);
          }
        }
      }
    });
    if (problems.length > 0) {
      throw new ConfigError(`${this.props.configPath}: invalid mailbox configuration for the deployment:\n  ${problems.join('\n  ')}`, problems);
    }
    return ephemeralMib;
  }

  /**
   * The file the Lambdas read. A CA file named in the config (`tlsOptions.caFile`) is a path
   * on this machine, so its PEM is written into a copy of the file; otherwise the file ships
   * unchanged.
   */
  private stageConfig(configPath: string, mailboxes: readonly ConfiguredMailbox[]): string {
    if (mailboxes.every((m) => m.caFile === undefined)) return resolve(configPath);
    const raw = JSON.parse(readFileSync(configPath, 'utf8')) as {
      defaults?: { tlsOptions?: Record<string, unknown> };
      mailboxes: Array<{ tlsOptions?: Record<string, unknown> }>;
    };
    if (raw.defaults?.tlsOptions !== undefined) delete raw.defaults.tlsOptions.caFile;
    raw.mailboxes.forEach((entry, index) => {
      const parsed = mailboxes[index];
      if (parsed?.caFile === undefined) return;
      const { caFile: _caFile, ...rest } = entry.tlsOptions ?? {};
      entry.tlsOptions = { ...rest, caPem: parsed.tlsOptions?.caPem };
    });
    const dir = mkdtempSync(join(tmpdir(), 'popdrain-config-'));
    const staged = join(dir, BUNDLED_CONFIG_NAME);
    writeFileSync(staged, `${JSON.stringify(raw, null, 2)}\n`);
    return staged;
  }

  private resolveTickMinutes(mailboxes: readonly ConfiguredMailbox[]): number {
    const tick = this.props.tickMinutes ?? defaultTickMinutes(mailboxes);
    if (!Number.isInteger(tick) || tick < 1 || tick > MAX_TICK_MINUTES) {
      throw new Error(`PopDrain: tickMinutes must be a whole number of minutes from 1 to ${MAX_TICK_MINUTES}, not ${tick}`);
    }
    const uneven = mailboxes.filter((m) => m.everyMinutes % tick !== 0).map((m) => `"${m.id}" (${m.everyMinutes})`);
    if (uneven.length > 0) {
      Annotations.of(this).addWarningV2(
        'popdrain:tickMinutes',
        `tickMinutes ${tick} does not divide the schedule of ${uneven.slice(0, 5).join(', ')}${uneven.length > 5 ? ` and ${uneven.length - 5} more` : ''}: they run every round(everyMinutes / tickMinutes) ticks`,
      );
    }
    return tick;
  }

  // -----------------------------------------------------------------------------------------
  // Storage

  private createBucket(removalPolicy: RemovalPolicy): { bucket: s3.IBucket; key?: kms.IKey } {
    const props = this.props;
    if (props.bucket !== undefined) {
      const key = props.encryptionKey ?? props.bucket.encryptionKey;
      return key === undefined ? { bucket: props.bucket } : { bucket: props.bucket, key };
    }
    let key = props.encryptionKey;
    if (key === undefined && props.kms === true) {
      key = new kms.Key(this, 'MessagesKey', {
        description: 'popdrain: encrypts stored mail',
        enableKeyRotation: true,
        removalPolicy,
      });
    }
    const lifecycle = props.messageLifecycle;
    const rules: s3.LifecycleRule[] = [
      { id: 'AbortIncompleteUploads', enabled: true, abortIncompleteMultipartUploadAfter: Duration.days(7) },
    ];
    if (lifecycle?.transitionToInfrequentAccessAfterDays !== undefined || lifecycle?.expireAfterDays !== undefined) {
      const ia = lifecycle.transitionToInfrequentAccessAfterDays;
      const expire = lifecycle.expireAfterDays;
      if (ia !== undefined && (!Number.isInteger(ia) || ia < 30)) {
        throw new Error(`PopDrain: messageLifecycle.transitionToInfrequentAccessAfterDays must be a whole number of at least 30 (S3's minimum), not ${ia}`);
      }
      if (expire !== undefined && (!Number.isInteger(expire) || expire < 1 || (ia !== undefined && expire <= ia))) {
        throw new Error(`PopDrain: messageLifecycle.expireAfterDays must be a whole number of days after the transition, not ${expire}`);
      }
      rules.push({
        id: 'StoredMessages',
        enabled: true,
        prefix: this.messagePrefix,
        ...(ia === undefined ? {} : { transitions: [{ storageClass: s3.StorageClass.INFREQUENT_ACCESS, transitionAfter: Duration.days(ia) }] }),
        ...(expire === undefined
          ? {}
          : {
              expiration: Duration.days(expire),
              noncurrentVersionExpiration: Duration.days(lifecycle.noncurrentVersionExpireAfterDays ?? 30),
            }),
      });
    }
    const bucket = new s3.Bucket(this, 'MessagesBucket', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      versioned: true,
      ...(key === undefined
        ? { encryption: s3.BucketEncryption.S3_MANAGED }
        : { encryption: s3.BucketEncryption.KMS, encryptionKey: key, bucketKeyEnabled: true }),
      lifecycleRules: rules,
      removalPolicy,
      ...(props.serverAccessLogsBucket === undefined
        ? {}
        : {
            serverAccessLogsBucket: props.serverAccessLogsBucket,
            serverAccessLogsPrefix: props.serverAccessLogsPrefix ?? 'popdrain-access-logs/',
          }),
    });
    if (props.serverAccessLogsBucket === undefined) {
      Validations.of(bucket).acknowledge({
        id: 'AwsSolutions-S1',
        reason:
          'Server access logging is opt-in (serverAccessLogsBucket prop) because it needs a second bucket, which platforms usually run centrally. Without it: the bucket cannot be made public (public access blocked, bucket-owner-enforced ownership, SSL-only policy), only the drainer role may write, and only under the message prefix, and every object it stores is recorded in the ledger table and announced in an archived Email Stored event with its key, size and sha256. Pass serverAccessLogsBucket or enable CloudTrail S3 data events where reads must be audited too.',
      });
    }
    return key === undefined ? { bucket } : { bucket, key };
  }

  private createTable(removalPolicy: RemovalPolicy): dynamodb.Table {
    return new dynamodb.Table(this, 'Ledger', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      timeToLiveAttribute: 'expiresAt',
      removalPolicy,
    });
  }

  // -----------------------------------------------------------------------------------------
  // Queues

  private createQueues(id: string, drainerTimeout: Duration): { queue: sqs.Queue; deadLetterQueue: sqs.Queue } {
    const maxReceiveCount = this.props.maxReceiveCount ?? DEFAULT_MAX_RECEIVE_COUNT;
    if (!Number.isInteger(maxReceiveCount) || maxReceiveCount < 1 || maxReceiveCount > 1000) {
      throw new Error(`PopDrain: maxReceiveCount must be a whole number from 1 to 1000, not ${maxReceiveCount}`);
    }
    const deadLetterQueue = new sqs.Queue(this, `${id}DeadLetterQueue`, {
      fifo: true,
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    const queue = new sqs.Queue(this, `${id}Queue`, {
      fifo: true,
      // The scheduler sets MessageDeduplicationId = mailbox id + tick; high-throughput FIFO
      // (deduplication and throughput per message group) since every mailbox is its own group.
      contentBasedDeduplication: false,
      deduplicationScope: sqs.DeduplicationScope.MESSAGE_GROUP,
      fifoThroughputLimit: sqs.FifoThroughputLimit.PER_MESSAGE_GROUP_ID,
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      visibilityTimeout: Duration.seconds(drainerTimeout.toSeconds() * VISIBILITY_TIMEOUT_FACTOR),
      retentionPeriod: Duration.days(4),
      deadLetterQueue: { queue: deadLetterQueue, maxReceiveCount },
    });
    return { queue, deadLetterQueue };
  }

  // -----------------------------------------------------------------------------------------
  // Functions

  private commonEnvironment(): Record<string, string> {
    const logLevel: PopDrainLogLevel = this.props.logLevel ?? 'INFO';
    const config: Record<string, string> =
      this.configAsset === undefined
        ? { POPDRAIN_CONFIG_PATH: BUNDLED_CONFIG_NAME }
        : { POPDRAIN_CONFIG_S3_URI: this.configAsset.s3ObjectUrl };
    return {
      ...config,
      POPDRAIN_LEDGER_TABLE: this.table.tableName,
      POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
      POWERTOOLS_METRICS_NAMESPACE: METRIC_NAMESPACE,
      POWERTOOLS_LOG_LEVEL: logLevel,
    };
  }

  /** A role that may write its function's own log group and nothing else yet. */
  private functionRole(id: string, logGroup: logs.LogGroup, description: string): iam.Role {
    const role = new iam.Role(this, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description,
    });
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'WriteOwnLogs',
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [logGroup.logGroupArn],
      }),
    );
    if (this.configAsset !== undefined) {
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'ReadMailboxConfig',
          actions: ['s3:GetObject'],
          resources: [this.configAsset.bucket.arnForObjects(this.configAsset.s3ObjectKey)],
        }),
      );
    }
    if (this.table.encryptionKey !== undefined) {
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'UseLedgerKey',
          actions: ['kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKey'],
          resources: [this.table.encryptionKey.keyArn],
        }),
      );
    }
    return role;
  }

  private logGroup(id: string): logs.LogGroup {
    return new logs.LogGroup(this, `${id}Logs`, {
      retention: this.props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
      removalPolicy: this.props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
  }

  private nodejsFunction(
    id: string,
    entry: string,
    role: iam.Role,
    logGroup: logs.LogGroup,
    options: Pick<lambda.FunctionOptions, 'description' | 'memorySize' | 'timeout' | 'environment' | 'ephemeralStorageSize' | 'reservedConcurrentExecutions' | 'vpc' | 'vpcSubnets' | 'securityGroups'>,
  ): NodejsFunction {
    const runtime = this.props.runtime ?? lambda.Runtime.NODEJS_24_X;
    if (runtime.family !== lambda.RuntimeFamily.NODEJS) throw new Error(`PopDrain: runtime must be a Node.js runtime, not ${runtime.name}`);
    const staged = this.stagedConfigPath;
    return new NodejsFunction(this, id, {
      ...options,
      entry,
      handler: 'handler',
      runtime,
      architecture: lambda.Architecture.ARM_64,
      role,
      logGroup,
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: LOCK_FILE,
      bundling: {
        forceDockerBundling: false,
        format: OutputFormat.ESM,
        mainFields: ['module', 'main'],
        banner: CREATE_REQUIRE_BANNER,
        minify: true,
        sourceMap: true,
        sourcesContent: false,
        // Bundle the AWS SDK too: the exact versions package-lock.json pins and the tests ran.
        externalModules: [],
        ...(this.configAsset === undefined
          ? {
              commandHooks: {
                beforeBundling: () => [],
                beforeInstall: () => [],
                afterBundling: (_inputDir: string, outputDir: string) => [copyCommand(staged, join(outputDir, BUNDLED_CONFIG_NAME))],
              },
            }
          : {}),
      },
    });
  }

  private createScheduler(): NodejsFunction {
    const logGroup = this.logGroup('Scheduler');
    const role = this.functionRole('Scheduler', logGroup, 'popdrain scheduler: enqueues due mailboxes');
    const queues = [this.queue, ...(this.vpcQueue === undefined ? [] : [this.vpcQueue])];
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ sid: 'SendDrainRequests', actions: ['sqs:SendMessage'], resources: queues.map((q) => q.queueArn) }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ sid: 'ReadLeases', actions: ['dynamodb:BatchGetItem', 'dynamodb:GetItem'], resources: [this.table.tableArn] }),
    );
    return this.nodejsFunction('Scheduler', SCHEDULER_ENTRY, role, logGroup, {
      description: 'popdrain scheduler: one SQS message per due mailbox',
      memorySize: this.props.schedulerMemorySize ?? 512,
      timeout: this.props.schedulerTimeout ?? Duration.minutes(2),
      environment: {
        ...this.commonEnvironment(),
        POPDRAIN_QUEUE_URL: this.queue.queueUrl,
        ...(this.vpcQueue === undefined ? {} : { POPDRAIN_VPC_QUEUE_URL: this.vpcQueue.queueUrl }),
        POPDRAIN_TICK_MINUTES: String(this.tickMinutes),
      },
    });
  }

  private secretArn(secretId: string): string {
    if (secretId.startsWith('arn:')) return secretId;
    // A name: the ARN ends with "-" and the six random characters Secrets Manager appends.
    // Fn::Sub keeps the token short, which is what CDK measures when it packs policies.
    return Fn.sub(`arn:\${AWS::Partition}:secretsmanager:\${AWS::Region}:\${AWS::AccountId}:secret:${secretId}-??????`);
  }

  /**
   * One ARN per secret, packed into statements (Sids `<sid>`, `<sid>2`, ...) of at most
   * SECRET_STATEMENT_CHARS characters. IAM caps a role's inline policies at 10,240 characters
   * and a managed policy at 6,144; CDK moves whole statements that do not fit inline into
   * overflow managed policies, so statements that each fit one are what lets a long list of
   * secrets be packed at all. Returns the number of statements.
   */
  private grantSecrets(role: iam.Role, sid: string, action: string, secretIds: readonly string[]): number {
    const chunks: string[][] = [];
    let size = Infinity;
    for (const arn of secretIds.map((s) => this.secretArn(s))) {
      const length = JSON.stringify(Stack.of(this).resolve(arn)).length + 1;
      if (size + length > SECRET_STATEMENT_CHARS) {
        chunks.push([]);
        size = 0;
      }
      chunks[chunks.length - 1]!.push(arn);
      size += length;
    }
    chunks.forEach((resources, index) => {
      role.addToPrincipalPolicy(new iam.PolicyStatement({ sid: index === 0 ? sid : `${sid}${index + 1}`, actions: [action], resources }));
    });
    return chunks.length;
  }

  private createDrainer(
    id: string,
    queue: sqs.Queue,
    mailboxes: readonly ConfiguredMailbox[],
    timeout: Duration,
    ephemeralMib: number,
    vpc?: ec2.IVpc,
  ): NodejsFunction {
    const props = this.props;
    const maxConcurrency = props.drainerMaxConcurrency ?? DEFAULT_DRAINER_MAX_CONCURRENCY;
    if (!Number.isInteger(maxConcurrency) || maxConcurrency < 2 || maxConcurrency > 1000) {
      throw new Error(`PopDrain: drainerMaxConcurrency must be a whole number from 2 to 1000, not ${maxConcurrency}`);
    }
    if (props.reservedConcurrentExecutions !== undefined && props.reservedConcurrentExecutions < maxConcurrency) {
      throw new Error(
        `PopDrain: reservedConcurrentExecutions (${props.reservedConcurrentExecutions}) must be at least drainerMaxConcurrency (${maxConcurrency}), or SQS deliveries are throttled`,
      );
    }
    const margin = props.drainerDeadlineMargin ?? Duration.seconds(60);
    if (margin.toMilliseconds() >= timeout.toMilliseconds()) {
      throw new Error('PopDrain: drainerDeadlineMargin must be shorter than drainerTimeout');
    }
    const retentionDays = props.ledgerRetentionDays ?? DEFAULT_LEDGER_RETENTION_DAYS;
    if (!Number.isInteger(retentionDays) || retentionDays < 1) {
      throw new Error(`PopDrain: ledgerRetentionDays must be a whole number of days, not ${retentionDays}`);
    }

    const logGroup = this.logGroup(id);
    const role = this.functionRole(id, logGroup, `popdrain ${vpc === undefined ? '' : 'VPC '}drainer: drains one mailbox per SQS message`);
    const objects = this.bucket.arnForObjects(`${this.messagePrefix}*`);
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'StoreMessages',
        // GetObject is for HeadObject, which decides whether a conflicting put is a retry.
        actions: ['s3:PutObject', 's3:GetObject', 's3:AbortMultipartUpload'],
        resources: [objects],
      }),
    );
    Validations.of(role).acknowledge({
      id: wildcardResourceFinding(this, objects),
      reason:
        'Object keys are <prefix><mailbox id>/<sha256 of mailbox and UIDL>.eml, computed per message at run time, so no finite list of ARNs exists; the wildcard is confined to the message prefix of this one bucket and to put/head/abort-upload.',
    });
    if (this.encryptionKey !== undefined) {
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'EncryptMessages',
          actions: ['kms:GenerateDataKey', 'kms:Encrypt', 'kms:Decrypt'],
          resources: [this.encryptionKey.keyArn],
        }),
      );
    }
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'UseLedger',
        actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:BatchGetItem', 'dynamodb:Query'],
        resources: [this.table.tableArn],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ sid: 'PublishEvents', actions: ['events:PutEvents'], resources: [this.eventBus.eventBusArn] }),
    );
    const secretIds = [...new Set(mailboxes.flatMap((m) => (m.secret.type === 'secrets-manager' ? [m.secret.secretId] : [])))].sort();
    const rotating = [
      ...new Set(mailboxes.flatMap((m) => (m.secret.type === 'secrets-manager' && m.rotatingRefreshToken ? [m.secret.secretId] : []))),
    ].sort();
    const secretStatements =
      this.grantSecrets(role, 'ReadMailboxSecrets', 'secretsmanager:GetSecretValue', secretIds) +
      this.grantSecrets(role, 'SaveRotatedRefreshTokens', 'secretsmanager:PutSecretValue', rotating);
    if (secretStatements > MAX_SECRET_STATEMENTS) {
      throw new Error(
        `PopDrain: the ${vpc === undefined ? '' : 'VPC '}drainer would need ${secretStatements} IAM statements for ${secretIds.length} secrets (${rotating.length} rotating), more than the 20 managed policies IAM attaches to a role at most: let mailboxes share secrets (one Microsoft 365 client-credentials secret serves every mailbox of a tenant) or split the mailboxes over several PopDrain stacks`,
      );
    }
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ sid: 'EnqueueContinuations', actions: ['sqs:SendMessage'], resources: [queue.queueArn] }),
    );
    if (vpc !== undefined) {
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'ManageVpcNetworkInterfaces',
          actions: [
            'ec2:CreateNetworkInterface',
            'ec2:DescribeNetworkInterfaces',
            'ec2:DescribeSubnets',
            'ec2:DeleteNetworkInterface',
            'ec2:AssignPrivateIpAddresses',
            'ec2:UnassignPrivateIpAddresses',
          ],
          resources: ['*'],
        }),
      );
      Validations.of(role).acknowledge({
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'Lambda needs these EC2 network-interface actions to attach the function to the VPC; the Describe actions support no resource-level permissions and the interfaces do not exist before Lambda creates them. This is the action set of the AWSLambdaVPCAccessExecutionRole managed policy, without its logs:* on every log group.',
      });
    }

    const fn = this.nodejsFunction(id, DRAINER_ENTRY, role, logGroup, {
      description: `popdrain drainer${vpc === undefined ? '' : ' (VPC)'}: drains one mailbox per SQS message`,
      memorySize: props.drainerMemorySize ?? 1024,
      timeout,
      ephemeralStorageSize: Size.mebibytes(ephemeralMib),
      ...(props.reservedConcurrentExecutions === undefined ? {} : { reservedConcurrentExecutions: props.reservedConcurrentExecutions }),
      ...(vpc === undefined
        ? {}
        : {
            vpc,
            ...(props.vpcSubnets === undefined ? {} : { vpcSubnets: props.vpcSubnets }),
            ...(props.securityGroups === undefined ? {} : { securityGroups: props.securityGroups }),
          }),
      environment: {
        ...this.commonEnvironment(),
        POPDRAIN_BUCKET: this.bucket.bucketName,
        POPDRAIN_PREFIX: this.messagePrefix,
        ...(this.encryptionKey === undefined ? {} : { POPDRAIN_KMS_KEY_ID: this.encryptionKey.keyArn }),
        POPDRAIN_EVENT_BUS: this.eventBus.eventBusArn,
        POPDRAIN_QUEUE_URL: queue.queueUrl,
        POPDRAIN_DEADLINE_MARGIN_MS: String(margin.toMilliseconds()),
        POPDRAIN_RETENTION_DAYS: String(retentionDays),
      },
    });
    fn.addEventSource(new SqsEventSource(queue, { batchSize: 1, reportBatchItemFailures: true, maxConcurrency }));
    return fn;
  }

  // -----------------------------------------------------------------------------------------
  // Alarms and dashboard

  private metric(metricName: string, statistic: string, period = Duration.minutes(5)): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: METRIC_NAMESPACE,
      metricName,
      dimensionsMap: { service: SERVICE_NAME },
      statistic,
      period,
    });
  }

  private alarm(id: string, metric: cloudwatch.IMetric, description: string, treatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(this, id, {
      metric,
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData,
      alarmDescription: `${description} See docs/deploy.md, "Alarms".`,
    });
    if (this.props.alarmTopic !== undefined) {
      alarm.addAlarmAction(new SnsAction(this.props.alarmTopic));
      alarm.addOkAction(new SnsAction(this.props.alarmTopic));
    }
    this.alarmList.push(alarm);
    return alarm;
  }

  private createAlarms(): void {
    const five = Duration.minutes(5);
    const dlqs: Array<[string, sqs.Queue]> = [['DeadLetterQueueNotEmpty', this.deadLetterQueue]];
    if (this.vpcDeadLetterQueue !== undefined) dlqs.push(['VpcDeadLetterQueueNotEmpty', this.vpcDeadLetterQueue]);
    for (const [id, dlq] of dlqs) {
      this.alarm(
        id,
        dlq.metricApproximateNumberOfMessagesVisible({ period: five, statistic: 'Maximum' }),
        'Drain requests failed maxReceiveCount times and were moved to the dead-letter queue.',
      );
    }
    this.alarm('DrainerErrors', this.drainerFunction.metricErrors({ period: five, statistic: 'Sum' }), 'The drainer function failed (an invocation error, not a mailbox failure).');
    if (this.vpcDrainerFunction !== undefined) {
      this.alarm('VpcDrainerErrors', this.vpcDrainerFunction.metricErrors({ period: five, statistic: 'Sum' }), 'The VPC drainer function failed.');
    }
    this.alarm('SchedulerErrors', this.schedulerFunction.metricErrors({ period: five, statistic: 'Sum' }), 'The scheduler function failed: mailboxes may not be enqueued.');
    // The scheduler reports StaleMailboxes every tick, so a period of two ticks always holds a
    // datapoint; none at all means the scheduler is not running, which is as bad.
    this.alarm(
      'StaleMailboxes',
      this.metric('StaleMailboxes', 'Maximum', Duration.minutes(Math.max(5, 2 * this.tickMinutes))),
      'Some mailboxes have not been drained successfully for several of their intervals (or the scheduler reported nothing).',
      cloudwatch.TreatMissingData.BREACHING,
    );
    this.alarm('AuthFailures', this.metric('AuthFailures', 'Sum'), 'A POP3 server or token endpoint refused a mailbox login.');
  }

  private createDashboard(): cloudwatch.Dashboard {
    const m = (name: string, statistic: string, label?: string): cloudwatch.Metric =>
      this.metric(name, statistic).with(label === undefined ? {} : { label });
    const search = (dimensions: string, metricName: string, statistic: string, label: string, top?: number): cloudwatch.MathExpression => {
      const expr = `SEARCH('{${METRIC_NAMESPACE},${dimensions}} service="${SERVICE_NAME}" MetricName="${metricName}"', '${statistic}', 300)`;
      return new cloudwatch.MathExpression({
        expression: top === undefined ? expr : `SORT(${expr}, MAX, DESC, ${top})`,
        usingMetrics: {},
        label,
        period: Duration.minutes(5),
      });
    };
    const drainers = [this.drainerFunction, ...(this.vpcDrainerFunction === undefined ? [] : [this.vpcDrainerFunction])];
    const queues = [this.queue, ...(this.vpcQueue === undefined ? [] : [this.vpcQueue])];
    const dlqs = [this.deadLetterQueue, ...(this.vpcDeadLetterQueue === undefined ? [] : [this.vpcDeadLetterQueue])];
    const functions = [this.schedulerFunction, ...drainers];
    const w = 8;
    const h = 6;
    const dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      ...(this.props.dashboardName === undefined ? {} : { dashboardName: this.props.dashboardName }),
      defaultInterval: Duration.days(1),
    });
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({ title: 'Messages stored / skipped', width: w, height: h, left: [m('MessagesStored', 'Sum', 'stored'), m('MessagesSkipped', 'Sum', 'skipped')] }),
      new cloudwatch.GraphWidget({ title: 'Bytes stored', width: w, height: h, left: [m('BytesStored', 'Sum', 'bytes')] }),
      new cloudwatch.GraphWidget({
        title: 'Failures by error code',
        width: w,
        height: h,
        left: [search('service,errorCode', 'Failures', 'Sum', 'failures')],
      }),
    );
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Runs: failures, auth failures, stale and busy mailboxes',
        width: w,
        height: h,
        left: [m('RunFailures', 'Sum', 'run failures'), m('AuthFailures', 'Sum', 'auth failures'), m('StaleMailboxes', 'Maximum', 'stale'), m('BusyMailboxes', 'Sum', 'busy')],
      }),
      new cloudwatch.GraphWidget({
        title: 'Backlog age (s) and run duration (ms)',
        width: w,
        height: h,
        left: [m('BacklogAgeSeconds', 'Maximum', 'backlog age max')],
        right: [m('RunDurationMs', 'p50', 'run p50'), m('RunDurationMs', 'Maximum', 'run max')],
      }),
      new cloudwatch.GraphWidget({
        title: 'Top 10 mailboxes by backlog age (s)',
        width: w,
        height: h,
        left: [search('service,mailbox', 'BacklogAgeSeconds', 'Maximum', 'backlog age', 10)],
      }),
    );
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Drain queue depth and oldest request (s)',
        width: w,
        height: h,
        left: queues.map((q) => q.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum' })),
        right: queues.map((q) => q.metricApproximateAgeOfOldestMessage({ statistic: 'Maximum' })),
      }),
      new cloudwatch.GraphWidget({
        title: 'Dead-letter queue depth',
        width: w,
        height: h,
        left: dlqs.map((q) => q.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum' })),
      }),
      new cloudwatch.GraphWidget({
        title: 'Top 10 mailboxes by messages stored',
        width: w,
        height: h,
        left: [search('service,mailbox', 'MessagesStored', 'Sum', 'stored', 10)],
      }),
    );
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Lambda errors and throttles',
        width: 12,
        height: h,
        left: functions.flatMap((f) => [f.metricErrors({ statistic: 'Sum' }), f.metricThrottles({ statistic: 'Sum' })]),
      }),
      new cloudwatch.GraphWidget({
        title: 'Lambda duration (ms) and concurrency',
        width: 12,
        height: h,
        left: functions.map((f) => f.metricDuration({ statistic: 'Maximum' })),
        right: drainers.map((f) => f.metric('ConcurrentExecutions', { statistic: 'Maximum' })),
      }),
    );
    return dashboard;
  }
}
