/**
 * The PopDrain construct's default deployment, by its synthesized template. Resources are found
 * by what they are (type, properties, the construct's public properties resolved to their
 * CloudFormation form), never by hashed logical ids. One bundled synth serves every test here.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Match } from 'aws-cdk-lib/assertions';
import * as sns from 'aws-cdk-lib/aws-sns';
import { beforeAll, describe, expect, it } from 'vitest';
import { allow, environmentOf, ROTATING_ARN, roleStatements, secretNameArn, synth, type Synth, XRAY } from './pop-drain-synth.js';

describe('default deployment (bundled)', () => {
  let s: Synth;
  let topic: sns.Topic;
  beforeAll(() => {
    s = synth({}, { bundle: true, extra: (stack) => ({ alarmTopic: (topic = new sns.Topic(stack, 'Alarms')) }) });
  });

  it('bucket: encrypted, versioned, public access blocked, SSL-only, retained', () => {
    s.template.resourceCountIs('AWS::S3::Bucket', 1);
    s.template.hasResource('AWS::S3::Bucket', {
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: Match.objectLike({
        BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
        PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
        VersioningConfiguration: { Status: 'Enabled' },
        OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
        LifecycleConfiguration: { Rules: [{ Id: 'AbortIncompleteUploads', Status: 'Enabled', AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 } }] },
      }),
    });
    s.template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: s.cfn(s.popDrain.bucket.bucketName),
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          Match.objectLike({ Effect: 'Deny', Action: 's3:*', Condition: { NumericLessThan: { 's3:TlsVersion': 1.2 } } }),
        ]),
      },
    });
  });

  it('table: pk/sk strings, on demand, PITR, TTL on expiresAt, retained', () => {
    s.template.resourceCountIs('AWS::DynamoDB::Table', 1);
    s.template.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: Match.objectLike({
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
        AttributeDefinitions: Match.arrayWith([
          { AttributeName: 'pk', AttributeType: 'S' },
          { AttributeName: 'sk', AttributeType: 'S' },
        ]),
        BillingMode: 'PAY_PER_REQUEST',
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
        DeletionProtectionEnabled: true,
      }),
    });
  });

  it('event bus with a retained archive of Email Stored and Email Skipped (365 days), not Mailbox Drained', () => {
    s.template.resourceCountIs('AWS::Events::EventBus', 1);
    s.template.hasResource('AWS::Events::Archive', {
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: Match.objectLike({
        SourceArn: s.cfn(s.popDrain.eventBus.eventBusArn),
        EventPattern: { source: ['popdrain'], 'detail-type': ['Email Stored', 'Email Skipped'] },
        RetentionDays: 365,
      }),
    });
  });

  it('FIFO drain queue: encrypted, SSL-only, visibility 6 x drainer timeout, FIFO DLQ after 5 receives', () => {
    s.template.resourceCountIs('AWS::SQS::Queue', 3);
    s.template.hasResourceProperties('AWS::SQS::Queue', {
      FifoQueue: true,
      ContentBasedDeduplication: false,
      DeduplicationScope: 'messageGroup',
      FifoThroughputLimit: 'perMessageGroupId',
      SqsManagedSseEnabled: true,
      VisibilityTimeout: 6 * 900,
      RedrivePolicy: { deadLetterTargetArn: s.cfn(s.popDrain.deadLetterQueue.queueArn), maxReceiveCount: 5 },
    });
    s.template.hasResourceProperties('AWS::SQS::Queue', {
      FifoQueue: true,
      SqsManagedSseEnabled: true,
      MessageRetentionPeriod: 14 * 86400,
      RedrivePolicy: Match.absent(),
    });
    for (const queue of [s.popDrain.queue, s.popDrain.deadLetterQueue]) {
      s.template.hasResourceProperties('AWS::SQS::QueuePolicy', {
        Queues: [s.cfn(queue.queueUrl)],
        PolicyDocument: {
          Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Action: 'sqs:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]),
        },
      });
    }
  });

  it('functions: Node.js 24 on arm64, memory, timeouts, /tmp, log groups with 3 months retention', () => {
    s.template.resourceCountIs('AWS::Lambda::Function', 2);
    const common = { Runtime: 'nodejs24.x', Architectures: ['arm64'], Handler: 'index.handler' };
    s.template.hasResourceProperties('AWS::Lambda::Function', {
      ...common,
      Description: Match.stringLikeRegexp('scheduler'),
      MemorySize: 512,
      Timeout: 120,
      LoggingConfig: { LogGroup: s.cfn((s.popDrain.schedulerFunction.logGroup as { logGroupName: string }).logGroupName) },
    });
    s.template.hasResourceProperties('AWS::Lambda::Function', {
      ...common,
      Description: Match.stringLikeRegexp('drainer'),
      MemorySize: 1024,
      Timeout: 900,
      EphemeralStorage: { Size: 2048 },
      ReservedConcurrentExecutions: Match.absent(),
      VpcConfig: Match.absent(),
      LoggingConfig: { LogGroup: s.cfn((s.popDrain.drainerFunction.logGroup as { logGroupName: string }).logGroupName) },
    });
    s.template.resourceCountIs('AWS::Logs::LogGroup', 2);
    s.template.allResources('AWS::Logs::LogGroup', { DeletionPolicy: 'Retain', Properties: { RetentionInDays: 90 } });
  });

  it('scheduler environment is exactly the contract', () => {
    expect(environmentOf(s, s.popDrain.schedulerFunction)).toEqual({
      POPDRAIN_CONFIG_PATH: 'mailboxes.json',
      POPDRAIN_QUEUE_URL: s.cfn(s.popDrain.queue.queueUrl),
      POPDRAIN_LEDGER_TABLE: s.cfn(s.popDrain.table.tableName),
      POPDRAIN_TICK_MINUTES: '5',
      // The queue's retention (4 days) plus one visibility timeout (6 drainer timeouts).
      POPDRAIN_REQUEST_MARKER_TTL_SECONDS: String(4 * 24 * 3600 + 6 * 15 * 60),
      POWERTOOLS_SERVICE_NAME: 'popdrain',
      POWERTOOLS_METRICS_NAMESPACE: 'popdrain',
      POWERTOOLS_LOG_LEVEL: 'INFO',
    });
  });

  it('drainer environment is exactly the contract', () => {
    expect(environmentOf(s, s.popDrain.drainerFunction)).toEqual({
      POPDRAIN_CONFIG_PATH: 'mailboxes.json',
      POPDRAIN_BUCKET: s.cfn(s.popDrain.bucket.bucketName),
      POPDRAIN_PREFIX: 'messages/',
      POPDRAIN_LEDGER_TABLE: s.cfn(s.popDrain.table.tableName),
      POPDRAIN_EVENT_BUS: s.cfn(s.popDrain.eventBus.eventBusArn),
      POPDRAIN_QUEUE_URL: s.cfn(s.popDrain.queue.queueUrl),
      POPDRAIN_DEADLINE_MARGIN_MS: '60000',
      POPDRAIN_RETENTION_DAYS: '30',
      POPDRAIN_MAX_CONTINUATIONS: '200',
      POPDRAIN_REQUEST_MARKER_TTL_SECONDS: String(4 * 24 * 3600 + 6 * 15 * 60),
      POPDRAIN_MAX_RECEIVE_COUNT: '5',
      POPDRAIN_PER_MAILBOX_METRICS: 'false',
      POWERTOOLS_SERVICE_NAME: 'popdrain',
      POWERTOOLS_METRICS_NAMESPACE: 'popdrain',
      POWERTOOLS_LOG_LEVEL: 'INFO',
    });
  });

  it('drainer allows its own SQS -> Lambda -> SQS loop (continuations); the scheduler keeps the default', () => {
    const propertiesOf = (f: { functionName: string }) => {
      const ref = JSON.stringify(s.cfn(f.functionName));
      const match = Object.entries(s.template.findResources('AWS::Lambda::Function')).find(([id]) => JSON.stringify({ Ref: id }) === ref);
      expect(match).toBeDefined();
      return match![1].Properties as Record<string, unknown>;
    };
    expect(propertiesOf(s.popDrain.drainerFunction).RecursiveLoop).toBe('Allow');
    expect(propertiesOf(s.popDrain.schedulerFunction).RecursiveLoop).toBeUndefined();
  });

  it('drainer reads its SQS queue in batches of 10 mailboxes (drainerBatchSize), reporting item failures, at most 10 invocations at once', () => {
    s.template.resourceCountIs('AWS::Lambda::EventSourceMapping', 1);
    s.template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: s.cfn(s.popDrain.queue.queueArn),
      FunctionName: s.cfn(s.popDrain.drainerFunction.functionName),
      BatchSize: 10,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: 10 },
    });
  });

  it('scheduler runs every tick (the gcd of the schedules: 5 minutes), with a DLQ and retries inside the FIFO dedup window', () => {
    s.template.resourceCountIs('AWS::Events::Rule', 1);
    s.template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'cron(0/5 * * * ? *)',
      State: 'ENABLED',
      Targets: [
        Match.objectLike({
          Arn: s.cfn(s.popDrain.schedulerFunction.functionArn),
          DeadLetterConfig: { Arn: s.cfn(s.popDrain.scheduleDeadLetterQueue.queueArn) },
          RetryPolicy: { MaximumEventAgeInSeconds: 240, MaximumRetryAttempts: 2 },
        }),
      ],
    });
    s.template.hasResourceProperties('AWS::SQS::Queue', { FifoQueue: Match.absent(), SqsManagedSseEnabled: true, MessageRetentionPeriod: 14 * 86400 });
    s.template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      Principal: 'events.amazonaws.com',
      FunctionName: s.cfn(s.popDrain.schedulerFunction.functionArn),
      SourceArn: s.cfn(s.popDrain.scheduleRule.ruleArn),
    });
  });

  it('scheduler role: exactly its log group, SendMessage on the queue, lease reads, the request marker attribute, X-Ray segments', () => {
    const fn = s.popDrain.schedulerFunction;
    expect(roleStatements(s, fn.role)).toEqual([
      allow('ClaimRequestMarkers', ['dynamodb:UpdateItem'], [s.cfn(s.popDrain.table.tableArn)]),
      allow('ReadLeases', ['dynamodb:BatchGetItem', 'dynamodb:GetItem'], [s.cfn(s.popDrain.table.tableArn)]),
      allow('SendDrainRequests', ['sqs:SendMessage'], [s.cfn(s.popDrain.queue.queueArn)]),
      allow('WriteOwnLogs', ['logs:CreateLogStream', 'logs:PutLogEvents'], [s.cfn(fn.logGroup.logGroupArn)]),
      XRAY,
    ]);
    // It may write the marker attribute of an item, nothing else.
    s.template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Sid: 'ClaimRequestMarkers',
            Action: 'dynamodb:UpdateItem',
            Condition: { 'ForAllValues:StringEquals': { 'dynamodb:Attributes': ['pk', 'sk', 'requestMarker'] } },
          }),
        ]),
      },
    });
  });

  it('drainer role: exactly the contract, secrets by name with the suffix wildcard, PutSecretValue and UpdateSecretVersionStage only on rotating ones', () => {
    const fn = s.popDrain.drainerFunction;
    const queueArn = s.cfn(s.popDrain.queue.queueArn);
    expect(roleStatements(s, fn.role)).toEqual([
      allow('EnqueueContinuations', ['sqs:SendMessage'], [queueArn]),
      allow('PublishEvents', ['events:PutEvents'], [s.cfn(s.popDrain.eventBus.eventBusArn)]),
      allow('ReadMailboxSecrets', ['secretsmanager:GetSecretValue'], [ROTATING_ARN, secretNameArn('popdrain/alpha'), secretNameArn('popdrain/shared')]),
      allow('SaveRotatedRefreshTokens', ['secretsmanager:PutSecretValue', 'secretsmanager:UpdateSecretVersionStage'], [ROTATING_ARN, secretNameArn('popdrain/alpha')]),
      allow('StoreMessages', ['s3:PutObject', 's3:GetObject', 's3:AbortMultipartUpload'], [
        { 'Fn::Join': ['', [s.cfn(s.popDrain.bucket.bucketArn), '/messages/*']] },
      ]),
      allow(
        'UseLedger',
        ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:BatchGetItem', 'dynamodb:Query'],
        [s.cfn(s.popDrain.table.tableArn)],
      ),
      allow('WriteOwnLogs', ['logs:CreateLogStream', 'logs:PutLogEvents'], [s.cfn(fn.logGroup.logGroupArn)]),
      // Active tracing (CDK) and the SQS event source mapping's own grant (CDK).
      XRAY,
      allow(undefined, ['sqs:ChangeMessageVisibility', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes', 'sqs:GetQueueUrl', 'sqs:ReceiveMessage'], [queueArn]),
    ]);
  });

  it('roles have no managed policies and trust only Lambda', () => {
    s.template.resourceCountIs('AWS::IAM::Role', 2);
    s.template.allResourcesProperties('AWS::IAM::Role', {
      ManagedPolicyArns: Match.absent(),
      AssumeRolePolicyDocument: { Statement: [{ Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' } }] },
    });
  });

  it('alarms: DLQ not empty, drainer and scheduler errors, stale mailboxes, auth failures, to the topic', () => {
    s.template.resourceCountIs('AWS::CloudWatch::Alarm', 13);
    const actions = { AlarmActions: [s.cfn(topic.topicArn)], OKActions: [s.cfn(topic.topicArn)] };
    const over0 = { Threshold: 0, ComparisonOperator: 'GreaterThanThreshold', EvaluationPeriods: 1, ...actions };
    s.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      ...over0,
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: s.cfn(s.popDrain.deadLetterQueue.queueName) }],
      Statistic: 'Maximum',
    });
    for (const fn of [s.popDrain.drainerFunction, s.popDrain.schedulerFunction]) {
      s.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        ...over0,
        Namespace: 'AWS/Lambda',
        MetricName: 'Errors',
        Dimensions: [{ Name: 'FunctionName', Value: s.cfn(fn.functionName) }],
        Statistic: 'Sum',
      });
    }
    s.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      ...over0,
      Namespace: 'popdrain',
      MetricName: 'StaleMailboxes',
      Dimensions: [{ Name: 'service', Value: 'popdrain' }],
      Statistic: 'Maximum',
      Period: 600,
      TreatMissingData: 'breaching',
    });
    s.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      ...over0,
      Namespace: 'popdrain',
      MetricName: 'AuthFailures',
      Dimensions: [{ Name: 'service', Value: 'popdrain' }],
      Statistic: 'Sum',
      TreatMissingData: 'notBreaching',
    });
    // 12 of drain-alarms.ts and the queue-age alarm of fleet-alarms.ts.
    expect(s.popDrain.alarms).toHaveLength(13);
  });

  it('dashboard: aggregate metrics, failures by code and per-mailbox top lists from Contributor Insights rules', () => {
    s.template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    const body = JSON.stringify(s.template.findResources('AWS::CloudWatch::Dashboard'));
    for (const needle of [
      'MessagesStored',
      'BytesStored',
      'BacklogAgeSeconds',
      'BusyMailboxes',
      'ApproximateNumberOfMessagesVisible',
      'Duration',
      `SEARCH('{popdrain,service,errorCode} service=\\\\\\"popdrain\\\\\\" MetricName=\\\\\\"Failures\\\\\\"', 'Sum', 300)`,
      'insightRule',
      '#contributor-insights:rules/',
    ]) {
      expect(body).toContain(needle);
    }
    // No per-mailbox metric series unless perMailboxMetrics opts in.
    expect(body).not.toContain('service,mailbox');
  });

  it('each bundle holds the mailbox file and an ES module that parses', () => {
    for (const fn of [s.popDrain.schedulerFunction, s.popDrain.drainerFunction]) {
      const code = Object.values(s.template.findResources('AWS::Lambda::Function')).find(
        (r) => JSON.stringify(r.Properties.Role) === JSON.stringify(s.cfn(fn.role!.roleArn)),
      )!.Properties.Code as { S3Key: string };
      const dir = join(s.outdir, `asset.${code.S3Key.replace(/\.zip$/, '')}`);
      expect(readFileSync(join(dir, 'mailboxes.json'), 'utf8')).toBe(readFileSync(s.configPath, 'utf8'));
      const bundle = readFileSync(join(dir, 'index.mjs'), 'utf8');
      expect(bundle.startsWith('import { createRequire as __popdrainCreateRequire }')).toBe(true);
      // No source map shipped: nothing would read it without --enable-source-maps.
      expect(existsSync(join(dir, 'index.mjs.map'))).toBe(false);
      expect(bundle).not.toContain('sourceMappingURL');
      execFileSync(process.execPath, ['--check', join(dir, 'index.mjs')]);
    }
  });
});
