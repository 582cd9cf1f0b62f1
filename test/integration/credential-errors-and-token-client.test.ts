// The errors of SecretsManagerCredentials (never quoting a secret), and the OAuth2 token client
// (global fetch) against a loopback OAuth2 token endpoint.
import { describe, expect, it } from 'vitest';
import { clientCredentialsGrant, refreshTokenGrant } from '../../lib/adapters/oauth2/token-client.js';
import { GET_SECRET_VALUE } from '../../testkit/aws/json-endpoint.js';
import { drainErrorOf as failure } from '../support/drain-error.js';
import {
  CLIENT_ID,
  CLIENT_SECRET,
  endpoint,
  expectNoSecrets,
  mailbox,
  now,
  oauth2Secret,
  PASSWORD,
  provider,
  REFRESH_TOKEN,
  restartTokenServer,
  setUpCredentialsWorld,
  START,
  tokens,
} from '../support/credentials-world.js';

setUpCredentialsWorld();

describe('SecretsManagerCredentials', () => {
  describe('errors', () => {
    const ALL_SECRETS = [PASSWORD, CLIENT_SECRET, REFRESH_TOKEN];

    it('maps a missing secret to CREDENTIALS_FAILED, not retryable', async () => {
      const error = await failure(provider().get(mailbox({ type: 'secrets-manager', secretId: 'pop/missing' })));
      expect(error).toMatchObject({ code: 'CREDENTIALS_FAILED', phase: 'credentials', retryable: false });
      expect(error.message).toBe(
        `Secrets Manager GetSecretValue of secret "pop/missing" failed: ResourceNotFoundException: Secrets Manager can't find the specified secret. (HTTP 400)`,
      );
    });

    it('maps access denied to not retryable, throttling and 5xx to retryable', async () => {
      endpoint.putSecret('pop/plain', JSON.stringify({ password: PASSWORD }));
      const mb = mailbox({ type: 'secrets-manager', secretId: 'pop/plain' });
      const p = provider();

      endpoint.failNext(1, { kind: 'error', type: 'AccessDeniedException', message: 'User is not authorized to perform: secretsmanager:GetSecretValue' }, GET_SECRET_VALUE);
      const denied = await failure(p.get(mb));
      expect(denied).toMatchObject({ code: 'CREDENTIALS_FAILED', retryable: false });
      expect(denied.message).toContain('AccessDeniedException');

      endpoint.failNext(1, { kind: 'throttle' }, GET_SECRET_VALUE);
      const throttled = await failure(p.get(mb));
      expect(throttled).toMatchObject({ code: 'CREDENTIALS_FAILED', retryable: true });
      expect(throttled.message).toContain('ThrottlingException');

      endpoint.failNext(1, { kind: 'status', status: 503, type: 'InternalServiceError' }, GET_SECRET_VALUE);
      const unavailable = await failure(p.get(mb));
      expect(unavailable).toMatchObject({ code: 'CREDENTIALS_FAILED', retryable: true });
      expect(unavailable.message).toContain('HTTP 503');

      // And after all that, it works.
      expect(await p.get(mb)).toEqual({ user: 'alice@example.com', password: PASSWORD });
    });

    it('does not quote a response that fails to parse: it holds the secret', async () => {
      endpoint.putSecret('pop/plain', JSON.stringify({ password: PASSWORD }));
      // JSON.parse quotes a short input in its message, and the SDK keeps the body in $response.
      endpoint.failNext(1, { kind: 'raw', status: 200, body: `${PASSWORD} <- a proxy's page` }, GET_SECRET_VALUE);
      const error = await failure(provider().get(mailbox({ type: 'secrets-manager', secretId: 'pop/plain' })));
      expect(error).toMatchObject({ code: 'CREDENTIALS_FAILED', phase: 'credentials' });
      expect(error.message).toMatch(/^Secrets Manager GetSecretValue of secret "pop\/plain" failed: \w+/);
      expectNoSecrets(error, [PASSWORD]);
    });

    it('names the secret and the problem of a malformed secret, never its content', async () => {
      const cases: Array<[string, RegExp]> = [
        [`password=${PASSWORD}`, /^secret "pop\/bad" is not JSON: expected \{"password": \.\.\.\} or \{"oauth2": \{\.\.\.\}\} \(see docs\/secrets\.md\)$/],
        [`"${PASSWORD}"`, /is not a JSON object/],
        [JSON.stringify({ passwd: PASSWORD }), /has neither "password" nor "oauth2"/],
        [JSON.stringify({ password: 12345678 }), /has "password" that is not a non-empty string/],
        [JSON.stringify({ password: PASSWORD, oauth2: {} }), /has both "password" and "oauth2"/],
        [JSON.stringify({ oauth2: { clientId: CLIENT_ID, refreshToken: REFRESH_TOKEN } }), /has neither "oauth2.tokenEndpoint" nor "oauth2.tenantId"/],
        [JSON.stringify({ oauth2: { tokenEndpoint: tokens.url, clientSecret: CLIENT_SECRET, refreshToken: REFRESH_TOKEN } }), /has no "oauth2.clientId"/],
        [JSON.stringify({ oauth2: { tokenEndpoint: tokens.url, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET } }), /has no "oauth2.refreshToken"/],
        [JSON.stringify({ oauth2: { grantType: 'client_credentials', tenantId: 't', clientId: CLIENT_ID, clientSecret: CLIENT_SECRET } }), /has no "oauth2.scope"/],
        [JSON.stringify({ oauth2: { grantType: 'password', tenantId: 't', clientId: CLIENT_ID } }), /"oauth2.grantType" that is neither/],
      ];
      for (const [content, expected] of cases) {
        endpoint.putSecret('pop/bad', content);
        const error = await failure(provider().get(mailbox({ type: 'secrets-manager', secretId: 'pop/bad' })));
        expect(error).toMatchObject({ code: 'CREDENTIALS_FAILED', phase: 'credentials', retryable: false });
        expect(error.message).toMatch(expected);
        expect(error.message).toContain('"pop/bad"');
        expectNoSecrets(error, [...ALL_SECRETS, '12345678']);
      }
    });

    it('reports invalid_grant as not retryable, with the description cleaned of secrets', async () => {
      endpoint.putSecret('pop/oauth', oauth2Secret());
      // A server that echoes what it was sent in its description (some do).
      tokens.failNext(1, {
        kind: 'oauth-error',
        error: 'invalid_grant',
        description: `AADSTS70000: The provided value for 'refresh_token' (${REFRESH_TOKEN}) is not valid; client secret ${CLIENT_SECRET}.\r\nTrace ID: 0d3f6c1e-2b1a-4c5d-9e8f-112233445566\r\nopaque: ${'Z'.repeat(80)}`,
      });
      const error = await failure(provider().get(mailbox({ type: 'secrets-manager', secretId: 'pop/oauth' })));
      expect(error).toMatchObject({ code: 'CREDENTIALS_FAILED', phase: 'credentials', retryable: false });
      expect(error.message).toBe(
        `refresh token grant refused by token endpoint ${new URL(tokens.url).host}: invalid_grant (AADSTS70000: The provided value for 'refresh_token' ([redacted]) is not valid; client secret [redacted]. Trace ID: 0d3f6c1e-2b1a-4c5d-9e8f-112233445566 opaque: [redacted]) (HTTP 400)`,
      );
      expectNoSecrets(error, [...ALL_SECRETS, 'Z'.repeat(80)]);
    });

    it('reports invalid_client as not retryable, and 500 or 429 from the token endpoint as retryable', async () => {
      endpoint.putSecret('pop/wrong-client', oauth2Secret({ clientSecret: 'wrong-secret-value' }));
      const wrong = await failure(provider().get(mailbox({ type: 'secrets-manager', secretId: 'pop/wrong-client' })));
      expect(wrong).toMatchObject({ code: 'CREDENTIALS_FAILED', retryable: false });
      expect(wrong.message).toMatch(/invalid_client \(Client authentication failed\.\) \(HTTP 401\)$/);
      expectNoSecrets(wrong, [...ALL_SECRETS, 'wrong-secret-value']);

      endpoint.putSecret('pop/oauth', oauth2Secret());
      const mb = mailbox({ type: 'secrets-manager', secretId: 'pop/oauth' });
      tokens.failNext(1, { kind: 'status', status: 500 });
      const down = await failure(provider().get(mb));
      expect(down).toMatchObject({ code: 'CREDENTIALS_FAILED', retryable: true });
      expect(down.message).toMatch(/answered HTTP 500 without a JSON body$/);

      tokens.failNext(1, { kind: 'oauth-error', error: 'temporarily_unavailable', status: 429 });
      const busy = await failure(provider().get(mb));
      expect(busy).toMatchObject({ code: 'CREDENTIALS_FAILED', retryable: true });
      expect(busy.message).toContain('temporarily_unavailable');
      expectNoSecrets(busy, ALL_SECRETS);
    });

    it('refuses a mailbox whose secret is not in Secrets Manager', async () => {
      const error = await failure(provider().get(mailbox({ type: 'env', variable: 'POP_PASSWORD' })));
      expect(error).toMatchObject({ code: 'CONFIG_INVALID', retryable: false });
      expect(error.message).toContain('not Secrets Manager');
    });
  });
});

// ---------------------------------------------------------------------------------------------
describe('OAuth2 token client', () => {
  it('rotates: reports a new refresh token, and not an unchanged one', async () => {
    const grant = { tokenEndpoint: tokens.url, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, refreshToken: REFRESH_TOKEN };
    const plain = await refreshTokenGrant(grant, { now });
    expect(plain).toEqual({ accessToken: tokens.issued[0], expiresAt: START + 3600_000 });
    tokens.setRotation(true);
    const rotated = await refreshTokenGrant(grant, { now });
    expect(rotated.refreshToken).toMatch(/^rt\./);
    expect(rotated.refreshToken).not.toBe(REFRESH_TOKEN);
  });

  it('authenticates the client with HTTP Basic when asked', async () => {
    const result = await clientCredentialsGrant(
      { tokenEndpoint: tokens.url, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, scope: 'scope-a' },
      { clientAuthentication: 'basic', now },
    );
    expect(result.accessToken).toBe(tokens.issued[0]);
    expect(tokens.requests[0]).toMatchObject({ auth: 'basic', clientId: CLIENT_ID });
    expect(tokens.requests[0]!.form.client_secret).toBeUndefined();
  });

  it('times out a token endpoint that does not answer (retryable)', async () => {
    tokens.failNext(1, { kind: 'stall' });
    const error = await failure(
      clientCredentialsGrant({ tokenEndpoint: tokens.url, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, scope: 's' }, { timeoutMs: 200 }),
    );
    expect(error).toMatchObject({ code: 'CREDENTIALS_FAILED', phase: 'credentials', retryable: true });
    expect(error.message).toMatch(/did not answer within 200 ms$/);
  });

  it('reports an unreachable endpoint as retryable', async () => {
    const url = tokens.url;
    await tokens.close();
    const error = await failure(refreshTokenGrant({ tokenEndpoint: url, clientId: CLIENT_ID, refreshToken: REFRESH_TOKEN }));
    expect(error).toMatchObject({ code: 'CREDENTIALS_FAILED', retryable: true });
    expect(error.message).toMatch(/could not reach token endpoint 127\.0\.0\.1:\d+ \(ECONNREFUSED\)$/);
    expectNoSecrets(error, [REFRESH_TOKEN]);
    await restartTokenServer({ clients: [] }); // for afterEach
  });

  it('does not follow a redirect with the secrets in the form', async () => {
    tokens.failNext(1, { kind: 'redirect', location: 'http://127.0.0.1:9/elsewhere' });
    const error = await failure(refreshTokenGrant({ tokenEndpoint: tokens.url, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, refreshToken: REFRESH_TOKEN }));
    expect(error).toMatchObject({ code: 'CREDENTIALS_FAILED', retryable: false });
    expect(error.message).toContain('redirect (HTTP 307)');
    expect(tokens.requests).toHaveLength(1);
  });

  it('refuses a plain-http token endpoint that is not loopback, before sending anything', async () => {
    let called = false;
    const spy: typeof fetch = async () => {
      called = true;
      throw new Error('must not be called');
    };
    const error = await failure(
      refreshTokenGrant({ tokenEndpoint: 'http://login.example.com/token', clientId: CLIENT_ID, refreshToken: REFRESH_TOKEN }, { fetch: spy }),
    );
    expect(error.message).toBe('the OAuth2 token endpoint at login.example.com must use https');
    expect(called).toBe(false);
  });

  it('refuses a success without an access token, and a body that is not JSON', async () => {
    tokens.failNext(1, { kind: 'status', status: 200, body: '{"token_type":"Bearer"}', contentType: 'application/json' });
    const grant = { tokenEndpoint: tokens.url, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, scope: 's' };
    expect((await failure(clientCredentialsGrant(grant))).message).toMatch(/answered without an access_token$/);
    tokens.failNext(1, { kind: 'status', status: 200, body: `<html>${CLIENT_SECRET}</html>` });
    const notJson = await failure(clientCredentialsGrant(grant));
    expect(notJson.message).toMatch(/not a JSON object$/);
    expectNoSecrets(notJson, [CLIENT_SECRET]);
  });
});
