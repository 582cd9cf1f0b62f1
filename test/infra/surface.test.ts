/**
 * The construct as a library: what it exposes, its grant and routing helpers, tags. By the
 * synthesized template (no bundling), resources found by type and properties.
 */
import { Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import { describe, expect, it } from 'vitest';
import { emailStoredPattern } from '../../infra/constructs/email-routing.js';
import { PopDrain } from '../../infra/constructs/pop-drain.js';
import type { PopDrainProps } from '../../infra/constructs/pop-drain-props.js';
import { mailbox, testApp, writeMailboxFile } from './support.js';

function build(props: Partial<PopDrainProps> = {}) {
  const stack = new Stack(testApp(), 'Surface');
  const popDrain = new PopDrain(stack, 'PopDrain', { configPath: writeMailboxFile({ mailboxes: [mailbox('alpha'), mailbox('beta')] }), ...props });
  return { stack, popDrain, cfn: (token: unknown) => stack.resolve(token) };
}

describe('construct surface', () => {
  it('exposes the bucket, table, bus, archive, queues, functions, rules and alarms', () => {
    const { popDrain } = build();
    for (const part of [
      popDrain.bucket,
      popDrain.table,
      popDrain.eventBus,
      popDrain.archive,
      popDrain.queue,
      popDrain.deadLetterQueue,
      popDrain.scheduleDeadLetterQueue,
      popDrain.drainerFunction,
      popDrain.schedulerFunction,
      popDrain.scheduleRule,
      popDrain.dashboard,
      popDrain.mailboxLogQuery,
    ]) {
      expect(part).toBeDefined();
    }
  });

  it('grantReadMessages: GetObject under the message prefix only', () => {
    const { stack, popDrain, cfn } = build();
    const reader = new iam.Role(stack, 'Reader', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    popDrain.grantReadMessages(reader);
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [cfn(reader.roleName)],
      PolicyDocument: {
        Statement: [
          Match.objectLike({
            Effect: 'Allow',
            Action: Match.arrayWith(['s3:GetObject*']),
            Resource: Match.arrayWith([{ 'Fn::Join': ['', [cfn(popDrain.bucket.bucketArn), '/messages/*']] }]),
          }),
        ],
      },
    });
    const readerPolicies = Object.values(template.findResources('AWS::IAM::Policy')).filter((p) => JSON.stringify(p.Properties.Roles) === JSON.stringify([cfn(reader.roleName)]));
    expect(readerPolicies).toHaveLength(1);
    expect(JSON.stringify(readerPolicies)).not.toMatch(/s3:(Put|Delete)/);
  });

  it('onEmailStored: a rule on the bus for Email Stored (of some mailboxes) to the target', () => {
    const { stack, popDrain, cfn } = build();
    const inbox = new sqs.Queue(stack, 'Consumer', { enforceSSL: true });
    const rule = popDrain.onEmailStored('ToConsumer', new targets.SqsQueue(inbox), { mailboxIds: ['alpha'] });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::Events::Rule', {
      EventBusName: cfn(popDrain.eventBus.eventBusName),
      EventPattern: { source: ['popdrain'], 'detail-type': ['Email Stored'], detail: { mailboxId: ['alpha'] } },
      Targets: [Match.objectLike({ Arn: cfn(inbox.queueArn) })],
    });
    expect(rule.node.path).toBe('Surface/PopDrain/ToConsumer');
    expect(emailStoredPattern()).toEqual({ source: ['popdrain'], detailType: ['Email Stored'] });
    expect(() => popDrain.onEmailStored('Nobody', new targets.SqsQueue(inbox), { mailboxIds: [] })).toThrow(/mailboxIds is empty/);
  });

  it('tags: every taggable resource it creates carries them', () => {
    const { stack } = build({ tags: { 'cost-center': 'mail-42', owner: 'platform' } });
    const resources = Object.values(Template.fromStack(stack).toJSON().Resources as Record<string, { Type: string; Properties?: { Tags?: unknown } }>);
    const taggable = ['AWS::S3::Bucket', 'AWS::DynamoDB::Table', 'AWS::SQS::Queue', 'AWS::Lambda::Function', 'AWS::IAM::Role', 'AWS::Logs::LogGroup', 'AWS::Events::Rule', 'AWS::CloudWatch::InsightRule'];
    const checked = resources.filter((r) => taggable.includes(r.Type));
    expect(new Set(checked.map((r) => r.Type)).size).toBe(taggable.length);
    for (const r of checked) {
      const tags = JSON.stringify(r.Properties?.Tags ?? []);
      expect(tags, r.Type).toContain('mail-42');
      expect(tags, r.Type).toContain('platform');
    }
  });
});
