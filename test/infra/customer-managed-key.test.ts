/**
 * `customerManagedKey`: one customer-managed KMS key for the table, the queues (and dead-letter
 * queues), the log groups, the archive and the bucket; key policy without wildcard principals;
 * both cdk-nag packs clean. By the synthesized template (no bundling).
 */
import { Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as kms from 'aws-cdk-lib/aws-kms';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import { describe, expect, it } from 'vitest';
import { PopDrain } from '../../infra/constructs/pop-drain.js';
import type { PopDrainProps } from '../../infra/constructs/pop-drain-props.js';
import { mailbox, testApp, writeMailboxFile } from './support.js';

function build(props: Partial<PopDrainProps>) {
  const app = testApp();
  const stack = new Stack(app, 'Keyed', { env: { account: '111122223333', region: 'eu-west-1' } });
  const popDrain = new PopDrain(stack, 'PopDrain', { configPath: writeMailboxFile({ mailboxes: [mailbox('alpha')] }), ...props });
  return { app, stack, popDrain };
}

describe('customerManagedKey', () => {
  it('true: one key encrypts the table, every queue, every log group, the archive and the bucket', () => {
    const { stack, popDrain } = build({ customerManagedKey: true });
    const t = Template.fromStack(stack);
    t.resourceCountIs('AWS::KMS::Key', 1);
    const keyId = Object.keys(t.findResources('AWS::KMS::Key'))[0]!;
    const keyArn = { 'Fn::GetAtt': [keyId, 'Arn'] };
    expect(popDrain.customerManagedKey).toBeDefined();
    t.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    t.hasResourceProperties('AWS::DynamoDB::Table', { SSESpecification: { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: keyArn } });
    const queues = t.findResources('AWS::SQS::Queue');
    expect(Object.keys(queues).length).toBe(3); // drain queue, its DLQ, the schedule's DLQ
    for (const [id, queue] of Object.entries(queues)) expect(queue.Properties.KmsMasterKeyId, id).toEqual(keyArn);
    const logGroups = t.findResources('AWS::Logs::LogGroup');
    expect(Object.keys(logGroups).length).toBeGreaterThanOrEqual(2);
    for (const [id, group] of Object.entries(logGroups)) expect(group.Properties.KmsKeyId, id).toEqual(keyArn);
    t.hasResourceProperties('AWS::Events::Archive', { KmsKeyIdentifier: keyArn });
    t.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: { ServerSideEncryptionConfiguration: [Match.objectLike({ ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: keyArn } })] },
    });
  });

  it('the key policy names its principals (Logs of this region for this account, EventBridge for the account rules)', () => {
    const { stack } = build({ customerManagedKey: true });
    const t = Template.fromStack(stack);
    const statements = Object.values(t.findResources('AWS::KMS::Key'))[0]!.Properties.KeyPolicy.Statement as Array<Record<string, any>>;
    for (const s of statements) expect(s.Principal, s.Sid).not.toBe('*');
    for (const s of statements) expect(s.Principal?.AWS, s.Sid).not.toBe('*');
    const logs = statements.find((s) => s.Sid === 'CloudWatchLogsOfThisAccount')!;
    expect(logs.Principal).toEqual({ Service: 'logs.eu-west-1.amazonaws.com' });
    expect(logs.Condition).toEqual({ ArnLike: { 'kms:EncryptionContext:aws:logs:arn': 'arn:aws:logs:eu-west-1:111122223333:log-group:*' } });
    const schedule = statements.find((s) => s.Sid === 'EventBridgeRuleDeadLetters')!;
    expect(schedule.Principal).toEqual({ Service: 'events.amazonaws.com' });
    expect(schedule.Condition).toEqual({ ArnLike: { 'aws:SourceArn': 'arn:aws:events:eu-west-1:111122223333:rule/*' } });
    expect(statements.some((s) => s.Principal?.Service === 'events.amazonaws.com' && s.Condition?.StringEquals?.['kms:EncryptionContext:aws:events:event-bus:arn'])).toBe(true);
  });

  it('every function role may use the key', () => {
    const { stack } = build({ customerManagedKey: true });
    const t = Template.fromStack(stack);
    const keyId = Object.keys(t.findResources('AWS::KMS::Key'))[0]!;
    const policies = Object.values(t.findResources('AWS::IAM::Policy')).filter((p) =>
      JSON.stringify(p.Properties.PolicyDocument).includes('"UseLedgerKey"'),
    );
    expect(policies.length).toBeGreaterThanOrEqual(2); // scheduler, drainer
    for (const p of policies) {
      const use = (p.Properties.PolicyDocument.Statement as Array<Record<string, any>>).find((s) => s.Sid === 'UseLedgerKey')!;
      expect(use.Action).toEqual(expect.arrayContaining(['kms:Decrypt', 'kms:GenerateDataKey']));
      expect(use.Resource).toEqual({ 'Fn::GetAtt': [keyId, 'Arn'] });
    }
  });

  it('a given key is used as it is, and nothing without the prop changes', () => {
    const keyArn = 'arn:aws:kms:eu-west-1:111122223333:key/11111111-2222-3333-4444-555555555555';
    const given = build({});
    const key = kms.Key.fromKeyArn(given.stack, 'Given', keyArn);
    const keyed = build({ customerManagedKey: key });
    const t = Template.fromStack(keyed.stack);
    t.resourceCountIs('AWS::KMS::Key', 0);
    t.hasResourceProperties('AWS::Logs::LogGroup', { KmsKeyId: keyArn });
    t.hasResourceProperties('AWS::SQS::Queue', { KmsMasterKeyId: keyArn });
    const plain = Template.fromStack(given.stack);
    plain.resourceCountIs('AWS::KMS::Key', 0);
    plain.hasResourceProperties('AWS::SQS::Queue', { SqsManagedSseEnabled: true });
    plain.hasResourceProperties('AWS::Logs::LogGroup', { KmsKeyId: Match.absent() });
  });

  it('both cdk-nag packs stay clean with the key', () => {
    const { app } = build({ customerManagedKey: true });
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app), new ServerlessChecks(app));
    expect(() => app.synth()).not.toThrow();
  }, 120_000);
});
