/**
 * The example app (infra/app.ts) under cdk-nag's AwsSolutions checks. cdk-nag 3 is a policy
 * validation plugin: any finding without an acknowledgment makes `app.synth()` throw.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Validations } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { ServerlessChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { describe, expect, it } from 'vitest';
import { createPopDrainApp } from '../../infra/popdrain-stack.js';
import { cdkJsonContext } from './support.js';

function outdir(): string {
  return mkdtempSync(join(tmpdir(), 'popdrain-nag-'));
}

function acknowledgments(root: IConstruct): Array<{ path: string; id: string; reason: string }> {
  return root.node.findAll().flatMap((c) =>
    c.node.metadata
      .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((m) => Object.entries(m.data as Record<string, string>).map(([id, reason]) => ({ path: c.node.path, id, reason }))),
  );
}

describe('example app under AwsSolutions checks', () => {
  it('synthesizes with zero unacknowledged findings (functions bundled, as cdk synth does)', () => {
    const { app } = createPopDrainApp({ appProps: { outdir: outdir(), context: cdkJsonContext() } });
    const assembly = app.synth();
    expect(assembly.getStackByName('PopDrainStack').template.Resources).toBeDefined();
    // Two esbuild bundles: 45-57 s alone on two shared cores, 120 s under a load of 19.
  }, 240_000);

  it('acknowledges only with reasons that explain why', () => {
    const { app } = createPopDrainApp({ appProps: { outdir: outdir(), context: { ...cdkJsonContext(), 'aws:cdk:bundling-stacks': [] } } });
    const acks = acknowledgments(app);
    expect(acks.length).toBeGreaterThan(0);
    for (const ack of acks) {
      expect(ack.id.replace(/^Annotation::/i, ''), ack.path).toMatch(/^(AwsSolutions-[A-Z0-9]+(\[.+\])?|Serverless::Serverless-[A-Za-z]+)$/);
      expect(ack.reason.length, `${ack.path} ${ack.id}`).toBeGreaterThanOrEqual(80);
      expect(ack.reason, `${ack.path} ${ack.id}`).not.toMatch(/\b(todo|tbd|fixme|n\/a|not needed|ignore)\b/i);
      // Placed on the construct it is about, never on the stack or the app.
      expect(ack.path.split('/').length, `${ack.id} on ${ack.path}`).toBeGreaterThanOrEqual(3);
    }
  });

  it('the checks are live: an unacknowledged finding fails synth', () => {
    const { app, stack } = createPopDrainApp({ appProps: { outdir: outdir(), context: { ...cdkJsonContext(), 'aws:cdk:bundling-stacks': [] } } });
    new s3.Bucket(stack, 'Unchecked');
    expect(() => app.synth()).toThrow(/AwsSolutions-S1|AwsSolutions-S10|Validation failed/);
  });
});

describe('example app under the Serverless checks too', () => {
  it('synthesizes with zero unacknowledged findings of both packs', () => {
    const { app } = createPopDrainApp({ appProps: { outdir: outdir(), context: { ...cdkJsonContext(), 'aws:cdk:bundling-stacks': [] } } });
    Validations.of(app).addPlugins(new ServerlessChecks(app));
    expect(app.synth().getStackByName('PopDrainStack').template.Resources).toBeDefined();
  }, 120_000);

  it('the Serverless checks are live: a queue without a redrive policy fails synth', () => {
    const { app, stack } = createPopDrainApp({ appProps: { outdir: outdir(), context: { ...cdkJsonContext(), 'aws:cdk:bundling-stacks': [] } } });
    Validations.of(app).addPlugins(new ServerlessChecks(app));
    new sqs.Queue(stack, 'NoRedrive', { enforceSSL: true });
    expect(() => app.synth()).toThrow(/Serverless-SQSRedrivePolicy/);
  });
});
