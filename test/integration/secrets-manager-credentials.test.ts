// SecretsManagerCredentials with real clients: the Secrets Manager SDK client against the
// loopback AWS JSON endpoint, the token client (global fetch) against a loopback OAuth2 token
// endpoint. Its errors are in credential-errors-and-token-client.test.ts.
import { describe, expect, it } from 'vitest';
import { SecretsManagerCredentials } from '../../lib/adapters/aws/secrets-manager-credentials.js';
import { microsoftTokenEndpoint } from '../../lib/adapters/oauth2/token-client.js';
import type { Pop3Credentials } from '../../lib/pop3/index.js';
import { GET_SECRET_VALUE, PUT_SECRET_VALUE } from '../../testkit/aws/json-endpoint.js';
import {
  advanceClock,
  CLIENT_ID,
  CLIENT_SECRET,
  endpoint,
  mailbox,
  now,
  oauth2Secret,
  PASSWORD,
  provider,
  RecordingLogger,
  REFRESH_TOKEN,
  setUpCredentialsWorld,
  smClient,
  tokens,
} from '../support/credentials-world.js';

setUpCredentialsWorld();

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

    advanceClock(59_999);
    await p.get(mb);
    expect(endpoint.requestsFor(GET_SECRET_VALUE)).toHaveLength(1);
    endpoint.putSecret('pop/plain', JSON.stringify({ password: 'changed-password' }));
    advanceClock(1);
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
    advanceClock(3600_000 - 300_000 - 1);
    expect(await p.get(mb)).toEqual(first);
    expect(tokens.requests).toHaveLength(1);
    advanceClock(1);
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
    advanceClock(5000);
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
          if (trigger === 'expiredCache') advanceClock(60_000);
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

});
