/**
 * Access to the mailboxes' Secrets Manager secrets: one ARN per secret (never a wildcard),
 * packed into as few IAM statements as CDK can place.
 */
import { Fn, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';

/** The size (as CDK measures it) up to which secret ARNs share one IAM statement. */
export const SECRET_STATEMENT_CHARS = 5400;
/** IAM attaches at most 20 managed policies to a role (10 without a quota increase). */
export const MAX_SECRET_STATEMENTS = 19;

/** The ARN of a secret given by ARN, or by name (any suffix Secrets Manager appended). */
export function secretArn(secretId: string): string {
  if (secretId.startsWith('arn:')) return secretId;
  // A name: the ARN ends with "-" and the six random characters Secrets Manager appends.
  // Fn::Sub keeps the token short, which is what CDK measures when it packs policies.
  return Fn.sub(`arn:\${AWS::Partition}:secretsmanager:\${AWS::Region}:\${AWS::AccountId}:secret:${secretId}-??????`);
}

/**
 * Splits items, in order, into runs whose summed sizes stay within `limit` (an item larger
 * than the limit gets a run of its own). A pure decision, unit-tested.
 */
export function packBySize<T>(items: readonly T[], sizeOf: (item: T) => number, limit: number): T[][] {
  const chunks: T[][] = [];
  let size = Infinity;
  for (const item of items) {
    const length = sizeOf(item);
    if (size + length > limit) {
      chunks.push([]);
      size = 0;
    }
    chunks[chunks.length - 1]!.push(item);
    size += length;
  }
  return chunks;
}

/**
 * One ARN per secret, packed into statements (Sids `<sid>`, `<sid>2`, ...) of at most
 * SECRET_STATEMENT_CHARS characters. IAM caps a role's inline policies at 10,240 characters
 * and a managed policy at 6,144; CDK moves whole statements that do not fit inline into
 * overflow managed policies, so statements that each fit one are what lets a long list of
 * secrets be packed at all. Returns the number of statements.
 */
export function grantSecrets(role: iam.Role, sid: string, action: string | readonly string[], secretIds: readonly string[]): number {
  const stack = Stack.of(role);
  const chunks = packBySize(secretIds.map(secretArn), (arn) => JSON.stringify(stack.resolve(arn)).length + 1, SECRET_STATEMENT_CHARS);
  chunks.forEach((resources, index) => {
    role.addToPrincipalPolicy(new iam.PolicyStatement({ sid: index === 0 ? sid : `${sid}${index + 1}`, actions: typeof action === 'string' ? [action] : [...action], resources }));
  });
  return chunks.length;
}

/**
 * What the drainer does to a secret whose refresh token rotates: a new version that is not yet
 * current, then AWSCURRENT moved to it only from the version it read (a compare-and-swap, see
 * lib/adapters/aws/secret-version-cas.ts).
 */
export const ROTATION_ACTIONS = ['secretsmanager:PutSecretValue', 'secretsmanager:UpdateSecretVersionStage'] as const;

/** The tag that marks a secret whose refresh token rotates: the drainer may write it (ABAC). */
export const ROTATING_SECRET_TAG = 'popdrain:rotating';

/** Every secret whose name starts with `prefix`, as one ARN pattern (any region-specific suffix). */
export function secretPrefixArn(prefix: string): string {
  return Fn.sub(`arn:\${AWS::Partition}:secretsmanager:\${AWS::Region}:\${AWS::AccountId}:secret:${prefix}*`);
}

/**
 * Grants by naming convention, for mailboxes in the registry: read every secret under `prefix`,
 * and write (rotate a refresh token) only those of them tagged `popdrain:rotating=true`. Two
 * statements whatever the number of mailboxes, so the policy never grows with the fleet.
 */
export function grantSecretPrefix(role: iam.Role, prefix: string): string {
  const resource = secretPrefixArn(prefix);
  role.addToPrincipalPolicy(new iam.PolicyStatement({ sid: 'ReadMailboxSecrets', actions: ['secretsmanager:GetSecretValue'], resources: [resource] }));
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      sid: 'SaveRotatedRefreshTokens',
      actions: [...ROTATION_ACTIONS],
      resources: [resource],
      conditions: { StringEquals: { [`secretsmanager:ResourceTag/${ROTATING_SECRET_TAG}`]: 'true' } },
    }),
  );
  return resource;
}
