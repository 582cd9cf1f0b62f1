/**
 * `mailboxSource: 'registry'` in the synthesized template: both functions read the registry
 * (POPDRAIN_MAILBOX_SOURCE), the scheduler may touch only the registry's partition beyond its
 * request markers, secrets are granted by a name prefix (reads) and a tag (writes), so the
 * template is the same size with 10,000 mailboxes as with 3; a secret outside the prefix stops
 * synth. Resources are found by type and properties, never by hashed logical ids.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Stack, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as iam from 'aws-cdk-lib/aws-iam';
import { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { REGISTRY_PARTITION } from '../../lib/drain/mailbox-registry.js';
import { PopDrain } from '../../infra/constructs/pop-drain.js';
import { PopDrainStack } from '../../infra/popdrain-stack.js';
import type { PopDrainProps } from '../../infra/constructs/pop-drain-props.js';
import { cdkJsonContext, mailbox, testApp, writeMailboxFile } from './support.js';

type Statement = { Sid?: string; Action: string | string[]; Resource: unknown; Condition?: unknown };

function synth(count: number, props: Partial<PopDrainProps> = {}, withVpc = false) {
  const stack = new Stack(testApp(), 'Registry');
  const mailboxes = Array.from({ length: count }, (_, i) => mailbox(`m${String(i).padStart(5, '0')}`, i % 7 === 0 ? { auth: { secret: `popdrain/m${i}`, rotatingRefreshToken: true } } : {}));
  const configPath = writeMailboxFile({ mailboxes });
  const vpc = withVpc
    ? ec2.Vpc.fromVpcAttributes(stack, 'Vpc', { vpcId: 'vpc-0123456789abcdef0', availabilityZones: ['us-east-1a'], privateSubnetIds: ['subnet-0123456789abcdef0'], privateSubnetRouteTableIds: ['rtb-0123456789abcdef0'] })
    : undefined;
  const popDrain = new PopDrain(stack, 'PopDrain', { configPath, mailboxSource: 'registry', ...(vpc === undefined ? {} : { vpc }), ...props });
  return { stack, popDrain, template: Template.fromStack(stack) };
}

function statementsOf(s: ReturnType<typeof synth>, role: iam.IRole | undefined): Statement[] {
  const ref = JSON.stringify(s.stack.resolve(role!.roleName));
  const policies = { ...s.template.findResources('AWS::IAM::Policy'), ...s.template.findResources('AWS::IAM::ManagedPolicy') };
  return Object.values(policies)
    .filter((p) => ((p.Properties.Roles ?? []) as unknown[]).some((r) => JSON.stringify(r) === ref))
    .flatMap((p) => p.Properties.PolicyDocument.Statement as Statement[]);
}

function envOf(s: ReturnType<typeof synth>, fnName: string): Record<string, unknown> {
  const ref = JSON.stringify(s.stack.resolve(fnName));
  const fn = Object.entries(s.template.findResources('AWS::Lambda::Function')).find(([id]) => JSON.stringify({ Ref: id }) === ref)!;
  return fn[1].Properties.Environment.Variables as Record<string, unknown>;
}

/** The template with content hashes (assets) blanked: what remains must not depend on the mailboxes. */
const normalized = (t: Template): string => JSON.stringify(t.toJSON()).replace(/[0-9a-f]{64}/g, '<hash>');

describe("mailboxSource: 'registry'", () => {
  const s = synth(3);

  it('both functions read the registry', () => {
    expect(envOf(s, s.popDrain.schedulerFunction.functionName)).toMatchObject({ POPDRAIN_MAILBOX_SOURCE: 'registry' });
    expect(envOf(s, s.popDrain.drainerFunction.functionName)).toMatchObject({ POPDRAIN_MAILBOX_SOURCE: 'registry' });
    expect(s.popDrain.mailboxSource).toBe('registry');
  });

  it('the scheduler may read and seed only the registry partition', () => {
    const st = statementsOf(s, s.popDrain.schedulerFunction.role).find((x) => x.Sid === 'ReadAndSeedRegistry');
    expect(st).toMatchObject({
      Action: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem'],
      Condition: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': [REGISTRY_PARTITION] } },
    });
  });

  it('the drainer reads secrets under the prefix and writes only those tagged rotating', () => {
    const statements = statementsOf(s, s.popDrain.drainerFunction.role).filter((x) => x.Sid?.includes('Secret') || x.Sid?.includes('Rotated'));
    const prefixArn = { 'Fn::Sub': 'arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:popdrain/*' };
    expect(statements).toEqual([
      expect.objectContaining({ Sid: 'ReadMailboxSecrets', Action: 'secretsmanager:GetSecretValue', Resource: prefixArn }),
      expect.objectContaining({
        Sid: 'SaveRotatedRefreshTokens',
        Action: ['secretsmanager:PutSecretValue', 'secretsmanager:UpdateSecretVersionStage'],
        Resource: prefixArn,
        Condition: { StringEquals: { 'secretsmanager:ResourceTag/popdrain:rotating': 'true' } },
      }),
    ]);
  });

  it('10,000 mailboxes give the same template as 3, byte for byte but for asset hashes', () => {
    const large = synth(10_000);
    expect(large.popDrain.mailboxes).toHaveLength(10_000);
    expect(normalized(large.template)).toBe(normalized(s.template));
    expect(JSON.stringify(large.template.toJSON()).length).toBe(JSON.stringify(s.template.toJSON()).length);
  });

  it('a secret outside the prefix, or a prefix with a wildcard, stops synth', () => {
    const stack = new Stack(testApp(), 'Outside');
    const configPath = writeMailboxFile({ mailboxes: [mailbox('a'), mailbox('b', { auth: { secret: 'legacy/b' } })] });
    expect(() => new PopDrain(stack, 'PopDrain', { configPath, mailboxSource: 'registry' })).toThrow(/mailbox 2 "b": auth\.secret: "legacy\/b" is not under the secret name prefix "popdrain\/"/);
    expect(() => synth(1, { secretNamePrefix: 'popdrain/*' })).toThrow(/secretNamePrefix: "popdrain\/\*" must be/);
    expect(() => synth(1, { secretNamePrefix: 'team-a/' })).toThrow(/not under the secret name prefix "team-a\/"/);
  });

  it('synthesizes under the AwsSolutions checks with zero unacknowledged findings (the prefix grant is acknowledged with why)', () => {
    const app = new App({ outdir: mkdtempSync(join(tmpdir(), 'popdrain-registry-nag-')), context: { ...cdkJsonContext(), 'aws:cdk:bundling-stacks': [] } });
    new PopDrainStack(app, 'RegistryNag', { popDrain: { configPath: writeMailboxFile({ mailboxes: [mailbox('a')] }), mailboxSource: 'registry' } });
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    expect(() => app.synth()).not.toThrow();
  });

  it('with a VPC, the VPC drainer exists even when no seeded mailbox needs it (one may be added later)', () => {
    const v = synth(2, {}, true);
    expect(v.popDrain.vpcDrainerFunction).toBeDefined();
    expect(v.popDrain.vpcQueue).toBeDefined();
  });
});

describe("mailboxSource: 'file' (the default) is unchanged", () => {
  it('no POPDRAIN_MAILBOX_SOURCE, one ARN per secret', () => {
    const stack = new Stack(testApp(), 'File');
    const popDrain = new PopDrain(stack, 'PopDrain', { configPath: writeMailboxFile({ mailboxes: [mailbox('a')] }) });
    const template = Template.fromStack(stack);
    expect(JSON.stringify(template.toJSON())).not.toContain('POPDRAIN_MAILBOX_SOURCE');
    expect(JSON.stringify(template.toJSON())).not.toContain('ReadAndSeedRegistry');
    expect(popDrain.mailboxSource).toBe('file');
  });
});
