/**
 * Mailbox credentials from AWS Secrets Manager. A mailbox's secret is a JSON document in one of
 * three forms (docs/secrets.md): a password, an OAuth2 refresh token (Gmail, Microsoft 365
 * delegated), or OAuth2 client credentials (Microsoft 365 app-only). Secrets are cached for a
 * few minutes, access tokens until shortly before they expire, and a refresh token the server
 * rotated is written back so the next run uses it.
 *
 * No error message, error field or log record holds a secret's content: validation errors
 * name the secret and the field, SDK failures are described by name and the service's message.
 */
import { randomUUID } from 'node:crypto';
import {
  GetSecretValueCommand,
  PutSecretValueCommand,
  type SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { DrainError } from '../../drain/errors.js';
import type { MailboxConfig } from '../../drain/mailbox.js';
import { silentLogger, type CredentialsProvider, type DrainLogger } from '../../drain/ports.js';
import type { Pop3Credentials } from '../../pop3/index.js';
import { AccessTokenCache } from '../oauth2/access-token-cache.js';
import { clientCredentialsGrant, microsoftTokenEndpoint, refreshTokenGrant, type TokenResult } from '../oauth2/token-client.js';
import { redeemOnce } from './refresh-token-redemption.js';
import { describeSdkError, isRetryableSdkError, sdkErrorName } from './sdk-error.js';
import { SecretVersionCas } from './secret-version-cas.js';
import { withoutUndefined } from '../../drain/without-undefined.js';

/** How long a secret read from Secrets Manager is used before it is read again. */
export const DEFAULT_SECRET_CACHE_TTL_MS = 5 * 60_000;

/** A mailbox secret, validated (see docs/secrets.md). */
export type SecretDocument =
  | { kind: 'password'; user?: string; password: string }
  | {
      kind: 'oauth2-refresh-token';
      user?: string;
      tokenEndpoint: string;
      clientId: string;
      clientSecret?: string;
      refreshToken: string;
      scope?: string;
    }
  | {
      kind: 'oauth2-client-credentials';
      user?: string;
      tokenEndpoint: string;
      clientId: string;
      clientSecret: string;
      scope: string;
    };

export interface SecretsManagerCredentialsOptions {
  client: SecretsManagerClient;
  /** @default DEFAULT_SECRET_CACHE_TTL_MS (5 minutes) */
  cacheTtlMs?: number;
  /** Epoch ms. @default Date.now */
  now?: () => number;
  /** For the token requests. @default globalThis.fetch */
  fetch?: typeof fetch;
  /** @default TOKEN_REQUEST_TIMEOUT_MS */
  tokenTimeoutMs?: number;
  /** Warnings (a rotated refresh token that could not be saved). @default silence */
  logger?: DrainLogger;
  /** Waits between polls of another run's claim on a refresh token. @default setTimeout */
  sleep?: (ms: number) => Promise<void>;
}

interface CachedSecret {
  doc: SecretDocument;
  /** The secret's JSON as stored, kept whole so a write-back preserves fields we don't know. */
  raw: Record<string, unknown>;
  fetchedAt: number;
  /** A rotated refresh token is in `doc`/`raw` but not yet saved to Secrets Manager. */
  unsaved: boolean;
}

function invalid(secretId: string, problem: string): DrainError {
  return new DrainError('CREDENTIALS_FAILED', `secret "${secretId}" ${problem} (see docs/secrets.md)`, {
    phase: 'credentials',
    retryable: false,
  });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * Validate a secret's JSON. Errors name the secret and the offending field, never a value (a
 * JSON syntax error's own message quotes the text, so it is not used).
 */
export function parseSecretDocument(secretId: string, secretString: string): { doc: SecretDocument; raw: Record<string, unknown> } {
  let raw: unknown;
  try {
    raw = JSON.parse(secretString);
  } catch {
    throw invalid(secretId, 'is not JSON: expected {"password": ...} or {"oauth2": {...}}');
  }
  if (!isObject(raw)) throw invalid(secretId, 'is not a JSON object: expected {"password": ...} or {"oauth2": {...}}');

  const optionalString = (obj: Record<string, unknown>, field: string, path: string): string | undefined => {
    const v = obj[field];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v === '') throw invalid(secretId, `has "${path}" that is not a non-empty string`);
    return v;
  };
  const requiredString = (obj: Record<string, unknown>, field: string, path: string): string => {
    const v = optionalString(obj, field, path);
    if (v === undefined) throw invalid(secretId, `has no "${path}"`);
    return v;
  };

  const user = optionalString(raw, 'user', 'user');
  const withUser = <T extends object>(doc: T): T & { user?: string } => (user === undefined ? doc : { ...doc, user });

  if (raw.password !== undefined && raw.oauth2 !== undefined) {
    throw invalid(secretId, 'has both "password" and "oauth2"; keep one');
  }
  if (raw.password !== undefined) {
    return { doc: withUser({ kind: 'password' as const, password: requiredString(raw, 'password', 'password') }), raw };
  }
  if (raw.oauth2 === undefined) throw invalid(secretId, 'has neither "password" nor "oauth2"');
  const o = raw.oauth2;
  if (!isObject(o)) throw invalid(secretId, 'has "oauth2" that is not an object');

  const grantType = optionalString(o, 'grantType', 'oauth2.grantType') ?? 'refresh_token';
  if (grantType !== 'refresh_token' && grantType !== 'client_credentials') {
    throw invalid(secretId, 'has "oauth2.grantType" that is neither "refresh_token" nor "client_credentials"');
  }
  const tenantId = optionalString(o, 'tenantId', 'oauth2.tenantId');
  const endpoint = optionalString(o, 'tokenEndpoint', 'oauth2.tokenEndpoint');
  if (tenantId !== undefined && endpoint !== undefined) {
    throw invalid(secretId, 'has both "oauth2.tenantId" and "oauth2.tokenEndpoint"; keep one');
  }
  if (tenantId === undefined && endpoint === undefined) {
    throw invalid(secretId, 'has neither "oauth2.tokenEndpoint" nor "oauth2.tenantId"');
  }
  const tokenEndpoint = endpoint ?? microsoftTokenEndpoint(tenantId!);
  const clientId = requiredString(o, 'clientId', 'oauth2.clientId');

  if (grantType === 'client_credentials') {
    if (o.refreshToken !== undefined) {
      throw invalid(secretId, 'has "oauth2.refreshToken" with grantType "client_credentials"; remove one');
    }
    return {
      doc: withUser({
        kind: 'oauth2-client-credentials' as const,
        tokenEndpoint,
        clientId,
        clientSecret: requiredString(o, 'clientSecret', 'oauth2.clientSecret'),
        scope: requiredString(o, 'scope', 'oauth2.scope'),
      }),
      raw,
    };
  }
  const clientSecret = optionalString(o, 'clientSecret', 'oauth2.clientSecret');
  const scope = optionalString(o, 'scope', 'oauth2.scope');
  return {
    doc: withUser({
      kind: 'oauth2-refresh-token' as const,
      tokenEndpoint,
      clientId,
      refreshToken: requiredString(o, 'refreshToken', 'oauth2.refreshToken'),
      clientSecret,
      scope,
    }),
    raw,
  };
}

/**
 * An SDK failure as a DrainError. The cause is a summary, not the SDK error itself: a
 * GetSecretValue error may carry the raw response (the secret) in `$response`.
 */
function sdkFailure(operation: string, secretId: string, error: unknown): DrainError {
  const description = describeSdkError(error);
  const summary = new Error(description);
  summary.name = sdkErrorName(error);
  return new DrainError('CREDENTIALS_FAILED', `Secrets Manager ${operation} of secret "${secretId}" failed: ${description}`, {
    phase: 'credentials',
    retryable: isRetryableSdkError(error),
    cause: summary,
  });
}

export class SecretsManagerCredentials implements CredentialsProvider {
  private readonly client: SecretsManagerClient;
  private readonly cacheTtlMs: number;
  private readonly now: () => number;
  private readonly fetch: typeof fetch | undefined;
  private readonly tokenTimeoutMs: number | undefined;
  private readonly logger: DrainLogger;
  private readonly secrets = new Map<string, CachedSecret>();
  private readonly reads = new Map<string, Promise<CachedSecret>>();
  private readonly saves = new Map<string, Promise<void>>();
  /**
   * Bumped whenever this process changes a secret's cached document itself (a rotation). A read
   * that began at an older generation holds an older document than the cache and must not
   * replace it.
   */
  private readonly generations = new Map<string, number>();
  private readonly tokens: AccessTokenCache;
  private readonly cas: SecretVersionCas;
  private readonly sleep: ((ms: number) => Promise<void>) | undefined;
  /** This process, in the claims it writes. */
  private readonly processId = randomUUID();

  constructor(options: SecretsManagerCredentialsOptions) {
    this.client = options.client;
    this.cacheTtlMs = options.cacheTtlMs ?? DEFAULT_SECRET_CACHE_TTL_MS;
    this.now = options.now ?? Date.now;
    this.fetch = options.fetch;
    this.tokenTimeoutMs = options.tokenTimeoutMs;
    this.logger = options.logger ?? silentLogger;
    this.tokens = new AccessTokenCache(this.now);
    this.cas = new SecretVersionCas(this.client);
    this.sleep = options.sleep;
  }

  /**
   * `forceRefresh` reads the secret again and gets a new access token: the server refused what
   * we had, and an operator may have replaced the secret since.
   */
  async get(mailbox: MailboxConfig, options: { forceRefresh?: boolean } = {}): Promise<Pop3Credentials> {
    const source = mailbox.secret;
    if (source.type !== 'secrets-manager') {
      throw new DrainError(
        'CONFIG_INVALID',
        `mailbox "${mailbox.id}" takes its secret from ${source.type === 'oauth2' ? 'local OAuth2 settings' : `a ${source.type} source`}, not Secrets Manager`,
        { phase: 'credentials', retryable: false },
      );
    }
    const secretId = source.secretId;
    const force = options.forceRefresh === true;
    const secret = await this.secret(secretId, force, mailbox.id);
    const user = secret.doc.user ?? mailbox.user;
    if (secret.doc.kind === 'password') return { user, password: secret.doc.password };

    const rotating = (mailbox as { rotatingRefreshToken?: unknown }).rotatingRefreshToken === true;
    const accessToken = await this.tokens.get(secretId, force, async () => {
      if (rotating && secret.doc.kind === 'oauth2-refresh-token') return this.redeemSerialized(secretId, mailbox.id);
      // The cached document may have changed (a rotation) since `secret` above: take the latest.
      const latest = this.secrets.get(secretId) ?? secret;
      return this.issueToken(secretId, latest, mailbox.id);
    });
    return { user, accessToken };
  }

  /**
   * A rotating refresh token (`rotatingRefreshToken: true`): redeemed under a claim in the secret
   * (refresh-token-redemption.ts), so no other execution environment, and no other mailbox
   * sharing the secret, redeems the same token or overwrites a newer one.
   */
  private async redeemSerialized(secretId: string, mailboxId: string): Promise<TokenResult> {
    const redemption = await redeemOnce({
      cas: this.cas,
      secretId,
      owner: `${this.processId}:${mailboxId}`,
      now: this.now,
      ...withoutUndefined({ sleep: this.sleep }),
      redeem: async (raw) => {
        const { doc } = parseSecretDocument(secretId, JSON.stringify(raw));
        return this.issueToken(secretId, { doc, raw, fetchedAt: this.now(), unsaved: false }, mailboxId, false);
      },
    });
    const { doc, raw } = parseSecretDocument(secretId, JSON.stringify(redemption.raw));
    this.secrets.set(secretId, { doc, raw, fetchedAt: this.now(), unsaved: false });
    this.generations.set(secretId, this.generation(secretId) + 1);
    if (redemption.result.refreshToken !== undefined) {
      if (redemption.saved) this.logger.info('saved a rotated OAuth2 refresh token', { mailboxId, secretId });
      else this.logger.warn('could not save a rotated OAuth2 refresh token: the claim on the secret expired before the save', { mailboxId, secretId });
    }
    return redemption.result;
  }

  private async issueToken(secretId: string, secret: CachedSecret, mailboxId: string, writeBack = true): Promise<TokenResult> {
    const doc = secret.doc;
    const options = { fetch: this.fetch, now: this.now, timeoutMs: this.tokenTimeoutMs };
    if (doc.kind === 'oauth2-client-credentials') {
      return clientCredentialsGrant(
        { tokenEndpoint: doc.tokenEndpoint, clientId: doc.clientId, clientSecret: doc.clientSecret, scope: doc.scope },
        options,
      );
    }
    if (doc.kind !== 'oauth2-refresh-token') throw new Error('unreachable: password secrets have no token');
    const result = await refreshTokenGrant(
      {
        tokenEndpoint: doc.tokenEndpoint,
        clientId: doc.clientId,
        clientSecret: doc.clientSecret,
        refreshToken: doc.refreshToken,
        scope: doc.scope,
      },
      options,
    );
    if (writeBack && result.refreshToken !== undefined) await this.rotate(secretId, secret, result.refreshToken, mailboxId);
    return result;
  }

  /**
   * Keep a rotated refresh token: in memory at once (so this process goes on using it), then in
   * Secrets Manager. A failed write is logged and tried again on the next `get`; the access token
   * we already have is still handed out.
   */
  private async rotate(secretId: string, secret: CachedSecret, refreshToken: string, mailboxId: string): Promise<void> {
    if (secret.doc.kind !== 'oauth2-refresh-token') return;
    const oauth2 = isObject(secret.raw.oauth2) ? secret.raw.oauth2 : {};
    const updated: CachedSecret = {
      doc: { ...secret.doc, refreshToken },
      raw: { ...secret.raw, oauth2: { ...oauth2, refreshToken } },
      fetchedAt: secret.fetchedAt,
      unsaved: true,
    };
    this.secrets.set(secretId, updated);
    this.generations.set(secretId, this.generation(secretId) + 1);
    await this.save(secretId, updated, mailboxId);
  }

  private save(secretId: string, secret: CachedSecret, mailboxId: string): Promise<void> {
    const running = this.saves.get(secretId);
    if (running !== undefined) return running;
    const save = this.put(secretId, secret, mailboxId).finally(() => this.saves.delete(secretId));
    this.saves.set(secretId, save);
    return save;
  }

  private async put(secretId: string, secret: CachedSecret, mailboxId: string): Promise<void> {
    try {
      await this.client.send(new PutSecretValueCommand({ SecretId: secretId, SecretString: JSON.stringify(secret.raw) }));
      secret.unsaved = false;
      secret.fetchedAt = this.now();
      this.logger.info('saved a rotated OAuth2 refresh token', { mailboxId, secretId });
    } catch (error) {
      this.logger.warn('could not save a rotated OAuth2 refresh token; this process keeps it and will try again', {
        mailboxId,
        secretId,
        error: sdkFailure('PutSecretValue', secretId, error).message,
      });
    }
  }

  private async secret(secretId: string, force: boolean, mailboxId: string): Promise<CachedSecret> {
    const cached = this.secrets.get(secretId);
    if (cached?.unsaved === true) {
      // What we hold is newer than what Secrets Manager has: save it rather than read the old one.
      await this.save(secretId, cached, mailboxId);
      if (cached.unsaved) return cached;
    }
    if (!force && cached !== undefined && this.now() - cached.fetchedAt < this.cacheTtlMs) return cached;

    const running = this.reads.get(secretId);
    if (running !== undefined) return running;
    const read = this.read(secretId).finally(() => this.reads.delete(secretId));
    this.reads.set(secretId, read);
    return read;
  }

  private generation(secretId: string): number {
    return this.generations.get(secretId) ?? 0;
  }

  /**
   * Read a secret and cache it, unless the cache changed while the read was in flight: a refresh
   * token rotated meanwhile (saved or not) is newer than what the read got, and putting the old
   * one back would present a redeemed refresh token again (which a server that detects reuse
   * answers by revoking them all). Then the cached entry is kept, and returned.
   */
  private async read(secretId: string): Promise<CachedSecret> {
    const generation = this.generation(secretId);
    let secretString: string | undefined;
    try {
      const response = await this.client.send(new GetSecretValueCommand({ SecretId: secretId }));
      secretString = response.SecretString;
    } catch (error) {
      throw sdkFailure('GetSecretValue', secretId, error);
    }
    if (typeof secretString !== 'string') throw invalid(secretId, 'has no SecretString (binary secrets are not supported)');
    const { doc, raw } = parseSecretDocument(secretId, secretString);
    const current = this.secrets.get(secretId);
    if (current !== undefined && (current.unsaved || this.generation(secretId) !== generation)) return current;
    const entry: CachedSecret = { doc, raw, fetchedAt: this.now(), unsaved: false };
    this.secrets.set(secretId, entry);
    return entry;
  }
}
