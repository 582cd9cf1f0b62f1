/**
 * Shared set-up of the PopDrain construct tests (pop-drain-*.test.ts): the default mailbox file,
 * a synth that returns the template and a resolver for tokens, and readers for what the
 * template grants (role statements, function environments, resource counts).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as iam from 'aws-cdk-lib/aws-iam';
import { expect } from 'vitest';
import { PopDrain } from '../../infra/constructs/pop-drain.js';
import type { PopDrainProps } from '../../infra/constructs/pop-drain-props.js';
import { mailbox, testApp, writeMailboxFile } from './support.js';

export const ROTATING_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:popdrain/arn-given-AbCdEf';

/** The default fixture: a rotating secret by name, a secret by ARN, a shared plain secret. */
export const FIXTURE = {
  version: 1,
  mailboxes: [
    mailbox('alpha', { auth: { mechanism: 'XOAUTH2', secret: 'popdrain/alpha', rotatingRefreshToken: true } }),
    mailbox('beta', { auth: { secret: ROTATING_ARN, rotatingRefreshToken: true }, schedule: { everyMinutes: 10 } }),
    mailbox('gamma', { auth: { secret: 'popdrain/shared' }, schedule: { everyMinutes: 15 } }),
    mailbox('delta', { auth: { secret: 'popdrain/shared' }, schedule: { everyMinutes: 15 } }),
  ],
};

export interface Synth {
  stack: Stack;
  popDrain: PopDrain;
  template: Template;
  outdir: string;
  configPath: string;
  /** A token in its CloudFormation form ({ Ref }, { Fn::GetAtt }, ...). */
  cfn: (token: unknown) => unknown;
}

export function synth(props: Omit<PopDrainProps, 'configPath'> & { configPath?: string } = {}, options: { bundle?: boolean; extra?: (stack: Stack) => Partial<PopDrainProps> } = {}): Synth {
  const outdir = mkdtempSync(join(tmpdir(), 'popdrain-cdk-'));
  const app = testApp({ bundle: options.bundle === true, outdir });
  const stack = new Stack(app, 'Test');
  const configPath = props.configPath ?? writeMailboxFile(FIXTURE);
  const popDrain = new PopDrain(stack, 'PopDrain', { ...props, configPath, ...(options.extra?.(stack) ?? {}) });
  return { stack, popDrain, template: Template.fromStack(stack), outdir, configPath, cfn: (token) => stack.resolve(token) };
}

export type Statement = { Sid?: string; Effect: string; Action: string | string[]; Resource: unknown };

/** Every statement of every policy attached to a role, normalized and sorted. */
export function roleStatements(s: Synth, role: iam.IRole | undefined): Array<{ Sid?: string; Effect: string; Action: string[]; Resource: unknown[] }> {
  expect(role).toBeDefined();
  const ref = s.cfn((role as iam.IRole).roleName);
  const policies = { ...s.template.findResources('AWS::IAM::Policy'), ...s.template.findResources('AWS::IAM::ManagedPolicy') };
  const statements: Statement[] = [];
  for (const policy of Object.values(policies)) {
    const roles = (policy.Properties.Roles ?? []) as unknown[];
    if (roles.some((r) => JSON.stringify(r) === JSON.stringify(ref))) statements.push(...(policy.Properties.PolicyDocument.Statement as Statement[]));
  }
  return statements
    .map((st) => ({
      ...(st.Sid === undefined ? {} : { Sid: st.Sid }),
      Effect: st.Effect,
      Action: (Array.isArray(st.Action) ? st.Action : [st.Action]).slice().sort(),
      Resource: Array.isArray(st.Resource) ? st.Resource : [st.Resource],
    }))
    .sort((a, b) => ((a.Sid ?? '\uffff') < (b.Sid ?? '\uffff') ? -1 : 1));
}

/** What active tracing adds to each function's role (X-Ray has no resource-level permissions). */
export const XRAY = { Effect: 'Allow', Action: ['xray:PutTelemetryRecords', 'xray:PutTraceSegments'], Resource: ['*'] };

export function allow(Sid: string | undefined, actions: string[], resources: unknown[]) {
  return { ...(Sid === undefined ? {} : { Sid }), Effect: 'Allow', Action: actions.slice().sort(), Resource: resources };
}

/** The ARN the construct derives from a secret name (CloudFormation form). */
export function secretNameArn(name: string): unknown {
  return { 'Fn::Sub': `arn:\${AWS::Partition}:secretsmanager:\${AWS::Region}:\${AWS::AccountId}:secret:${name}-??????` };
}

export function importedVpc(stack: Stack): ec2.IVpc {
  return ec2.Vpc.fromVpcAttributes(stack, 'Vpc', {
    vpcId: 'vpc-0123456789abcdef0',
    availabilityZones: ['us-east-1a'],
    privateSubnetIds: ['subnet-0123456789abcdef0'],
    privateSubnetRouteTableIds: ['rtb-0123456789abcdef0'],
  });
}

export function resourceCounts(template: Template): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of Object.values(template.toJSON().Resources as Record<string, { Type: string }>)) counts[r.Type] = (counts[r.Type] ?? 0) + 1;
  return counts;
}

export function environmentOf(s: Synth, fn: { functionName: string }): Record<string, unknown> {
  const ref = JSON.stringify(s.cfn(fn.functionName));
  const functions = s.template.findResources('AWS::Lambda::Function');
  const match = Object.entries(functions).find(([logicalId]) => JSON.stringify({ Ref: logicalId }) === ref);
  expect(match).toBeDefined();
  return (match![1].Properties.Environment?.Variables ?? {}) as Record<string, unknown>;
}
