/**
 * What the scheduler and the drainers share: the runtime and the esbuild bundling, a log
 * group and a role per function, the role's base statements and the common environment.
 *
 * Builds in the given scope (the PopDrain), not in a construct of its own, so every function,
 * role and log group keeps its logical ID (`<PopDrain>/<id>`, `<id>Role`, `<id>Logs`).
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RemovalPolicy, Validations } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { LAMBDA_BUNDLE, lambdaBundleAliases, splitBundleArgs } from './lambda-bundle.js';
import { BUNDLED_CONFIG_NAME, type MailboxConfigDelivery } from './mailbox-config.js';
import { METRIC_NAMESPACE, SERVICE_NAME } from './metrics.js';
import type { PopDrainLogLevel } from './pop-drain-props.js';

/** The repository root: the Lambda entries, the lock file and the esbuild project root. */
const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SCHEDULER_ENTRY = join(PROJECT_ROOT, 'lambdas', 'scheduler.ts');
export const DRAINER_ENTRY = join(PROJECT_ROOT, 'lambdas', 'drainer.ts');
const LOCK_FILE = join(PROJECT_ROOT, 'package-lock.json');

function shellQuote(path: string): string {
  return process.platform === 'win32' ? `"${path}"` : `'${path.replace(/'/g, `'\\''`)}'`;
}

/** The split build of `entry` over NodejsFunction's one-file build (lambda-bundle.ts). */
function splitBundleCommand(entry: string, outputDir: string, runtime: lambda.Runtime): string {
  const target = `node${/(\d+)/.exec(runtime.name)?.[1] ?? '20'}`;
  const esbuild = join(PROJECT_ROOT, 'node_modules', 'esbuild', 'bin', 'esbuild');
  return [process.execPath, esbuild, ...splitBundleArgs(entry, outputDir, PROJECT_ROOT, target)].map(shellQuote).join(' ');
}

function copyCommand(from: string, to: string): string {
  return `${process.platform === 'win32' ? 'copy /Y' : 'cp'} ${shellQuote(from)} ${shellQuote(to)}`;
}

export type FunctionOptions = Pick<
  lambda.FunctionOptions,
  'description' | 'memorySize' | 'timeout' | 'environment' | 'ephemeralStorageSize' | 'reservedConcurrentExecutions' | 'vpc' | 'vpcSubnets' | 'securityGroups'
>;

export interface LambdaDefaultsProps {
  /** How the functions get the mailbox file. */
  readonly config: MailboxConfigDelivery;
  /** The ledger table (its name is in every function's environment). */
  readonly table: dynamodb.ITable;
  /** The customer-managed key of the queues, log groups and bucket (`customerManagedKey`). */
  readonly dataKey?: kms.IKey;
  /** A Node.js runtime. @default Runtime.NODEJS_24_X */
  readonly runtime?: lambda.Runtime;
  /** @default RetentionDays.THREE_MONTHS */
  readonly logRetention?: logs.RetentionDays;
  /** @default 'INFO' */
  readonly logLevel?: PopDrainLogLevel;
  /** Of the log groups. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
  /** Active X-Ray tracing of every function. @default true */
  readonly tracing?: boolean;
  /** Where the functions find the mailboxes (`POPDRAIN_MAILBOX_SOURCE`). @default 'file' */
  readonly mailboxSource?: 'file' | 'registry';
}

export class LambdaDefaults {
  constructor(
    private readonly scope: Construct,
    private readonly props: LambdaDefaultsProps,
  ) {}

  /** The environment every function gets: the mailbox file, the ledger, Powertools. */
  environment(): Record<string, string> {
    const logLevel: PopDrainLogLevel = this.props.logLevel ?? 'INFO';
    return {
      ...this.props.config.environment(),
      ...(this.props.mailboxSource === 'registry' ? { POPDRAIN_MAILBOX_SOURCE: 'registry' } : {}),
      POPDRAIN_LEDGER_TABLE: this.props.table.tableName,
      POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
      POWERTOOLS_METRICS_NAMESPACE: METRIC_NAMESPACE,
      POWERTOOLS_LOG_LEVEL: logLevel,
    };
  }

  logGroup(id: string): logs.LogGroup {
    return new logs.LogGroup(this.scope, `${id}Logs`, {
      retention: this.props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
      ...(this.props.dataKey === undefined ? {} : { encryptionKey: this.props.dataKey }),
      removalPolicy: this.props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
  }

  /** A role that may write its function's own log group and read the mailbox file, nothing else yet. */
  role(id: string, logGroup: logs.LogGroup, description: string): iam.Role {
    const role = new iam.Role(this.scope, `${id}Role`, {
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
    this.props.config.grantRead(role);
    const tableKey = this.props.table.encryptionKey;
    if (tableKey !== undefined) {
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'UseLedgerKey',
          actions: ['kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKey'],
          resources: [tableKey.keyArn],
        }),
      );
    }
    const dataKey = this.props.dataKey;
    if (dataKey !== undefined && dataKey !== tableKey) {
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'UseDataKey',
          actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey'],
          resources: [dataKey.keyArn],
        }),
      );
    }
    return role;
  }

  /** An ESM bundle of `entry` on arm64, with the mailbox file beside it unless it ships via S3. */
  nodejsFunction(id: string, entry: string, role: iam.Role, logGroup: logs.LogGroup, options: FunctionOptions): NodejsFunction {
    const runtime = this.props.runtime ?? lambda.Runtime.NODEJS_24_X;
    if (runtime.family !== lambda.RuntimeFamily.NODEJS) throw new Error(`PopDrain: runtime must be a Node.js runtime, not ${runtime.name}`);
    const config = this.props.config;
    const staged = config.stagedPath;
    const tracing = this.props.tracing !== false;
    if (tracing) {
      Validations.of(role).acknowledge({
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'Active tracing: Lambda adds xray:PutTraceSegments and xray:PutTelemetryRecords, which support no resource-level permissions (the X-Ray documentation lists the resource as *); nothing else in this role is granted on every resource.',
      });
    }
    return new NodejsFunction(this.scope, id, {
      ...options,
      tracing: tracing ? lambda.Tracing.ACTIVE : lambda.Tracing.DISABLED,
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
        mainFields: [...LAMBDA_BUNDLE.mainFields],
        banner: LAMBDA_BUNDLE.banner,
        minify: LAMBDA_BUNDLE.minify,
        sourceMap: LAMBDA_BUNDLE.sourceMap,
        esbuildArgs: Object.fromEntries(Object.entries(lambdaBundleAliases(PROJECT_ROOT)).map(([from, to]) => [`--alias:${from}`, to])),
        // Bundle the AWS SDK too: the exact versions package-lock.json pins and the tests ran.
        externalModules: [],
        commandHooks: {
          beforeBundling: () => [],
          beforeInstall: () => [],
          afterBundling: (_inputDir: string, outputDir: string) => [
            splitBundleCommand(entry, outputDir, runtime),
            ...(config.asset === undefined ? [copyCommand(staged, join(outputDir, BUNDLED_CONFIG_NAME))] : []),
          ],
        },
      },
    });
  }
}
