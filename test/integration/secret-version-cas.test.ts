/**
 * The compare-and-swap on AWSCURRENT (lib/adapters/aws/secret-version-cas.ts) and the claimed
 * redemption of a refresh token (refresh-token-redemption.ts) with the real Secrets Manager
 * client against the loopback JSON endpoint, whose versions and staging labels behave as the
 * Secrets Manager API reference documents them.
 */
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CLAIM_TTL_MS, CLAIM_WAIT_MS, REDEMPTION_CLAIM_FIELD, redeemOnce } from '../../lib/adapters/aws/refresh-token-redemption.js';
import { SecretVersionCas } from '../../lib/adapters/aws/secret-version-cas.js';
import { DrainError } from '../../lib/drain/errors.js';
import { PUT_SECRET_VALUE, startAwsJsonEndpoint, type AwsJsonEndpoint } from '../../testkit/aws/json-endpoint.js';

let endpoint: AwsJsonEndpoint;
let client: SecretsManagerClient;
let clock: number;

beforeEach(async () => {
  endpoint = await startAwsJsonEndpoint();
  client = new SecretsManagerClient({ endpoint: endpoint.url, region: 'us-east-1', credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'test-secret' }, maxAttempts: 1 });
  clock = 1_000_000;
});
afterEach(async () => {
  client.destroy();
  await endpoint.close();
});

const doc = (refreshToken: string, extra: Record<string, unknown> = {}) => JSON.stringify({ oauth2: { tokenEndpoint: 'https://idp.example/token', clientId: 'c', refreshToken }, ...extra });
const current = (name: string) => JSON.parse(endpoint.secretString(name)!) as Record<string, unknown> & { oauth2: { refreshToken: string } };

describe('SecretVersionCas', () => {
  it('of two swaps from the same version, the first wins and the second learns it lost', async () => {
    endpoint.putSecret('s', doc('r1'));
    const cas = new SecretVersionCas(client);
    const read = await cas.current('s');
    const won = await cas.swap('s', read.versionId, doc('r2'));
    expect(won).toBeDefined();
    expect(await cas.swap('s', read.versionId, doc('r3'))).toBeUndefined();
    expect(current('s').oauth2.refreshToken).toBe('r2');
    const stages = endpoint.secretStages('s');
    expect(stages.find((v) => v.versionId === won)?.stages).toEqual(['AWSCURRENT']);
    expect(stages.find((v) => v.versionId === read.versionId)?.stages).toEqual(['AWSPREVIOUS']);
    // the loser's version was written but never became current; it holds the pending label
    expect(stages.at(-1)?.stages).toEqual(['POPDRAIN_PENDING']);
    // every write named its own version id (ClientRequestToken) and kept AWSCURRENT where it was
    for (const put of endpoint.requestsFor(PUT_SECRET_VALUE)) expect(put.body).toMatchObject({ VersionStages: ['POPDRAIN_PENDING'], ClientRequestToken: expect.any(String) });
  });

  it('a retried PutSecretValue with the same token and value is a no-op; a different value fails', async () => {
    endpoint.putSecret('s', doc('r1'));
    const cas = new SecretVersionCas(client, () => 'fixed-version-id');
    const read = await cas.current('s');
    expect(await cas.swap('s', read.versionId, doc('r2'))).toBe('fixed-version-id');
    expect(endpoint.secretVersions('s')).toBe(2);
    await expect(cas.swap('s', 'fixed-version-id', doc('r3'))).rejects.toThrow(/ClientRequestToken already exists/);
  });
});

describe('redeemOnce', () => {
  const now = () => clock;
  const sleep = async (ms: number) => {
    clock += ms;
  };

  it('claims, redeems, and saves the rotated token with the claim removed, other fields kept', async () => {
    endpoint.putSecret('s', doc('r1', { note: 'kept' }));
    const seen: string[] = [];
    const r = await redeemOnce({
      cas: new SecretVersionCas(client),
      secretId: 's',
      owner: 'env-a:mbx',
      now,
      sleep,
      redeem: async (raw) => {
        // while redeeming, the secret carries this run's claim
        expect(current('s')[REDEMPTION_CLAIM_FIELD]).toEqual({ owner: 'env-a:mbx', until: clock + CLAIM_TTL_MS });
        seen.push((raw.oauth2 as { refreshToken: string }).refreshToken);
        return { accessToken: 'at', expiresAt: clock + 3_600_000, refreshToken: 'r2' };
      },
    });
    expect(seen).toEqual(['r1']);
    expect(r.saved).toBe(true);
    expect(current('s')).toEqual({ oauth2: { tokenEndpoint: 'https://idp.example/token', clientId: 'c', refreshToken: 'r2' }, note: 'kept' });
  });

  it("waits for another run's claim, then redeems the token that run saved", async () => {
    endpoint.putSecret('s', doc('r1', { [REDEMPTION_CLAIM_FIELD]: { owner: 'env-b:mbx', until: clock + CLAIM_TTL_MS } }));
    let polls = 0;
    const seen: string[] = [];
    await redeemOnce({
      cas: new SecretVersionCas(client),
      secretId: 's',
      owner: 'env-a:mbx',
      now,
      sleep: async (ms) => {
        clock += ms;
        // the other run saves r2 (and drops its claim) after a few polls
        if (++polls === 3) endpoint.putSecret('s', doc('r2'));
      },
      redeem: async (raw) => {
        seen.push((raw.oauth2 as { refreshToken: string }).refreshToken);
        return { accessToken: 'at', expiresAt: clock + 3_600_000, refreshToken: 'r3' };
      },
    });
    expect(polls).toBe(3);
    expect(seen).toEqual(['r2']);
    expect(current('s').oauth2.refreshToken).toBe('r3');
  });

  it('gives up (retryable) when a claim outlasts the wait, and takes over an expired one', async () => {
    endpoint.putSecret('s', doc('r1', { [REDEMPTION_CLAIM_FIELD]: { owner: 'env-b:mbx', until: clock + 10 * CLAIM_WAIT_MS } }));
    const redeem = async () => ({ accessToken: 'at', expiresAt: clock + 3_600_000, refreshToken: 'r2' });
    const error = await redeemOnce({ cas: new SecretVersionCas(client), secretId: 's', owner: 'env-a:mbx', now, sleep, redeem }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DrainError);
    expect(error).toMatchObject({ code: 'CREDENTIALS_FAILED', retryable: true });
    expect(current('s').oauth2.refreshToken).toBe('r1');

    clock += 10 * CLAIM_WAIT_MS; // the claimant died: its claim expired
    const r = await redeemOnce({ cas: new SecretVersionCas(client), secretId: 's', owner: 'env-a:mbx', now, sleep, redeem });
    expect(r.saved).toBe(true);
    expect(current('s').oauth2.refreshToken).toBe('r2');
    expect(current('s')[REDEMPTION_CLAIM_FIELD]).toBeUndefined();
  });

  it('a failed redemption releases the claim and leaves the token as it was', async () => {
    endpoint.putSecret('s', doc('r1'));
    const refused = new DrainError('CREDENTIALS_FAILED', 'invalid_grant', { phase: 'credentials', retryable: false });
    await expect(
      redeemOnce({ cas: new SecretVersionCas(client), secretId: 's', owner: 'env-a:mbx', now, sleep, redeem: async () => Promise.reject(refused) }),
    ).rejects.toBe(refused);
    expect(current('s')).toEqual(JSON.parse(doc('r1')));
  });
});
