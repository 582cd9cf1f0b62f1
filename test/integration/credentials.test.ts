// Credentials providers with real clients: the Secrets Manager SDK client against the loopback
// AWS JSON endpoint, the token client (global fetch) against a loopback OAuth2 token endpoint,
// and local files in a temp directory.
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SecretsManagerCredentials } from '../../lib/adapters/aws/secrets-manager-credentials.js';
import { LocalCredentials, isReadableByOthers } from '../../lib/adapters/local/local-credentials.js';
import {
  clientCredentialsGrant,
  microsoftTokenEndpoint,
  refreshTokenGrant,
} from '../../lib/adapters/oauth2/token-client.js';
import { DrainError } from '../../lib/drain/errors.js';
import { DEFAULT_UIDL_RESET_GUARD, type MailboxConfig, type SecretSource } from '../../lib/drain/mailbox.js';
import type { DrainLogger, LogFields } from '../../lib/drain/ports.js';
import type { Pop3Credentials } from '../../lib/pop3/index.js';
import {
  GET_SECRET_VALUE,
  PUT_SECRET_VALUE,
  startAwsJsonEndpoint,
  type AwsJsonEndpoint,
} from '../../testkit/aws/json-endpoint.js';
import { startTokenServer, type OAuth2TokenServer } from '../../testkit/oauth2/token-server.js';
import { drainErrorOf as failure } from '../support/drain-error.js';

const FAKE_CREDENTIALS = { accessKeyId: 'AKIDTESTFAKE', secretAccessKey: 'test-fake-secret' };
const PASSWORD = 'Tr0ub4dor&3-secret-password';
const CLIENT_ID = 'client-1234';
const CLIENT_SECRET = 'client-secret-VALUE-do-not-leak';
const REFRESH_TOKEN = 'rt.initial-refresh-token-VALUE-do-not-leak';
const START = 1_750_000_000_000;

let endpoint: AwsJsonEndpoint;
let tokens: OAuth2TokenServer;
let clock: number;
let dir: string;
const now = (): number => clock;

beforeEach(async () => {
  endpoint = await startAwsJsonEndpoint();
  tokens = await startTokenServer({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET }], refreshTokens: [REFRESH_TOKEN] });
  clock = START;
});

afterEach(async () => {
  await endpoint.close();
  await tokens.close();
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'popdrain-credentials-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function mailbox(secret: SecretSource, user = 'alice@example.com'): MailboxConfig {
  return {
    id: 'mbx-1',
    host: '127.0.0.1',
    port: 995,
    tls: 'implicit',
    user,
    secret,
    mechanism: 'auto',
    deletePolicy: { mode: 'keep' },
    uidlResetGuard: DEFAULT_UIDL_RESET_GUARD,
  };
}

function smClient(): SecretsManagerClient {
  return new SecretsManagerClient({ region: 'us-east-1', endpoint: endpoint.url, credentials: FAKE_CREDENTIALS, maxAttempts: 1 });
}

class RecordingLogger implements DrainLogger {
  readonly records: Array<{ level: string; message: string; fields?: LogFields }> = [];
  debug(message: string, fields?: LogFields): void {
    this.records.push({ level: 'debug', message, fields });
  }
  info(message: string, fields?: LogFields): void {
    this.records.push({ level: 'info', message, fields });
  }
  warn(message: string, fields?: LogFields): void {
    this.records.push({ level: 'warn', message, fields });
  }
  error(message: string, fields?: LogFields): void {
    this.records.push({ level: 'error', message, fields });
  }
}

function provider(options: { cacheTtlMs?: number; logger?: DrainLogger; fetch?: typeof fetch } = {}): SecretsManagerCredentials {
  return new SecretsManagerCredentials({ client: smClient(), now, ...options });
}

/** Every way an error could be shown or serialized, cause included. */
function renderings(error: unknown): string[] {
  const out = [String(error), JSON.stringify(error), inspect(error, { depth: 10, showHidden: true })];
  if (error instanceof Error) {
    out.push(error.message, error.stack ?? '');
    if (error.cause !== undefined) out.push(inspect(error.cause, { depth: 10, showHidden: true }), JSON.stringify(error.cause) ?? '');
  }
  return out;
}

/** Not a secret, nor any 10 characters of one (a JSON syntax error quotes the first 10). */
function expectNoSecrets(error: unknown, secrets: readonly string[]): void {
  const WINDOW = 10;
  for (const text of renderings(error)) {
    for (const secret of secrets) {
      expect(text).not.toContain(secret);
      for (let i = 0; i + WINDOW <= secret.length; i++) expect(text).not.toContain(secret.slice(i, i + WINDOW));
    }
  }
}

function oauth2Secret(extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    note: 'kept on write-back',
    oauth2: { tokenEndpoint: tokens.url, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, refreshToken: REFRESH_TOKEN, scope: 'https://outlook.office.com/POP.AccessAsUser.All offline_access', ...extra },
  });
}

// ---------------------------------------------------------------------------------------------
describe('SecretsManagerCredentials', () => {
  it('reads a password secret, with the mailbox user or the one in the secret', async () => {
    endpoint.putSecret('pop/plain', JSON.stringify({ password: PASSWORD }));
    endpoint.putSecret('pop/with-user', JSON.stringify({ password: PASSWORD, user: 'bob@example.com' }));
    const p = provider();
    expect(await p.get(mailbox({ type: 'secrets-manager', secretId: 'pop/plain' }))).toEqual({ user: 'alice@example.com', password: PASSWORD });
    expect(await p.get(mailbox({ type: 'secrets-manager', secretId: 'pop/with-user' }))).toEqual({ user: 'bob@example.com', password: PASSWORD });
    const reads = endpoint.requestsFor(GET_SECRET_VALUE).map((r) => r.body.SecretId);
    expect(reads).toEqual(['pop/plain', 'pop/with-user']);
  });

  it('caches a secret for cacheTtlMs, and reads it again on forceRefresh', async () => {
    endpoint.putSecret('pop/plain', JSON.stringify({ password: PASSWORD }));
    const p = provider({ cacheTtlMs: 60_000 });
    const mb = mailbox({ type: 'secrets-manager', secretId: 'pop/plain' });
    await Promise.all([p.get(mb), p.get(mb)]); // concurrent: one read
    await p.get(mb);
    expect(endpoint.requestsFor(GET_SECRET_VALUE)).toHaveLength(1);

    clock += 59_999;
    await p.get(mb);
    expect(endpoint.requestsFor(GET_SECRET_VALUE)).toHaveLength(1);
    endpoint.putSecret('pop/plain', JSON.stringify({ password: 'changed-password' }));
    clock += 1;
    expect(await p.get(mb)).toEqual({ user: 'alice@example.com', password: 'changed-password' });
    expect(endpoint.requestsFor(GET_SECRET_VALUE)).toHaveLength(2);

    endpoint.putSecret('pop/plain', JSON.stringify({ password: 'changed-again' }));
    expect(await p.get(mb, { forceRefresh: true })).toEqual({ user: 'alice@example.com', password: 'changed-again' });
    expect(endpoint.requestsFor(GET_SECRET_VALUE)).toHaveLength(3);
  });

  it('exchanges an OAuth2 refresh token, and caches the access token until shortly before it expires', async () => {
    endpoint.putSecret('pop/oauth', oauth2Secret());
    const p = provider();
    const mb = mailbox({ type: 'secrets-manager', secretId: 'pop/oauth' });

    const first = await p.get(mb);
    expect(first).toEqual({ user: 'alice@example.com', accessToken: tokens.issued[0] });
    expect(tokens.requests).toHaveLength(1);
    expect(tokens.requests[0]).toMatchObject({
      grantType: 'refresh_token',
      clientId: CLIENT_ID,
      auth: 'post',
      contentType: 'application/x-www-form-urlencoded',
      form: { refresh_token: REFRESH_TOKEN, client_secret: CLIENT_SECRET, scope: 'https://outlook.office.com/POP.AccessAsUser.All offline_access' },
    });

    // expires_in 3600 s: reused until 5 minutes before expiry (the secret itself is re-read meanwhile).
    clock += 3600_000 - 300_000 - 1;
    expect(await p.get(mb)).toEqual(first);
    expect(tokens.requests).toHaveLength(1);
    clock += 1;
    const second = await p.get(mb);
    expect(second.user).toBe('alice@example.com');
    expect(second).toEqual({ user: 'alice@example.com', accessToken: tokens.issued[1] });
    expect(tokens.requests).toHaveLength(2);

    // forceRefresh: the server refused the token; a new one, at once.
    const third = await p.get(mb, { forceRefresh: true });
    expect(third).toEqual({ user: 'alice@example.com', accessToken: tokens.issued[2] });
    expect(tokens.requests).toHaveLength(3);
    // No rotation, no write-back.
    expect(endpoint.requestsFor(PUT_SECRET_VALUE)).toHaveLength(0);
  });

  it('writes a rotated refresh token back, whole secret preserved, so the next run uses it', async () => {
    tokens.setRotation(true, true); // the old refresh token dies once redeemed
    endpoint.putSecret('pop/rotating', oauth2Secret());
    const logger = new RecordingLogger();
    const mb = mailbox({ type: 'secrets-manager', secretId: 'pop/rotating' });

    const creds = await provider({ logger }).get(mb);
    expect(creds).toEqual({ user: 'alice@example.com', accessToken: tokens.issued[0] });
    const puts = endpoint.requestsFor(PUT_SECRET_VALUE);
    expect(puts).toHaveLength(1);
    expect(puts[0]!.body.SecretId).toBe('pop/rotating');
    expect(typeof puts[0]!.body.ClientRequestToken).toBe('string');
    const saved = JSON.parse(endpoint.secretString('pop/rotating')!) as { note: string; oauth2: Record<string, string> };
    const rotated = saved.oauth2.refreshToken!;
    expect(rotated).not.toBe(REFRESH_TOKEN);
    expect(tokens.validRefreshTokens()).toEqual([rotated]);
    expect(saved).toEqual({ ...(JSON.parse(oauth2Secret()) as object), oauth2: { ...(JSON.parse(oauth2Secret()) as { oauth2: object }).oauth2, refreshToken: rotated } });
    expect(endpoint.secretVersions('pop/rotating')).toBe(2);

    // The next run (a new process) reads the saved token and gets in; it rotates again.
    const next = await provider().get(mb);
    expect(next).toEqual({ user: 'alice@example.com', accessToken: tokens.issued[1] });
    expect(tokens.requests[1]!.form.refresh_token).toBe(rotated);
    expect(endpoint.secretVersions('pop/rotating')).toBe(3);

    // Logs name the secret, never a token.
    expect(logger.records.map((r) => r.message)).toEqual(['saved a rotated OAuth2 refresh token']);
    expect(JSON.stringify(logger.records)).not.toContain(rotated);
  });

  it('shares one token request between concurrent logins (a rotating server honours a refresh token once)', async () => {
    tokens.setRotation(true, true);
    endpoint.putSecret('pop/rotating', oauth2Secret());
    const p = provider();
    const mb = mailbox({ type: 'secrets-manager', secretId: 'pop/rotating' });
    const all = await Promise.all([p.get(mb), p.get(mb), p.get(mb)]);
    expect(all).toEqual([0, 1, 2].map(() => ({ user: 'alice@example.com', accessToken: tokens.issued[0] })));
    expect(tokens.requests).toHaveLength(1);
    expect(endpoint.requestsFor(PUT_SECRET_VALUE)).toHaveLength(1);
  });

  it('keeps a rotated refresh token it could not save, warns, and saves it on the next call', async () => {
    tokens.setRotation(true, true);
    endpoint.putSecret('pop/rotating', oauth2Secret());
    const logger = new RecordingLogger();
    const p = provider({ logger, cacheTtlMs: 1000 });
    const mb = mailbox({ type: 'secrets-manager', secretId: 'pop/rotating' });

    endpoint.failNext(1, { kind: 'error', type: 'AccessDeniedException', message: 'not authorized to perform: secretsmanager:PutSecretValue' }, PUT_SECRET_VALUE);
    const creds = await p.get(mb);
    expect(creds).toEqual({ user: 'alice@example.com', accessToken: tokens.issued[0] });
    expect(endpoint.secretVersions('pop/rotating')).toBe(1);
    expect(logger.records).toHaveLength(1);
    expect(logger.records[0]).toMatchObject({ level: 'warn', fields: { mailboxId: 'mbx-1', secretId: 'pop/rotating' } });
    expect(String(logger.records[0]!.fields!.error)).toContain('AccessDeniedException');
    expect(JSON.stringify(logger.records)).not.toContain(tokens.validRefreshTokens()[0]!);

    // Past the secret cache's lifetime: the stored secret is older than what we hold; it is saved,
    // not re-read, and a forced refresh redeems the rotated token (the old one is dead).
    clock += 5000;
    const again = await p.get(mb, { forceRefresh: true });
    expect(again).toEqual({ user: 'alice@example.com', accessToken: tokens.issued[1] });
    expect(tokens.requests[1]!.form.refresh_token).not.toBe(REFRESH_TOKEN);
    const saved = JSON.parse(endpoint.secretString('pop/rotating')!) as { oauth2: { refreshToken: string } };
    expect(tokens.validRefreshTokens()).toEqual([saved.oauth2.refreshToken]);
  });

  describe('a secret read that finishes after a refresh-token rotation', () => {
    type Settled = { ok: true; value: Pop3Credentials } | { ok: false; error: unknown };
    const settle = (promise: Promise<Pop3Credentials>): Promise<Settled> =>
      promise.then(
        (value): Settled => ({ ok: true, value }),
        (error: unknown): Settled => ({ ok: false, error }),
      );

    // The first login reads the secret and asks for a token; while that token request (which
    // rotates the refresh token) is on its way, a second call reads the secret again (a forced
    // refresh after AUTH_FAILED, or an expired secret cache). That read gets the stored,
    // pre-rotation secret from Secrets Manager and is held until the rotation is done.
    it.each([
      { trigger: 'forceRefresh', saveFails: false },
      { trigger: 'forceRefresh', saveFails: true },
      { trigger: 'expiredCache', saveFails: true },
    ] as const)('does not put the old refresh token back (re-read by $trigger, write-back fails: $saveFails)', async ({ trigger, saveFails }) => {
      tokens.setRotation(true, true); // a redeemed refresh token dies, as on servers that detect reuse
      endpoint.putSecret('pop/race', oauth2Secret());
      if (saveFails) endpoint.failNext(1, { kind: 'throttle' }, PUT_SECRET_VALUE);
      const logger = new RecordingLogger();

      const client = smClient();
      let reads = 0;
      let answered!: () => void;
      const secondReadAnswered = new Promise<void>((resolve) => (answered = resolve));
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      client.middlewareStack.add(
        (next, context) => async (args) => {
          if (context.commandName !== 'GetSecretValueCommand') return next(args);
          reads += 1;
          const n = reads;
          const output = await next(args);
          if (n === 2) {
            answered();
            await released;
          }
          return output;
        },
        { step: 'initialize', name: 'holdSecondSecretRead' },
      );

      const mb = mailbox({ type: 'secrets-manager', secretId: 'pop/race' });
      let racing: Promise<Settled> | undefined;
      const tokenFetch: typeof fetch = async (input, init) => {
        if (racing === undefined) {
          if (trigger === 'expiredCache') clock += 60_000;
          racing = settle(trigger === 'forceRefresh' ? p.get(mb, { forceRefresh: true }) : p.get(mb));
          await secondReadAnswered;
        }
        return fetch(input, init);
      };
      const p = new SecretsManagerCredentials({ client, now, cacheTtlMs: 60_000, fetch: tokenFetch, logger });

      const first = await p.get(mb);
      expect(first).toEqual({ user: 'alice@example.com', accessToken: tokens.issued[0] });
      const rotated = tokens.validRefreshTokens();
      expect(rotated).toHaveLength(1);
      expect(rotated[0]).not.toBe(REFRESH_TOKEN);
      release();
      expect(racing).toBeDefined();
      const second = await racing!;
      expect(reads).toBe(2);
      if (!second.ok) throw second.error;
      expect(tokens.issued.map((accessToken) => ({ user: 'alice@example.com', accessToken }))).toContainEqual(second.value);

      // Whatever the second call did, the next forced refresh works, with the current token.
      const third = await p.get(mb, { forceRefresh: true });
      expect(third).toEqual({ user: 'alice@example.com', accessToken: tokens.issued.at(-1) });

      // No refresh token was presented twice, and the one that works is the one stored.
      const sent = tokens.requests.map((r) => r.form.refresh_token);
      expect(sent[0]).toBe(REFRESH_TOKEN);
      expect(sent[1]).toBe(rotated[0]);
      expect(new Set(sent).size).toBe(sent.length);
      const stored = JSON.parse(endpoint.secretString('pop/race')!) as { note: string; oauth2: { refreshToken: string } };
      expect(tokens.validRefreshTokens()).toEqual([stored.oauth2.refreshToken]);
      expect(stored.note).toBe('kept on write-back');
      expect(logger.records.filter((r) => r.level === 'warn')).toHaveLength(saveFails ? 1 : 0);
    });
  });

  it('gets Microsoft 365 app-only tokens with client credentials', async () => {
    endpoint.putSecret(
      'pop/app-only',
      JSON.stringify({
        user: 'shared-mailbox@contoso.example',
        oauth2: { grantType: 'client_credentials', tokenEndpoint: tokens.url, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, scope: 'https://outlook.office365.com/.default' },
      }),
    );
    const p = provider();
    const mb = mailbox({ type: 'secrets-manager', secretId: 'pop/app-only' });
    expect(await p.get(mb)).toEqual({ user: 'shared-mailbox@contoso.example', accessToken: tokens.issued[0] });
    expect(await p.get(mb)).toEqual({ user: 'shared-mailbox@contoso.example', accessToken: tokens.issued[0] });
    expect(tokens.requests).toHaveLength(1);
    expect(tokens.requests[0]).toMatchObject({
      grantType: 'client_credentials',
      form: { client_id: CLIENT_ID, client_secret: CLIENT_SECRET, scope: 'https://outlook.office365.com/.default' },
    });
    expect(endpoint.requestsFor(PUT_SECRET_VALUE)).toHaveLength(0);
  });

  it('derives the Microsoft token endpoint from tenantId', async () => {
    endpoint.putSecret(
      'pop/tenant',
      JSON.stringify({ oauth2: { grantType: 'client_credentials', tenantId: 'contoso.onmicrosoft.com', clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, scope: 'https://outlook.office365.com/.default' } }),
    );
    // Never reach Microsoft: record the URL the client asked for, and answer from loopback.
    const asked: string[] = [];
    const redirecting: typeof fetch = (input, init) => {
      asked.push(String(input));
      return fetch(tokens.url, init);
    };
    const creds = await provider({ fetch: redirecting }).get(mailbox({ type: 'secrets-manager', secretId: 'pop/tenant' }));
    expect(creds).toEqual({ user: 'alice@example.com', accessToken: tokens.issued[0] });
    expect(asked).toEqual(['https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token']);
    expect(microsoftTokenEndpoint('organizations')).toBe('https://login.microsoftonline.com/organizations/oauth2/v2.0/token');
  });

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
    tokens = await startTokenServer({ clients: [] }); // for afterEach
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

// ---------------------------------------------------------------------------------------------
describe('LocalCredentials', () => {
  let n = 0;
  const file = (name: string): string => join(dir, `${n}-${name}`);
  beforeEach(() => {
    n += 1;
  });

  it('reads a password from an environment variable', async () => {
    const local = new LocalCredentials({ env: { POP_PASSWORD: PASSWORD } });
    expect(await local.get(mailbox({ type: 'env', variable: 'POP_PASSWORD' }))).toEqual({ user: 'alice@example.com', password: PASSWORD });
  });

  it('says clearly when the variable is unset or empty', async () => {
    const unset = await failure(new LocalCredentials({ env: {} }).get(mailbox({ type: 'env', variable: 'POP_PASSWORD' })));
    expect(unset).toMatchObject({ code: 'CREDENTIALS_FAILED', phase: 'credentials', retryable: false });
    expect(unset.message).toBe('environment variable POP_PASSWORD (the password of mailbox "mbx-1") is not set');
    const empty = await failure(new LocalCredentials({ env: { POP_PASSWORD: '' } }).get(mailbox({ type: 'env', variable: 'POP_PASSWORD' })));
    expect(empty.message).toBe('environment variable POP_PASSWORD (the password of mailbox "mbx-1") is empty');
  });

  it('reads the first line of a password file, without its line ending', async () => {
    const local = new LocalCredentials({ env: {} });
    for (const content of [`${PASSWORD}\r\n`, `${PASSWORD}\n`, PASSWORD, `${PASSWORD}\nsecond line\n`, `${PASSWORD}\r\nignored`]) {
      const path = file(`pw-${Buffer.from(content).toString('hex').slice(-8)}`);
      await writeFile(path, content, { mode: 0o600 });
      expect(await local.get(mailbox({ type: 'file', path }))).toEqual({ user: 'alice@example.com', password: PASSWORD });
    }
    // Spaces are part of a password.
    const spaced = file('spaced');
    await writeFile(spaced, ' pass word \n');
    expect(await local.get(mailbox({ type: 'file', path: spaced }))).toEqual({ user: 'alice@example.com', password: ' pass word ' });
  });

  it('says clearly when the password file is missing, a directory, or empty', async () => {
    const local = new LocalCredentials({ env: {} });
    const missing = await failure(local.get(mailbox({ type: 'file', path: file('missing') })));
    expect(missing).toMatchObject({ code: 'CREDENTIALS_FAILED', retryable: false });
    expect(missing.message).toBe(`cannot read the password file ${file('missing')}: it does not exist`);
    const directory = file('a-directory');
    await mkdir(directory);
    expect((await failure(local.get(mailbox({ type: 'file', path: directory })))).message).toBe(
      `cannot read the password file ${directory}: it is a directory`,
    );
    const empty = file('empty');
    await writeFile(empty, '\n');
    expect((await failure(local.get(mailbox({ type: 'file', path: empty })))).message).toBe(
      `the password file ${empty} is empty (the first line holds the password)`,
    );
  });

  it('tells whether a file is readable by others', async () => {
    const path = file('perm');
    await writeFile(path, PASSWORD);
    await chmod(path, 0o600);
    expect(await isReadableByOthers(path)).toBe(false);
    await chmod(path, 0o640);
    expect(await isReadableByOthers(path)).toBe(true);
    await chmod(path, 0o604);
    expect(await isReadableByOthers(path)).toBe(true);
    await chmod(path, 0o700);
    expect(await isReadableByOthers(path)).toBe(false);
    expect(await isReadableByOthers(file('nothing-here'))).toBe(false);
  });

  it('uses a ready access token from the environment', async () => {
    const local = new LocalCredentials({ env: { POP_TOKEN: 'ready-access-token' } });
    expect(await local.get(mailbox({ type: 'oauth2', oauth2: { accessTokenEnv: 'POP_TOKEN' } }))).toEqual({
      user: 'alice@example.com',
      accessToken: 'ready-access-token',
    });
    expect(tokens.requests).toHaveLength(0);
  });

  it('refreshes from a refresh-token file, writes a rotated token back atomically with mode 0600, and caches the access token', async () => {
    tokens.setRotation(true, true);
    const sub = file('tokens');
    await mkdir(sub);
    const rtFile = join(sub, 'refresh-token');
    await writeFile(rtFile, `${REFRESH_TOKEN}\n`, { mode: 0o644 });
    const secretFile = join(sub, 'client-secret');
    await writeFile(secretFile, `${CLIENT_SECRET}\n`, { mode: 0o600 });
    const logger = new RecordingLogger();
    const local = new LocalCredentials({ env: { CLIENT_ID_VAR: CLIENT_ID }, now, logger });
    const mb = mailbox({
      type: 'oauth2',
      oauth2: { tokenEndpoint: tokens.url, clientIdEnv: 'CLIENT_ID_VAR', clientSecretFile: secretFile, refreshTokenFile: rtFile, scope: 'https://mail.google.com/' },
    });

    const creds = await local.get(mb);
    expect(creds).toEqual({ user: 'alice@example.com', accessToken: tokens.issued[0] });
    expect(tokens.requests[0]!.form).toMatchObject({ refresh_token: REFRESH_TOKEN, client_id: CLIENT_ID, client_secret: CLIENT_SECRET, scope: 'https://mail.google.com/' });

    const [rotated] = tokens.validRefreshTokens();
    expect(rotated).toBeDefined();
    expect(rotated).not.toBe(REFRESH_TOKEN);
    expect(await readFile(rtFile, 'utf8')).toBe(`${rotated}\n`);
    expect((await stat(rtFile)).mode & 0o777).toBe(0o600);
    expect((await readdir(sub)).sort()).toEqual(['client-secret', 'refresh-token']); // no temp file left
    expect(logger.records).toEqual([{ level: 'info', message: 'saved a rotated OAuth2 refresh token', fields: { mailboxId: 'mbx-1', path: rtFile } }]);

    // Cached until shortly before expiry.
    expect(await local.get(mb)).toEqual(creds);
    expect(tokens.requests).toHaveLength(1);
    // forceRefresh: a new exchange, with the rotated token from the file.
    const forced = await local.get(mb, { forceRefresh: true });
    expect(forced).toEqual({ user: 'alice@example.com', accessToken: tokens.issued[1] });
    expect(tokens.requests[1]!.form.refresh_token).toBe(rotated);

    // A new process (the next CLI run) reads the file and gets in.
    const nextRun = await new LocalCredentials({ env: { CLIENT_ID_VAR: CLIENT_ID }, now }).get(mb);
    expect(nextRun).toEqual({ user: 'alice@example.com', accessToken: tokens.issued[2] });
  });

  it('keeps a rotated refresh token from the environment in memory, and warns', async () => {
    tokens.setRotation(true, true);
    const logger = new RecordingLogger();
    const local = new LocalCredentials({ env: { RT: REFRESH_TOKEN, CS: CLIENT_SECRET }, now, logger });
    const mb = mailbox({ type: 'oauth2', oauth2: { tokenEndpoint: tokens.url, clientId: CLIENT_ID, clientSecretEnv: 'CS', refreshTokenEnv: 'RT' } });
    await local.get(mb);
    await local.get(mb, { forceRefresh: true });
    expect(tokens.requests).toHaveLength(2);
    expect(tokens.requests[1]!.form.refresh_token).not.toBe(REFRESH_TOKEN); // the old one is dead; the new one was used
    expect(logger.records.filter((r) => r.level === 'warn')).toHaveLength(2);
    expect(logger.records[0]!.fields).toEqual({ mailboxId: 'mbx-1', variable: 'RT' });
    expect(JSON.stringify(logger.records)).not.toMatch(/rt\./);
  });

  it('uses client credentials from the environment', async () => {
    const local = new LocalCredentials({ env: { CS: CLIENT_SECRET }, now });
    const mb = mailbox({
      type: 'oauth2',
      oauth2: { tokenEndpoint: tokens.url, clientId: CLIENT_ID, clientSecretEnv: 'CS', scope: 'https://outlook.office365.com/.default' },
    });
    expect(await local.get(mb)).toEqual({ user: 'alice@example.com', accessToken: tokens.issued[0] });
    expect(tokens.requests[0]).toMatchObject({ grantType: 'client_credentials' });
  });

  it('maps token endpoint errors without leaking the refresh token from the file', async () => {
    const rtFile = file('rt-bad');
    await writeFile(rtFile, 'rt.unknown-to-the-server-VALUE\n', { mode: 0o600 });
    const local = new LocalCredentials({ env: { CS: CLIENT_SECRET }, now });
    const mb = mailbox({ type: 'oauth2', oauth2: { tokenEndpoint: tokens.url, clientId: CLIENT_ID, clientSecretEnv: 'CS', refreshTokenFile: rtFile } });
    const error = await failure(local.get(mb));
    expect(error).toMatchObject({ code: 'CREDENTIALS_FAILED', retryable: false });
    expect(error.message).toContain('invalid_grant');
    expectNoSecrets(error, ['rt.unknown-to-the-server-VALUE', CLIENT_SECRET]);
  });

  it('sends a Secrets Manager mailbox to --secrets-manager', async () => {
    const error = await failure(new LocalCredentials({ env: {} }).get(mailbox({ type: 'secrets-manager', secretId: 'pop/x' })));
    expect(error).toMatchObject({ code: 'CONFIG_INVALID', phase: 'credentials', retryable: false });
    expect(error.message).toBe('mailbox "mbx-1" uses Secrets Manager (secret "pop/x"); run it with --secrets-manager or in AWS');
  });
});
