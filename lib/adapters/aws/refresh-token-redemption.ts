/**
 * Redeeming a rotating OAuth2 refresh token at most once across execution environments and
 * mailboxes sharing the secret. The claim lives in the secret itself:
 *
 * 1. Read AWSCURRENT (no cache). If it carries another run's unexpired claim, wait (polling)
 *    until that run has saved the next token, then start again from its version.
 * 2. Claim: swap (secret-version-cas.ts) the read version for the same document plus
 *    `popdrainRedemption: { owner, until }`. Losing the swap means another run claimed or
 *    rotated first: start again.
 * 3. Redeem the refresh token of the version read (only the claimant does).
 * 4. Swap the claim for the document with the new refresh token (or, when the redemption
 *    failed, for the document as it was, releasing the claim).
 *
 * A claim whose owner died expires after CLAIM_TTL_MS; the next run takes it over (it then
 * presents a token that may have been redeemed: the one case this cannot rule out, a run that
 * died between the provider's answer and step 4).
 */
import { DrainError } from '../../drain/errors.js';
import type { TokenResult } from '../oauth2/token-client.js';
import type { SecretVersionCas } from './secret-version-cas.js';
import { describeSdkError, isRetryableSdkError } from './sdk-error.js';

/** The secret field that holds a run's claim on its refresh token. */
export const REDEMPTION_CLAIM_FIELD = 'popdrainRedemption';
/** How long a claim holds: longer than a token request's timeout. */
export const CLAIM_TTL_MS = 60_000;
/** How long a run waits for another's claim before giving up (retryable). */
export const CLAIM_WAIT_MS = 30_000;
export const CLAIM_POLL_MS = 200;

export interface RedemptionOptions {
  readonly cas: SecretVersionCas;
  readonly secretId: string;
  /** Who claims (an execution environment and mailbox), for the claim and the logs. */
  readonly owner: string;
  /** Redeem the refresh token of this secret document; may return a rotated one. */
  readonly redeem: (raw: Record<string, unknown>) => Promise<TokenResult>;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
}

export interface Redemption {
  readonly result: TokenResult;
  /** The secret document after the redemption (the rotated token in it, no claim). */
  readonly raw: Record<string, unknown>;
  /** False when the claim was lost before the new token was saved (it expired meanwhile). */
  readonly saved: boolean;
}

interface Claim {
  owner: string;
  until: number;
}

function claimOf(raw: Record<string, unknown>): Claim | undefined {
  const c = raw[REDEMPTION_CLAIM_FIELD];
  if (c === null || typeof c !== 'object') return undefined;
  const { owner, until } = c as Record<string, unknown>;
  return typeof owner === 'string' && typeof until === 'number' ? { owner, until } : undefined;
}

function withoutClaim(raw: Record<string, unknown>): Record<string, unknown> {
  const { [REDEMPTION_CLAIM_FIELD]: _claim, ...rest } = raw;
  return rest;
}

function parse(secretId: string, text: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    raw = undefined;
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new DrainError('CREDENTIALS_FAILED', `secret "${secretId}" is not a JSON object (see docs/secrets.md)`, { phase: 'credentials', retryable: false });
  }
  return raw as Record<string, unknown>;
}

function casFailure(secretId: string, step: string, error: unknown): DrainError {
  if (error instanceof DrainError) return error;
  return new DrainError('CREDENTIALS_FAILED', `Secrets Manager ${step} of secret "${secretId}" failed: ${describeSdkError(error)}`, {
    phase: 'credentials',
    retryable: isRetryableSdkError(error),
    cause: new Error(describeSdkError(error)),
  });
}

export async function redeemOnce(options: RedemptionOptions): Promise<Redemption> {
  const { cas, secretId, owner } = options;
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const waitUntil = now() + CLAIM_WAIT_MS;
  for (;;) {
    let version;
    try {
      version = await cas.current(secretId);
    } catch (error) {
      throw casFailure(secretId, 'GetSecretValue', error);
    }
    const raw = parse(secretId, version.secretString);
    const claim = claimOf(raw);
    if (claim !== undefined && claim.owner !== owner && claim.until > now()) {
      if (now() >= waitUntil) {
        throw new DrainError('CREDENTIALS_FAILED', `secret "${secretId}": another run has been redeeming its refresh token for more than ${CLAIM_WAIT_MS / 1000} s`, {
          phase: 'credentials',
          retryable: true,
        });
      }
      await sleep(CLAIM_POLL_MS);
      continue;
    }
    const clean = withoutClaim(raw);
    let claimed: string | undefined;
    try {
      claimed = await cas.swap(secretId, version.versionId, JSON.stringify({ ...clean, [REDEMPTION_CLAIM_FIELD]: { owner, until: now() + CLAIM_TTL_MS } }));
    } catch (error) {
      throw casFailure(secretId, 'claiming the refresh token (PutSecretValue, UpdateSecretVersionStage)', error);
    }
    if (claimed === undefined) continue;

    let result: TokenResult;
    try {
      result = await options.redeem(clean);
    } catch (error) {
      // Release the claim: the document as it was (the token may still be good).
      await cas.swap(secretId, claimed, JSON.stringify(clean)).catch(() => undefined);
      throw error;
    }
    const oauth2 = (clean.oauth2 ?? {}) as Record<string, unknown>;
    const next = result.refreshToken === undefined ? clean : { ...clean, oauth2: { ...oauth2, refreshToken: result.refreshToken } };
    let saved: string | undefined;
    try {
      saved = await cas.swap(secretId, claimed, JSON.stringify(next));
    } catch {
      saved = undefined;
    }
    return { result, raw: next, saved: saved !== undefined };
  }
}
