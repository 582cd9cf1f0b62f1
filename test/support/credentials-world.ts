// The shared set-up of the credentials tests (secrets-manager-credentials, credential-errors-and-
// token-client, local-credentials): a loopback AWS JSON endpoint and OAuth2 token server fresh for
// every test, a fake clock, a temp dir, and the helpers that build providers and look for leaks.
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, afterEach, beforeAll, beforeEach, expect } from 'vitest';
import { SecretsManagerCredentials } from '../../lib/adapters/aws/secrets-manager-credentials.js';
import { DEFAULT_UIDL_RESET_GUARD, type MailboxConfig, type SecretSource } from '../../lib/drain/mailbox.js';
import type { DrainLogger, LogFields } from '../../lib/drain/ports.js';
import { startAwsJsonEndpoint, type AwsJsonEndpoint } from '../../testkit/aws/json-endpoint.js';
import { startTokenServer, type OAuth2TokenServer, type TokenServerOptions } from '../../testkit/oauth2/token-server.js';

const FAKE_CREDENTIALS = { accessKeyId: 'AKIDTESTFAKE', secretAccessKey: 'test-fake-secret' };
export const PASSWORD = 'Tr0ub4dor&3-secret-password';
export const CLIENT_ID = 'client-1234';
export const CLIENT_SECRET = 'client-secret-VALUE-do-not-leak';
export const REFRESH_TOKEN = 'rt.initial-refresh-token-VALUE-do-not-leak';
export const START = 1_750_000_000_000;

// Live bindings: they hold this test's servers once beforeEach ran.
export let endpoint: AwsJsonEndpoint;
export let tokens: OAuth2TokenServer;
export let dir: string;
let clock: number;
export const now = (): number => clock;

/** Moves the fake clock on. */
export function advanceClock(ms: number): void {
  clock += ms;
}

/** Starts a new token server in place of one a test closed (afterEach closes it). */
export async function restartTokenServer(options: TokenServerOptions): Promise<void> {
  tokens = await startTokenServer(options);
}

/** Registers the hooks: fresh servers and clock for every test, a temp dir for the file. */
export function setUpCredentialsWorld(): void {
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
}

export function mailbox(secret: SecretSource, user = 'alice@example.com'): MailboxConfig {
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

export function smClient(): SecretsManagerClient {
  return new SecretsManagerClient({ region: 'us-east-1', endpoint: endpoint.url, credentials: FAKE_CREDENTIALS, maxAttempts: 1 });
}

export class RecordingLogger implements DrainLogger {
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

export function provider(options: { cacheTtlMs?: number; logger?: DrainLogger; fetch?: typeof fetch } = {}): SecretsManagerCredentials {
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
export function expectNoSecrets(error: unknown, secrets: readonly string[]): void {
  const WINDOW = 10;
  for (const text of renderings(error)) {
    for (const secret of secrets) {
      expect(text).not.toContain(secret);
      for (let i = 0; i + WINDOW <= secret.length; i++) expect(text).not.toContain(secret.slice(i, i + WINDOW));
    }
  }
}

export function oauth2Secret(extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    note: 'kept on write-back',
    oauth2: { tokenEndpoint: tokens.url, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, refreshToken: REFRESH_TOKEN, scope: 'https://outlook.office.com/POP.AccessAsUser.All offline_access', ...extra },
  });
}

