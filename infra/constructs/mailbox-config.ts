/**
 * How the mailbox file reaches the Lambdas: copied into each bundle (`POPDRAIN_CONFIG_PATH`)
 * or shipped as an S3 asset they read at cold start (`POPDRAIN_CONFIG_S3_URI`). A CA file
 * named in the config (`tlsOptions.caFile`) is a path on the synthesizing machine, so its PEM
 * is inlined into the shipped copy (`inlineCaFiles`), which is staged inside the cloud
 * assembly (cdk.out) and nowhere else.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Stage } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Asset } from 'aws-cdk-lib/aws-s3-assets';
import type { Construct } from 'constructs';
import type { ConfiguredMailbox } from '../../lib/drain/config.js';
import type { ConfigDelivery } from './pop-drain-props.js';

/** The mailbox file's name inside each bundle (`POPDRAIN_CONFIG_PATH`). */
export const BUNDLED_CONFIG_NAME = 'mailboxes.json';

/**
 * The file the Lambdas read, as text, with every `tlsOptions.caFile` replaced by the PEM
 * lib/drain/config.ts read from it (`caPem`); undefined when no mailbox names a CA file (the
 * file then ships unchanged).
 */
export function inlineCaFiles(rawText: string, mailboxes: readonly ConfiguredMailbox[]): string | undefined {
  if (mailboxes.every((m) => m.caFile === undefined)) return undefined;
  const raw = JSON.parse(rawText) as {
    defaults?: { tlsOptions?: Record<string, unknown> };
    mailboxes: Array<{ tlsOptions?: Record<string, unknown> }>;
  };
  if (raw.defaults?.tlsOptions !== undefined) delete raw.defaults.tlsOptions.caFile;
  raw.mailboxes.forEach((entry, index) => {
    const parsed = mailboxes[index];
    if (parsed?.caFile === undefined) return;
    const { caFile: _caFile, ...rest } = entry.tlsOptions ?? {};
    entry.tlsOptions = { ...rest, caPem: parsed.tlsOptions?.caPem };
  });
  return `${JSON.stringify(raw, null, 2)}\n`;
}

export interface MailboxConfigDeliveryProps {
  /** The validated mailbox file. */
  readonly configPath: string;
  /** Its mailboxes, as lib/drain/config.ts loaded them. */
  readonly mailboxes: readonly ConfiguredMailbox[];
  /**
   * Copied into each bundle, or shipped as an S3 asset.
   * @default 'bundle'
   */
  readonly configDelivery?: ConfigDelivery;
}

/**
 * Builds in the given scope (the PopDrain), not in a construct of its own, so the asset keeps
 * its construct path (`<PopDrain>/MailboxConfig`).
 */
export class MailboxConfigDelivery {
  /** The file the Lambdas get (the original, or a copy with CA files inlined). */
  public readonly stagedPath: string;
  /** The mailbox file as an S3 asset (`configDelivery: 's3'` only). */
  public readonly asset?: Asset;

  constructor(scope: Construct, props: MailboxConfigDeliveryProps) {
    this.stagedPath = stageConfig(scope, props.configPath, props.mailboxes);
    if (props.configDelivery === 's3') {
      this.asset = new Asset(scope, 'MailboxConfig', { path: this.stagedPath });
    }
  }

  /** Where the functions find the file. */
  environment(): Record<string, string> {
    return this.asset === undefined ? { POPDRAIN_CONFIG_PATH: BUNDLED_CONFIG_NAME } : { POPDRAIN_CONFIG_S3_URI: this.asset.s3ObjectUrl };
  }

  /** Lets a function's role read the asset (nothing to grant for a bundled file). */
  grantRead(role: iam.Role): void {
    if (this.asset === undefined) return;
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReadMailboxConfig',
        actions: ['s3:GetObject'],
        resources: [this.asset.bucket.arnForObjects(this.asset.s3ObjectKey)],
      }),
    );
  }
}

/**
 * The path of the file to ship: the mailbox file itself, or, when CA files are inlined, a copy
 * in the cloud assembly's directory (cdk.out), beside the assets CDK stages there. Its folder
 * is named by the content's hash (the same file in the same place at every synth) and nothing
 * is written outside cdk.out; the file keeps the name `mailboxes.json`, so the asset staged from it
 * (and its hash) is what it was when the copy lived in a temp folder.
 */
function stageConfig(scope: Construct, configPath: string, mailboxes: readonly ConfiguredMailbox[]): string {
  const inlined = inlineCaFiles(readFileSync(configPath, 'utf8'), mailboxes);
  if (inlined === undefined) return resolve(configPath);
  const stage = Stage.of(scope);
  if (stage === undefined) throw new Error('PopDrain: must be defined within an App or a Stage (its mailbox file is staged in the cloud assembly)');
  const digest = createHash('sha256').update(inlined).digest('hex').slice(0, 32);
  const dir = join(stage.assetOutdir, `popdrain-config.${digest}`);
  const staged = join(dir, BUNDLED_CONFIG_NAME);
  mkdirSync(dir, { recursive: true });
  writeFileSync(staged, inlined);
  return staged;
}
