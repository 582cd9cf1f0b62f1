/**
 * The credentials port's contract (CredentialsProvider in lib/drain/ports.ts), written once and
 * run against every provider: `describeCredentialsContract(name, harness)` in a *.test.ts file
 * per adapter. The suite starts a loopback OAuth2 token endpoint; the harness keeps the secrets
 * where its provider reads them (files and environment, or Secrets Manager).
 *
 * What the port promises, and each case checks:
 * - a password secret gives `{ user, password }`, the user being the mailbox's.
 * - `forceRefresh` reads the secret again (a changed password is seen at once).
 * - an OAuth2 refresh token gives `{ user, accessToken }` from the token endpoint; `forceRefresh`
 *   gets a new access token (after the server refused the cached one).
 * - a secret that does not exist, or a token endpoint that refuses the grant, is a
 *   CREDENTIALS_FAILED (phase credentials, not retryable) whose message holds no secret.
 * - a secret source the provider does not serve is a CONFIG_INVALID, not retryable.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_UIDL_RESET_GUARD, type MailboxConfig, type SecretSource } from '../../lib/drain/mailbox.js';
import type { CredentialsProvider } from '../../lib/drain/ports.js';
import { drainErrorOf } from '../support/drain-error.js';
import { startTokenServer, type OAuth2TokenServer } from '../../testkit/oauth2/token-server.js';

export const CREDENTIALS_CASES = ['password', 'force-refresh', 'oauth2', 'missing', 'oauth2-refused', 'foreign-source'] as const;
export type CredentialsCase = (typeof CREDENTIALS_CASES)[number];

export interface OAuth2Grant {
  tokenEndpoint: string;
  clientId: string;
  clientSecret: string;
  refreshToken: string;
}

export interface CredentialsHarness {
  setup(): Promise<void>;
  /** A provider reading the harness's secrets. */
  open(): CredentialsProvider;
  /** Keep (or replace) a password under `name`; the source that names it. */
  passwordSecret(name: string, password: string): Promise<SecretSource>;
  /** Keep an OAuth2 refresh-token grant under `name`; the source that names it. */
  oauth2Secret(name: string, grant: OAuth2Grant): Promise<SecretSource>;
  /** A source of this provider's kind that names nothing. */
  missingSecret(name: string): SecretSource;
  /** A source this provider does not serve. */
  foreignSecret(): SecretSource;
  teardown(): Promise<void>;
  exclude?: Partial<Record<CredentialsCase, string>>;
}

const CLIENT_ID = 'contract-client';
const CLIENT_SECRET = 'contract-client-secret-DO-NOT-LEAK';
const REFRESH_TOKEN = 'rt.contract-refresh-token-DO-NOT-LEAK';
const PASSWORD = 'contract-Password-DO-NOT-LEAK';

function mailbox(secret: SecretSource): MailboxConfig {
  return {
    id: 'contract-box',
    host: '127.0.0.1',
    port: 995,
    tls: 'implicit',
    user: 'alice@example.com',
    secret,
    mechanism: 'auto',
    deletePolicy: { mode: 'keep' },
    uidlResetGuard: DEFAULT_UIDL_RESET_GUARD,
  };
}

export function describeCredentialsContract(name: string, harness: CredentialsHarness): void {
  describe(`Credentials contract: ${name}`, () => {
    let tokens: OAuth2TokenServer;
    let counter = 0;
    const secretName = (): string => `contract-secret-${++counter}`;
    const grant = (): OAuth2Grant => ({ tokenEndpoint: tokens.url, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, refreshToken: REFRESH_TOKEN });
    const excluded = harness.exclude ?? {};
    const check = (id: CredentialsCase, title: string, fn: () => Promise<void>): void => {
      if (excluded[id] === undefined) it(`${id}: ${title}`, fn);
    };

    beforeAll(async () => {
      tokens = await startTokenServer({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET }], refreshTokens: [REFRESH_TOKEN] });
      await harness.setup();
    });
    afterAll(async () => {
      await harness.teardown();
      await tokens?.close();
    });

    check('password', "a password secret gives the mailbox's user and the password", async () => {
      const source = await harness.passwordSecret(secretName(), PASSWORD);
      expect(await harness.open().get(mailbox(source))).toEqual({ user: 'alice@example.com', password: PASSWORD });
    });

    check('force-refresh', 'forceRefresh reads the secret again', async () => {
      const id = secretName();
      const provider = harness.open();
      const mb = mailbox(await harness.passwordSecret(id, PASSWORD));
      expect(await provider.get(mb)).toEqual({ user: 'alice@example.com', password: PASSWORD });
      await harness.passwordSecret(id, 'changed-password');
      expect(await provider.get(mb, { forceRefresh: true })).toEqual({ user: 'alice@example.com', password: 'changed-password' });
    });

    check('oauth2', 'a refresh token gives an access token; forceRefresh gets a new one', async () => {
      const provider = harness.open();
      const mb = mailbox(await harness.oauth2Secret(secretName(), grant()));
      const first = await provider.get(mb);
      expect(first).toEqual({ user: 'alice@example.com', accessToken: tokens.issued.at(-1) });
      const fresh = await provider.get(mb, { forceRefresh: true });
      expect(fresh).toEqual({ user: 'alice@example.com', accessToken: tokens.issued.at(-1) });
      expect(fresh).not.toEqual(first);
      expect(tokens.requests.at(-1)?.form).toMatchObject({ refresh_token: REFRESH_TOKEN });
    });

    check('missing', 'a secret that does not exist: CREDENTIALS_FAILED, not retryable', async () => {
      const error = await drainErrorOf(harness.open().get(mailbox(harness.missingSecret(secretName()))));
      expect(error).toMatchObject({ code: 'CREDENTIALS_FAILED', phase: 'credentials', retryable: false });
    });

    check('oauth2-refused', 'a token endpoint refusing the grant: CREDENTIALS_FAILED, not retryable, no secret in the message', async () => {
      const mb = mailbox(await harness.oauth2Secret(secretName(), grant()));
      tokens.failNext(1, { kind: 'oauth-error', error: 'invalid_grant', description: 'refresh token expired' });
      const error = await drainErrorOf(harness.open().get(mb));
      expect(error).toMatchObject({ code: 'CREDENTIALS_FAILED', phase: 'credentials', retryable: false });
      for (const secret of [CLIENT_SECRET, REFRESH_TOKEN]) expect(error.message).not.toContain(secret);
    });

    check('foreign-source', 'a source the provider does not serve: CONFIG_INVALID, not retryable', async () => {
      const error = await drainErrorOf(harness.open().get(mailbox(harness.foreignSecret())));
      expect(error).toMatchObject({ code: 'CONFIG_INVALID', retryable: false });
    });
  });
}
