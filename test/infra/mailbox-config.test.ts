/**
 * The mailbox file with its CA files inlined reaches the Lambdas, and building the construct
 * writes nothing outside the cloud assembly (cdk.out): no temp file left behind per synth.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PopDrain } from '../../infra/constructs/pop-drain.js';
import type { PopDrainProps } from '../../infra/constructs/pop-drain-props.js';
import { mailbox, testApp, writeFile, writeMailboxFile } from './support.js';

const PEM = '-----BEGIN CERTIFICATE-----\nMIIBstaged\n-----END CERTIFICATE-----\n';

describe('a CA file named in the config', () => {
  let configPath: string;
  let watchedTmp: string;
  const savedTmpdir = process.env.TMPDIR;

  beforeEach(() => {
    const caFile = writeFile('staged-ca.pem', PEM);
    configPath = writeMailboxFile({ mailboxes: [mailbox('tls', { tlsOptions: { caFile } }), mailbox('plain')] });
    // os.tmpdir() reads TMPDIR on every call: anything the construct writes there shows up here.
    watchedTmp = mkdtempSync(join(tmpdir(), 'popdrain-watched-tmp-'));
    process.env.TMPDIR = watchedTmp;
  });

  afterEach(() => {
    rmSync(watchedTmp, { recursive: true, force: true });
    if (savedTmpdir === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmpdir;
  });

  function build(props: Partial<PopDrainProps>, bundle: boolean): { popDrain: PopDrain; outdir: string; template: Template } {
    const outdir = mkdtempSync(join(savedTmpdir ?? '/tmp', 'popdrain-cdk-'));
    const app = testApp({ bundle, outdir });
    const stack = new Stack(app, 'Test');
    const popDrain = new PopDrain(stack, 'PopDrain', { configPath, ...props });
    const template = Template.fromStack(stack);
    return { popDrain, outdir, template };
  }

  it('is inlined into the S3 asset; nothing is written outside cdk.out', () => {
    const { popDrain, outdir } = build({ configDelivery: 's3' }, false);
    const shipped = JSON.parse(readFileSync(join(outdir, `asset.${popDrain.configAsset!.assetHash}.json`), 'utf8')) as {
      mailboxes: Array<{ tlsOptions?: Record<string, unknown> }>;
    };
    expect(shipped.mailboxes.map((m) => m.tlsOptions)).toEqual([{ caPem: PEM }, undefined]);
    expect(readdirSync(watchedTmp)).toEqual([]);
  });

  it('is inlined into each bundle; nothing is written outside cdk.out', () => {
    const { popDrain, outdir, template } = build({}, true);
    const codes = Object.values(template.findResources('AWS::Lambda::Function')).map((r) => (r.Properties.Code as { S3Key: string }).S3Key);
    expect(codes).toHaveLength(2);
    for (const key of codes) {
      const shipped = JSON.parse(readFileSync(join(outdir, `asset.${key.replace(/\.zip$/, '')}`, 'mailboxes.json'), 'utf8')) as {
        mailboxes: Array<{ tlsOptions?: Record<string, unknown> }>;
      };
      expect(shipped.mailboxes.map((m) => m.tlsOptions)).toEqual([{ caPem: PEM }, undefined]);
    }
    expect(popDrain.configAsset).toBeUndefined();
    expect(readdirSync(watchedTmp)).toEqual([]);
  }, 180_000);
});
