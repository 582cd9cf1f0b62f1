/**
 * The PopDrain construct's variants, by their synthesized templates (these synths skip esbuild):
 * nothing grows per mailbox, the options, VPC placement, and the configuration errors that abort
 * synth. Resources are found by what they are, never by hashed logical ids.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duration, RemovalPolicy, Size, Stack, Validations } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks } from 'cdk-nag';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../lib/drain/config.js';
import { PopDrain, defaultTickMinutes } from '../../infra/constructs/pop-drain.js';
import type { PopDrainProps } from '../../infra/constructs/pop-drain-props.js';
import { mailbox, testApp, writeFile, writeMailboxFile } from './support.js';
import { allow, environmentOf, importedVpc, resourceCounts, roleStatements, secretNameArn, synth, type Synth } from './pop-drain-synth.js';

describe('nothing grows per mailbox', () => {
  const withVpc = (stack: Stack) => ({ vpc: importedVpc(stack) });
  const fleet = (n: number, secret: (i: number) => string) => ({
    mailboxes: Array.from({ length: n }, (_, i) => mailbox(`mbx-${i}`, { auth: { secret: secret(i) }, ...(i % 2 === 0 ? { placement: 'vpc' } : {}) })),
  });
  const other = (counts: Record<string, number>) => Object.fromEntries(Object.entries(counts).filter(([type]) => type !== 'AWS::IAM::ManagedPolicy'));

  it('3 and 300 mailboxes sharing secrets synthesize exactly the same resources (17 alarms: 15 of drain-alarms.ts, a queue-age alarm per queue)', () => {
    const small = synth({ configPath: writeMailboxFile(fleet(3, (i) => `popdrain/tenant-${i % 3}`)) }, { extra: withVpc });
    const large = synth({ configPath: writeMailboxFile(fleet(300, (i) => `popdrain/tenant-${i % 3}`)) }, { extra: withVpc });
    expect(resourceCounts(large.template)).toEqual(resourceCounts(small.template));
    small.template.resourceCountIs('AWS::CloudWatch::Alarm', 17);
    large.template.resourceCountIs('AWS::CloudWatch::Alarm', 17);
  });

  it('300 mailboxes with a secret each: the same resources except IAM overflow policies for the secret ARNs', () => {
    const small = synth({ configPath: writeMailboxFile(fleet(3, (i) => `popdrain/mailbox-${i}`)) }, { extra: withVpc });
    const large = synth({ configPath: writeMailboxFile(fleet(300, (i) => `popdrain/mailbox-${i}`)) }, { extra: withVpc });
    expect(other(resourceCounts(large.template))).toEqual(other(resourceCounts(small.template)));
    large.template.resourceCountIs('AWS::CloudWatch::Alarm', 17);
    // Still one ARN per secret, 150 per drainer, split over statements CDK can pack.
    for (const fn of [large.popDrain.drainerFunction, large.popDrain.vpcDrainerFunction]) {
      const reads = roleStatements(large, fn?.role).filter((st) => st.Sid?.startsWith('ReadMailboxSecrets'));
      expect(reads.length).toBeGreaterThan(1);
      expect(reads.flatMap((st) => st.Resource)).toHaveLength(150);
    }
    // Each overflow policy stays under IAM's 6,144 characters even in CloudFormation's longer form.
    for (const policy of Object.values(large.template.findResources('AWS::IAM::ManagedPolicy'))) {
      expect(JSON.stringify(policy.Properties.PolicyDocument).length).toBeLessThan(6144);
    }
  });

  it('more secrets than IAM can attach to one role fails synth with what to do', () => {
    expect(() => synth({ configPath: writeMailboxFile({ mailboxes: Array.from({ length: 1500 }, (_, i) => mailbox(`m-${i}`)) }) })).toThrow(
      /the drainer would need \d+ IAM statements for 1500 secrets .* let mailboxes share secrets/,
    );
  });
});

describe('options', () => {
  it('configDelivery s3: the file is an asset the functions may read, named by POPDRAIN_CONFIG_S3_URI', () => {
    const s = synth({ configDelivery: 's3' });
    const asset = s.popDrain.configAsset!;
    expect(asset).toBeDefined();
    const uri = s.cfn(asset.s3ObjectUrl);
    for (const fn of [s.popDrain.schedulerFunction, s.popDrain.drainerFunction]) {
      const env = environmentOf(s, fn);
      expect(env.POPDRAIN_CONFIG_S3_URI).toEqual(uri);
      expect(env.POPDRAIN_CONFIG_PATH).toBeUndefined();
      expect(roleStatements(s, fn.role)).toContainEqual(allow('ReadMailboxConfig', ['s3:GetObject'], [s.cfn(asset.bucket.arnForObjects(asset.s3ObjectKey))]));
    }
  });

  it('a CA file named in the config is inlined into the shipped file', () => {
    const pem = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n';
    const caFile = writeFile('ca.pem', pem);
    const s = synth({ configDelivery: 's3', configPath: writeMailboxFile({ mailboxes: [mailbox('tls', { tlsOptions: { caFile, servername: 'pop.example.com' } }), mailbox('plain')] }) });
    const asset = s.popDrain.configAsset!;
    const shipped = JSON.parse(readFileSync(join(s.outdir, `asset.${asset.assetHash}.json`), 'utf8')) as { mailboxes: Array<{ tlsOptions?: Record<string, unknown> }> };
    expect(shipped.mailboxes[0]?.tlsOptions).toEqual({ caPem: pem, servername: 'pop.example.com' });
    expect(shipped.mailboxes[1]?.tlsOptions).toBeUndefined();
  });

  it('kms: a rotating key encrypts the bucket; the drainer gets the key id and may use the key', () => {
    const s = synth({ kms: true });
    const key = s.popDrain.encryptionKey!;
    s.template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    s.template.hasResource('AWS::KMS::Key', { DeletionPolicy: 'Retain' });
    s.template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          { ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: s.cfn(key.keyArn) }, BucketKeyEnabled: true },
        ],
      },
    });
    expect(environmentOf(s, s.popDrain.drainerFunction).POPDRAIN_KMS_KEY_ID).toEqual(s.cfn(key.keyArn));
    expect(environmentOf(s, s.popDrain.schedulerFunction).POPDRAIN_KMS_KEY_ID).toBeUndefined();
    expect(roleStatements(s, s.popDrain.drainerFunction.role)).toContainEqual(
      allow('EncryptMessages', ['kms:GenerateDataKey', 'kms:Encrypt', 'kms:Decrypt'], [s.cfn(key.keyArn)]),
    );
  });

  it('existing bucket (with a key), table and bus: none created, all referenced', () => {
    const keyArn = 'arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555';
    const tableKeyArn = 'arn:aws:kms:us-east-1:123456789012:key/66666666-2222-3333-4444-555555555555';
    const s = synth(
      { messagePrefix: 'mail/' },
      {
        extra: (stack) => ({
          bucket: s3.Bucket.fromBucketName(stack, 'Existing', 'corp-mail-archive'),
          encryptionKey: kms.Key.fromKeyArn(stack, 'Key', keyArn),
          table: dynamodb.Table.fromTableAttributes(stack, 'Table', {
            tableName: 'corp-ledger',
            encryptionKey: kms.Key.fromKeyArn(stack, 'TableKey', tableKeyArn),
          }),
          eventBus: events.EventBus.fromEventBusName(stack, 'Bus', 'corp-bus'),
        }),
      },
    );
    for (const type of ['AWS::S3::Bucket', 'AWS::S3::BucketPolicy', 'AWS::DynamoDB::Table', 'AWS::Events::EventBus', 'AWS::Events::Archive', 'AWS::KMS::Key']) {
      s.template.resourceCountIs(type, 0);
    }
    const env = environmentOf(s, s.popDrain.drainerFunction);
    expect(env.POPDRAIN_BUCKET).toBe('corp-mail-archive');
    expect(env.POPDRAIN_PREFIX).toBe('mail/');
    expect(env.POPDRAIN_KMS_KEY_ID).toBe(keyArn);
    expect(env.POPDRAIN_LEDGER_TABLE).toBe('corp-ledger');
    expect(env.POPDRAIN_EVENT_BUS).toEqual(s.cfn(s.popDrain.eventBus.eventBusArn));
    const statements = roleStatements(s, s.popDrain.drainerFunction.role);
    expect(statements).toContainEqual(
      allow('StoreMessages', ['s3:PutObject', 's3:GetObject', 's3:AbortMultipartUpload'], [s.cfn(s.popDrain.bucket.arnForObjects('mail/*'))]),
    );
    expect(JSON.stringify(s.cfn(s.popDrain.bucket.arnForObjects('mail/*')))).toContain('corp-mail-archive/mail/*');
    expect(statements).toContainEqual(allow('EncryptMessages', ['kms:GenerateDataKey', 'kms:Encrypt', 'kms:Decrypt'], [keyArn]));
    expect(statements).toContainEqual(allow('UseLedgerKey', ['kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKey'], [tableKeyArn]));
    expect(statements.find((st) => st.Sid === 'PublishEvents')?.Resource).toEqual([s.cfn(s.popDrain.eventBus.eventBusArn)]);
    expect(JSON.stringify(statements.find((st) => st.Sid === 'PublishEvents'))).toContain('event-bus/corp-bus');
  });

  it('lifecycle, removal policy, access logs, log level and sizing props', () => {
    const s = synth(
      {
        messageLifecycle: { transitionToInfrequentAccessAfterDays: 30, expireAfterDays: 365 },
        removalPolicy: RemovalPolicy.DESTROY,
        logLevel: 'DEBUG',
        drainerMemorySize: 2048,
        drainerTimeout: Duration.minutes(10),
        drainerMaxConcurrency: 25,
        drainerBatchSize: 4,
        reservedConcurrentExecutions: 30,
        ephemeralStorageSize: Size.gibibytes(4),
        tickMinutes: 1,
        maxReceiveCount: 3,
        archiveRetention: Duration.days(30),
      },
      { extra: (stack) => ({ serverAccessLogsBucket: s3.Bucket.fromBucketName(stack, 'Logs', 'corp-access-logs') }) },
    );
    s.template.hasResource('AWS::S3::Bucket', {
      DeletionPolicy: 'Delete',
      Properties: Match.objectLike({
        LoggingConfiguration: { DestinationBucketName: 'corp-access-logs', LogFilePrefix: 'popdrain-access-logs/' },
        LifecycleConfiguration: {
          Rules: Match.arrayWith([
            {
              Id: 'StoredMessages',
              Status: 'Enabled',
              Prefix: 'messages/',
              Transitions: [{ StorageClass: 'STANDARD_IA', TransitionInDays: 30 }],
              ExpirationInDays: 365,
              NoncurrentVersionExpiration: { NoncurrentDays: 30 },
            },
          ]),
        },
      }),
    });
    // With a log bucket there is nothing to acknowledge.
    expect(JSON.stringify(s.popDrain.bucket.node.metadata)).not.toContain('AwsSolutions-S1');
    s.template.hasResource('AWS::DynamoDB::Table', { DeletionPolicy: 'Delete', Properties: Match.objectLike({ DeletionProtectionEnabled: false }) });
    s.template.hasResource('AWS::Events::Archive', { DeletionPolicy: 'Delete' });
    s.template.hasResourceProperties('AWS::Lambda::Function', {
      Description: Match.stringLikeRegexp('drainer'),
      MemorySize: 2048,
      Timeout: 600,
      ReservedConcurrentExecutions: 30,
      EphemeralStorage: { Size: 4096 },
    });
    s.template.hasResourceProperties('AWS::Lambda::EventSourceMapping', { BatchSize: 4, ScalingConfig: { MaximumConcurrency: 25 } });
    s.template.hasResourceProperties('AWS::SQS::Queue', { VisibilityTimeout: 3600, RedrivePolicy: Match.objectLike({ maxReceiveCount: 3 }) });
    s.template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'cron(* * * * ? *)' });
    s.template.hasResourceProperties('AWS::Events::Archive', { RetentionDays: 30 });
    s.template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'StaleMailboxes', Period: 300 });
    expect(environmentOf(s, s.popDrain.schedulerFunction).POWERTOOLS_LOG_LEVEL).toBe('DEBUG');
    expect(environmentOf(s, s.popDrain.drainerFunction).POWERTOOLS_LOG_LEVEL).toBe('DEBUG');
    // The drainer knows the queue's maxReceiveCount (it releases the marker on that receive) and the marker TTL follows the timeout.
    expect(environmentOf(s, s.popDrain.drainerFunction).POPDRAIN_MAX_RECEIVE_COUNT).toBe('3');
    expect(environmentOf(s, s.popDrain.drainerFunction).POPDRAIN_REQUEST_MARKER_TTL_SECONDS).toBe(String(4 * 24 * 3600 + 3600));
    // Without a topic, alarms have no actions.
    s.template.allResourcesProperties('AWS::CloudWatch::Alarm', { AlarmActions: Match.absent() });
  });

  it('sizes /tmp for the largest maxMessageSize when none is given', () => {
    const s = synth({ configPath: writeMailboxFile({ mailboxes: [mailbox('big', { limits: { maxMessageSize: '3GiB' } }), mailbox('small')] }) });
    s.template.hasResourceProperties('AWS::Lambda::Function', { Description: Match.stringLikeRegexp('drainer'), EphemeralStorage: { Size: 3072 + 512 } });
  });

  it('tick: the gcd of the schedules, at most an hour', () => {
    const of = (...minutes: number[]) => defaultTickMinutes(minutes.map((everyMinutes) => ({ everyMinutes }) as never));
    expect(of(5, 10, 15)).toBe(5);
    expect(of(5, 7)).toBe(1);
    expect(of(1440)).toBe(60);
    expect(of(90)).toBe(45);
    expect(of(120, 180)).toBe(60);
  });
});

describe('VPC placement', () => {
  const config = {
    mailboxes: [mailbox('public'), mailbox('internal', { placement: 'vpc', auth: { secret: 'popdrain/internal' } })],
  };

  function vpcSynth(): Synth {
    return synth(
      { configPath: writeMailboxFile(config) },
      {
        extra: (stack) => ({
          vpc: importedVpc(stack),
        }),
      },
    );
  }

  it('a second drainer in the VPC with its own FIFO queue and DLQ; each drainer may read only its mailboxes’ secrets', () => {
    const s = vpcSynth();
    const vpcDrainer = s.popDrain.vpcDrainerFunction!;
    const vpcQueue = s.popDrain.vpcQueue!;
    expect(vpcDrainer).toBeDefined();
    s.template.resourceCountIs('AWS::Lambda::Function', 3);
    s.template.resourceCountIs('AWS::SQS::Queue', 5);
    s.template.resourceCountIs('AWS::CloudWatch::Alarm', 17);
    s.template.hasResourceProperties('AWS::SQS::Queue', {
      FifoQueue: true,
      RedrivePolicy: { deadLetterTargetArn: s.cfn(s.popDrain.vpcDeadLetterQueue!.queueArn), maxReceiveCount: 5 },
    });
    s.template.hasResourceProperties('AWS::Lambda::Function', {
      Description: Match.stringLikeRegexp('drainer \\(VPC\\)'),
      VpcConfig: { SubnetIds: ['subnet-0123456789abcdef0'], SecurityGroupIds: Match.anyValue() },
    });
    s.template.hasResourceProperties('AWS::Lambda::EventSourceMapping', { EventSourceArn: s.cfn(vpcQueue.queueArn), BatchSize: 10 });
    expect(environmentOf(s, s.popDrain.schedulerFunction).POPDRAIN_VPC_QUEUE_URL).toEqual(s.cfn(vpcQueue.queueUrl));
    expect(environmentOf(s, vpcDrainer).POPDRAIN_QUEUE_URL).toEqual(s.cfn(vpcQueue.queueUrl));
    expect(roleStatements(s, s.popDrain.schedulerFunction.role)).toContainEqual(
      allow('SendDrainRequests', ['sqs:SendMessage'], [s.cfn(s.popDrain.queue.queueArn), s.cfn(vpcQueue.queueArn)]),
    );
    const vpcStatements = roleStatements(s, vpcDrainer.role);
    expect(vpcStatements.find((st) => st.Sid === 'ReadMailboxSecrets')?.Resource).toEqual([secretNameArn('popdrain/internal')]);
    expect(vpcStatements.find((st) => st.Sid === 'EnqueueContinuations')?.Resource).toEqual([s.cfn(vpcQueue.queueArn)]);
    expect(vpcStatements.find((st) => st.Sid === 'ManageVpcNetworkInterfaces')).toEqual(
      allow(
        'ManageVpcNetworkInterfaces',
        [
          'ec2:CreateNetworkInterface',
          'ec2:DescribeNetworkInterfaces',
          'ec2:DescribeSubnets',
          'ec2:DeleteNetworkInterface',
          'ec2:AssignPrivateIpAddresses',
          'ec2:UnassignPrivateIpAddresses',
        ],
        ['*'],
      ),
    );
    const defaultStatements = roleStatements(s, s.popDrain.drainerFunction.role);
    expect(defaultStatements.find((st) => st.Sid === 'ReadMailboxSecrets')?.Resource).toEqual([secretNameArn('popdrain/public')]);
    expect(defaultStatements.find((st) => st.Sid === 'ManageVpcNetworkInterfaces')).toBeUndefined();
  });

  it('passes the AwsSolutions checks (the ENI wildcard is acknowledged on the VPC drainer role)', () => {
    const outdir = mkdtempSync(join(tmpdir(), 'popdrain-cdk-'));
    const checked = testApp({ outdir });
    const stack = new Stack(checked, 'Test');
    new PopDrain(stack, 'PopDrain', {
      configPath: writeMailboxFile(config),
      vpc: importedVpc(stack),
    });
    Validations.of(checked).addPlugins(new AwsSolutionsChecks(checked));
    expect(() => checked.synth()).not.toThrow();
  });

  it('without the vpc prop, a vpc mailbox fails synth naming the mailbox and the field', () => {
    expect(() => synth({ configPath: writeMailboxFile(config) })).toThrow(/mailbox 2 "internal": placement: "vpc" needs the vpc prop/);
  });
});

describe('configuration errors abort synth, naming the mailbox and the field', () => {
  const attempt = (content: unknown, props: Partial<PopDrainProps> = {}): ConfigError => {
    const configPath = writeMailboxFile(content);
    try {
      synth({ configPath, ...props });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toContain(configPath);
      return error as ConfigError;
    }
    throw new Error('synth did not fail');
  };

  it('schema errors from lib/drain/config.ts', () => {
    const error = attempt({ mailboxes: [mailbox('ok'), { ...mailbox('bad'), port: 70000 }, { ...mailbox('nohost'), host: undefined }] });
    expect(error.message).toMatch(/mailbox 2 "bad": port: /);
    expect(error.message).toMatch(/mailbox 3 "nohost": host: /);
  });

  it('duplicate ids', () => {
    expect(attempt({ mailboxes: [mailbox('same'), mailbox('same')] }).message).toMatch(/mailbox 2 "same": id: duplicate id/);
  });

  it('a login that is not in Secrets Manager', () => {
    const error = attempt({ mailboxes: [mailbox('a'), mailbox('env', { auth: { passwordEnv: 'POP_PASSWORD' } }), mailbox('file', { auth: { passwordFile: '/etc/pw' } })] });
    expect(error.problems).toEqual([
      expect.stringMatching(/^mailbox 2 "env": auth\.passwordEnv: a deployment reads mailbox logins from AWS Secrets Manager only/),
      expect.stringMatching(/^mailbox 3 "file": auth\.passwordFile: /),
    ]);
  });

  it('a secret name or ARN that would widen the IAM grant', () => {
    const error = attempt({
      mailboxes: [
        mailbox('star', { auth: { secret: 'popdrain/*' } }),
        mailbox('badarn', { auth: { secret: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:*' } }),
      ],
    });
    expect(error.problems).toEqual([
      expect.stringMatching(/^mailbox 1 "star": auth\.secret: "popdrain\/\*" is not a Secrets Manager secret name/),
      expect.stringMatching(/^mailbox 2 "badarn": auth\.secret: .* is not a Secrets Manager secret ARN/),
    ]);
  });

  it('a maxMessageSize that does not fit /tmp', () => {
    const error = attempt({ mailboxes: [mailbox('huge', { limits: { maxMessageSize: '3GiB' } })] }, { ephemeralStorageSize: Size.gibibytes(2) });
    expect(error.message).toMatch(/mailbox 1 "huge": limits\.maxMessageSize: .* does not fit/);
    expect(attempt({ mailboxes: [mailbox('huger', { limits: { maxMessageSize: '10GiB' } })] }).message).toMatch(
      /mailbox 1 "huger": limits\.maxMessageSize: .* exceeds the 10 GiB/,
    );
  });

  it('a file that is not JSON, or missing', () => {
    expect(attempt('{ "mailboxes": [').message).toMatch(/is not valid JSON/);
    expect(() => synth({ configPath: join(tmpdir(), 'does-not-exist-popdrain.json') })).toThrow(/cannot read mailbox configuration/);
  });

  it('props that contradict each other', () => {
    expect(() => synth({ reservedConcurrentExecutions: 5, drainerMaxConcurrency: 10 })).toThrow(/reservedConcurrentExecutions \(5\) must be at least drainerMaxConcurrency \(10\)/);
    expect(() => synth({ tickMinutes: 0 })).toThrow(/tickMinutes/);
    // A FIFO event source takes batches of 1 to 10.
    for (const drainerBatchSize of [0, 11, 2.5]) {
      expect(() => synth({ drainerBatchSize })).toThrow(new RegExp(`drainerBatchSize must be a whole number from 1 to 10 \\(what an SQS FIFO event source allows\\), not ${drainerBatchSize}`));
    }
    expect(() => synth({ messageLifecycle: { transitionToInfrequentAccessAfterDays: 7 } })).toThrow(/at least 30/);
    expect(() => synth({ messagePrefix: 'a*' })).toThrow(/messagePrefix/);
  });
});
