/**
 * The example deployment: one stack with the PopDrain construct, an alarm topic, and the
 * AwsSolutions checks of cdk-nag on the whole app. `infra/app.ts` synthesizes it for the CDK
 * CLI; test/infra/nag.test.ts synthesizes the same app.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { App, CfnOutput, Stack, Validations, type AppProps, type StackProps } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { Construct } from 'constructs';
import { PopDrain } from './constructs/pop-drain.js';
import type { PopDrainProps } from './constructs/pop-drain-props.js';
import { withoutUndefined } from '../lib/drain/without-undefined.js';

export interface PopDrainStackProps extends StackProps {
  /** The construct's props (configPath at least). */
  readonly popDrain: PopDrainProps;
  /** Subscribe this address to the alarm topic. @default - no subscription */
  readonly alarmEmail?: string;
}

export class PopDrainStack extends Stack {
  public readonly popDrain: PopDrain;
  public readonly alarmTopic: sns.Topic;

  constructor(scope: Construct, id: string, props: PopDrainStackProps) {
    super(scope, id, props);
    // CloudWatch cannot publish to a topic encrypted with the AWS managed SNS key, so the
    // topic has its own key that lets CloudWatch alarms use it.
    const alarmKey = new kms.Key(this, 'AlarmTopicKey', {
      description: 'popdrain: encrypts the alarm topic',
      enableKeyRotation: true,
    });
    alarmKey.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowCloudWatchAlarms',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
        resources: ['*'],
        conditions: { StringEquals: { 'aws:SourceAccount': this.account } },
      }),
    );
    this.alarmTopic = new sns.Topic(this, 'AlarmTopic', {
      displayName: 'popdrain alarms',
      masterKey: alarmKey,
      enforceSSL: true,
    });
    if (props.alarmEmail !== undefined) {
      this.alarmTopic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    }
    this.popDrain = new PopDrain(this, 'PopDrain', { ...props.popDrain, alarmTopic: props.popDrain.alarmTopic ?? this.alarmTopic });

    // What operators need by name (docs/deploy.md uses these).
    const p = this.popDrain;
    const outputs: Record<string, string | undefined> = {
      BucketName: p.bucket.bucketName,
      LedgerTableName: p.table.tableName,
      EventBusArn: p.eventBus.eventBusArn,
      EventArchiveArn: p.archive?.archiveArn,
      QueueArn: p.queue.queueArn,
      QueueUrl: p.queue.queueUrl,
      DeadLetterQueueArn: p.deadLetterQueue.queueArn,
      DeadLetterQueueUrl: p.deadLetterQueue.queueUrl,
      VpcQueueArn: p.vpcQueue?.queueArn,
      VpcDeadLetterQueueArn: p.vpcDeadLetterQueue?.queueArn,
      DrainerFunctionName: p.drainerFunction.functionName,
      SchedulerFunctionName: p.schedulerFunction.functionName,
      DashboardName: p.dashboard.dashboardName,
      AlarmTopicArn: this.alarmTopic.topicArn,
    };
    for (const [id, value] of Object.entries(outputs)) if (value !== undefined) new CfnOutput(this, id, { value });
  }
}

/** The committed example mailbox file. */
export const EXAMPLE_CONFIG_PATH = join(dirname(fileURLToPath(import.meta.url)), '..', 'config', 'mailboxes.json');

export interface PopDrainAppOptions {
  /** @default 'config/mailboxes.json' (or the `configPath` context value) */
  readonly configPath?: string;
  readonly appProps?: AppProps;
}

/**
 * The example app: `PopDrainStack` (env-agnostic, so synth needs no account) with the
 * AwsSolutions checks, which make synth fail on any finding not acknowledged next to its
 * resource. Context: `configPath`, `alarmEmail`.
 */
export function createPopDrainApp(options: PopDrainAppOptions = {}): { app: App; stack: PopDrainStack } {
  const app = new App(options.appProps);
  const context = (key: string): string | undefined => {
    const value: unknown = app.node.tryGetContext(key);
    return typeof value === 'string' && value !== '' ? value : undefined;
  };
  const alarmEmail = context('alarmEmail');
  const stack = new PopDrainStack(app, 'PopDrainStack', {
    description: 'popdrain: POP3 mailboxes drained to S3, DynamoDB and EventBridge',
    popDrain: { configPath: options.configPath ?? context('configPath') ?? EXAMPLE_CONFIG_PATH },
    ...withoutUndefined({ alarmEmail }),
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stack };
}
