/**
 * What lib/drain/config.ts cannot know about a mailbox file, because it depends on the
 * deployment: logins come from AWS Secrets Manager only (and their names must not widen the
 * IAM grant), VPC mailboxes need the VPC drainer, and the drainer's /tmp must hold the largest
 * message. A pure decision: the facts in, the problems and the /tmp size out.
 */
import { localOnlySettings, type ConfiguredMailbox } from '../../lib/drain/config.js';

/** The drainer's /tmp when no mailbox needs more: spooled messages over 1 MiB live there. */
export const DEFAULT_EPHEMERAL_MIB = 2048;
/** Added to the largest `maxMessageSize` when the /tmp size is derived from it. */
export const EPHEMERAL_HEADROOM_MIB = 512;
/** The most /tmp a Lambda function can have (10 GiB). */
export const MAX_EPHEMERAL_MIB = 10240;
const MIB = 1024 * 1024;

/** Secrets Manager secret names: 1-512 of these characters (so never an IAM wildcard). */
const SECRET_NAME = /^[A-Za-z0-9/_+=.@-]{1,512}$/;
const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}$/;

export interface DeploymentFacts {
  /** The `ephemeralStorageSize` prop in MiB, when given. */
  readonly ephemeralStorageMib?: number;
  /** Whether the `vpc` prop is given (a VPC drainer can exist). */
  readonly hasVpc: boolean;
  /** Secrets are granted by this name prefix (mailboxes in the registry): every secret must be under it. */
  readonly secretNamePrefix?: string;
}

/** The name part of a secret given by name or ARN (an ARN's name keeps its random suffix). */
function secretName(secretId: string): string {
  return secretId.startsWith('arn:') ? secretId.slice(secretId.indexOf(':secret:') + ':secret:'.length) : secretId;
}

export interface DeploymentVerdict {
  /** One line per problem, naming the mailbox and the field; empty when the file deploys. */
  readonly problems: readonly string[];
  /** The drainer's /tmp size in MiB. */
  readonly ephemeralMib: number;
}

/** Where a mailbox is named in errors, as lib/drain/config.ts names it. */
function where(index: number, mailbox: ConfiguredMailbox): string {
  return `mailbox ${index + 1} "${mailbox.id}"`;
}

function secretProblem(index: number, m: ConfiguredMailbox): string | undefined {
  const secret = m.secret;
  if (secret.type !== 'secrets-manager') {
    const field = secret.type === 'env' ? 'passwordEnv' : secret.type === 'file' ? 'passwordFile' : secret.type === 'command' ? 'passwordCommand' : 'oauth2';
    return `${where(index, m)}: auth.${field}: a deployment reads mailbox logins from AWS Secrets Manager only; use auth.secret (a secret name or ARN)`;
  }
  if (secret.secretId.startsWith('arn:')) {
    return SECRET_ARN.test(secret.secretId) ? undefined : `${where(index, m)}: auth.secret: "${secret.secretId}" is not a Secrets Manager secret ARN`;
  }
  return SECRET_NAME.test(secret.secretId)
    ? undefined
    : `${where(index, m)}: auth.secret: "${secret.secretId}" is not a Secrets Manager secret name (1-512 of A-Z a-z 0-9 / _ + = . @ -)`;
}

/** Checks every mailbox against the deployment and sizes the drainer's /tmp. */
export function checkForDeployment(mailboxes: readonly ConfiguredMailbox[], facts: DeploymentFacts): DeploymentVerdict {
  const problems: string[] = [];
  if (facts.secretNamePrefix !== undefined && !/^[A-Za-z0-9/_+=.@-]{1,400}$/.test(facts.secretNamePrefix)) {
    problems.push(`secretNamePrefix: "${facts.secretNamePrefix}" must be 1-400 characters of a secret name (A-Z a-z 0-9 / _ + = . @ -), no wildcard`);
  }
  const explicitMib = facts.ephemeralStorageMib;
  let ephemeralMib = explicitMib ?? DEFAULT_EPHEMERAL_MIB;
  mailboxes.forEach((m, index) => {
    const secret = secretProblem(index, m);
    if (secret !== undefined) problems.push(secret);
    for (const field of localOnlySettings(m)) {
      problems.push(`${where(index, m)}: ${field}: ${field === 'mda' ? 'a deployment stores in S3 and never runs a command from its configuration' : 'one machine only (popdrain drain/poll --config); a deployment stores in S3 and bounds runs by its Lambda timeout'}`);
    }
    const prefix = facts.secretNamePrefix;
    if (secret === undefined && prefix !== undefined && m.secret.type === 'secrets-manager' && !secretName(m.secret.secretId).startsWith(prefix)) {
      problems.push(`${where(index, m)}: auth.secret: "${m.secret.secretId}" is not under the secret name prefix "${prefix}" that the drainers may read (see docs/deploy.md, moving secret names)`);
    }
    if (m.placement === 'vpc' && !facts.hasVpc) {
      problems.push(`${where(index, m)}: placement: "vpc" needs the vpc prop of PopDrain (the drainer that runs in the VPC)`);
    }
    if (m.maxMessageBytes === undefined) return;
    const needMib = Math.ceil(m.maxMessageBytes / MIB);
    if (explicitMib !== undefined) {
      if (needMib > explicitMib) {
        problems.push(`${where(index, m)}: limits.maxMessageSize: ${m.maxMessageBytes} bytes does not fit the drainer's ephemeralStorageSize of ${explicitMib} MiB`);
      }
      return;
    }
    const wanted = needMib + EPHEMERAL_HEADROOM_MIB;
    if (wanted > MAX_EPHEMERAL_MIB) {
      problems.push(`${where(index, m)}: limits.maxMessageSize: ${m.maxMessageBytes} bytes exceeds the 10 GiB a Lambda function's /tmp can hold`);
    } else {
      ephemeralMib = Math.max(ephemeralMib, wanted);
    }
  });
  return { problems, ephemeralMib };
}
