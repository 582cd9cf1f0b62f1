/**
 * Mailbox credentials for the command-line tool: a password from an environment variable or a
 * file, or OAuth2 (a ready access token, or a refresh token / client secret exchanged at a token
 * endpoint). A refresh token the server rotates is written back to its file, atomically and
 * readable by the owner only, so the next run uses it.
 *
 * Errors name the variable, the file or the field, never a value.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { DrainError } from '../../drain/errors.js';
import type { LocalOAuth2Source, MailboxConfig } from '../../drain/mailbox.js';
import { silentLogger, type CredentialsProvider, type DrainLogger } from '../../drain/ports.js';
import type { Pop3Credentials } from '../../pop3/index.js';
import { runPasswordCommand } from './password-command.js';
import { AccessTokenCache } from '../oauth2/access-token-cache.js';
// The token client (HTTP, JSON, its errors) loads only when a token is issued: a password drain starts without it.
import type { TokenResult } from '../oauth2/token-client.js';

/** Most bytes read from a password or token file: its first line is all we want. */
export const MAX_SECRET_FILE_BYTES = 64 * 1024;
/** Mode of a refresh-token file we write: owner read/write only. */
export const SECRET_FILE_MODE = 0o600;

export interface LocalCredentialsOptions {
  /** @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Epoch ms. @default Date.now */
  now?: () => number;
  /** For the token requests. @default globalThis.fetch */
  fetch?: typeof fetch;
  /** @default TOKEN_REQUEST_TIMEOUT_MS */
  tokenTimeoutMs?: number;
  /** Warnings (a rotated refresh token that could not be saved). @default silence */
  logger?: DrainLogger;
}

function failed(message: string, cause?: unknown): DrainError {
  return new DrainError('CREDENTIALS_FAILED', message, { phase: 'credentials', retryable: false, cause });
}

/** A file-system error as a short phrase (its code), without the file's content. */
function fsReason(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return 'it does not exist';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'it is a directory';
    default:
      return typeof code === 'string' ? code : 'unknown error';
  }
}

/** The first line of a file, without its line ending; at most MAX_SECRET_FILE_BYTES are read. */
async function readFirstLine(path: string, what: string): Promise<string> {
  let text: string;
  try {
    const handle = await open(path, 'r');
    try {
      const buffer = Buffer.alloc(MAX_SECRET_FILE_BYTES);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
      text = buffer.subarray(0, bytesRead).toString('utf8');
    } finally {
      await handle.close();
    }
  } catch (error) {
    // The cause is the fs error: its message names the path and the code, nothing read.
    throw failed(`cannot read the ${what} file ${path}: ${fsReason(error)}`, error);
  }
  const newline = text.search(/\r?\n|\r/);
  const line = newline < 0 ? text : text.slice(0, newline);
  if (line === '') throw failed(`the ${what} file ${path} is empty (the first line holds the ${what})`);
  return line;
}

/**
 * Whether a secret file can be read by users other than its owner (group or world read bit):
 * the CLI warns, as ssh does. False when the file cannot be examined, and on Windows, where
 * modes don't say.
 */
export async function isReadableByOthers(path: string): Promise<boolean> {
  if (process.platform === 'win32') return false;
  try {
    const s = await stat(path);
    return (s.mode & 0o044) !== 0;
  } catch {
    return false;
  }
}

/**
 * Whether a file can be changed by users other than its owner (group or world write bit): a
 * configuration that names a command to run must not be (the CLI refuses it). False on Windows.
 */
export async function isWritableByOthers(path: string): Promise<boolean> {
  if (process.platform === 'win32') return false;
  const s = await stat(path);
  return (s.mode & 0o022) !== 0;
}

/**
 * Replace a file's content atomically: write a temporary file beside it (mode 0600, created
 * exclusively), flush it, rename it over the target, flush the directory.
 */
export async function writeSecretFileAtomically(path: string, content: string): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  let created = false;
  try {
    const handle = await open(temp, 'wx', SECRET_FILE_MODE);
    created = true;
    try {
      await handle.writeFile(content, 'utf8');
      await handle.chmod(SECRET_FILE_MODE); // against a umask that took bits away: exact mode
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
    created = false;
  } finally {
    if (created) await unlink(temp).catch(() => {});
  }
  try {
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch {
    // Not every platform can fsync a directory; the rename itself is still atomic.
  }
}

export class LocalCredentials implements CredentialsProvider {
  private readonly env: NodeJS.ProcessEnv;
  private readonly now: () => number;
  private readonly fetch: typeof fetch | undefined;
  private readonly tokenTimeoutMs: number | undefined;
  private readonly logger: DrainLogger;
  private readonly tokens: AccessTokenCache;
  /** Rotated refresh tokens this process holds that are not (or cannot be) in their source. */
  private readonly heldRefreshTokens = new Map<string, string>();

  constructor(options: LocalCredentialsOptions = {}) {
    this.env = options.env ?? process.env;
    this.now = options.now ?? Date.now;
    this.fetch = options.fetch;
    this.tokenTimeoutMs = options.tokenTimeoutMs;
    this.logger = options.logger ?? silentLogger;
    this.tokens = new AccessTokenCache(this.now);
  }

  async get(mailbox: MailboxConfig, options: { forceRefresh?: boolean } = {}): Promise<Pop3Credentials> {
    const source = mailbox.secret;
    switch (source.type) {
      case 'env':
        return { user: mailbox.user, password: this.envValue(source.variable, `the password of mailbox "${mailbox.id}"`) };
      case 'file':
        return { user: mailbox.user, password: await readFirstLine(source.path, 'password') };
      case 'command':
        return { user: mailbox.user, password: await runPasswordCommand(source.argv, { env: this.env }) };
      case 'oauth2':
        return { user: mailbox.user, accessToken: await this.accessToken(mailbox, source.oauth2, options.forceRefresh === true) };
      case 'secrets-manager':
        throw new DrainError(
          'CONFIG_INVALID',
          `mailbox "${mailbox.id}" uses Secrets Manager (secret "${source.secretId}"); run it with --secrets-manager or in AWS`,
          { phase: 'credentials', retryable: false },
        );
    }
  }

  private envValue(variable: string, what: string): string {
    const value = this.env[variable];
    if (value === undefined) throw failed(`environment variable ${variable} (${what}) is not set`);
    if (value === '') throw failed(`environment variable ${variable} (${what}) is empty`);
    return value;
  }

  private async accessToken(mailbox: MailboxConfig, o: LocalOAuth2Source, force: boolean): Promise<string> {
    if (o.accessTokenEnv !== undefined) {
      // A ready token: nothing to refresh here; a refused one needs a new value in the variable.
      return this.envValue(o.accessTokenEnv, `the OAuth2 access token of mailbox "${mailbox.id}"`);
    }
    // The settings hold names and paths only, never a secret: a safe key for shared tokens.
    const key = JSON.stringify(o);
    return this.tokens.get(key, force, () => this.issue(mailbox, o, key));
  }

  private async issue(mailbox: MailboxConfig, o: LocalOAuth2Source, key: string): Promise<TokenResult> {
    const mb = `mailbox "${mailbox.id}"`;
    if (o.tokenEndpoint === undefined) throw failed(`${mb}: OAuth2 needs accessTokenEnv or a tokenEndpoint`);
    const clientId = o.clientId ?? (o.clientIdEnv === undefined ? undefined : this.envValue(o.clientIdEnv, `the OAuth2 client id of ${mb}`));
    if (clientId === undefined) throw failed(`${mb}: OAuth2 needs clientId or clientIdEnv`);
    const clientSecret =
      o.clientSecretEnv !== undefined
        ? this.envValue(o.clientSecretEnv, `the OAuth2 client secret of ${mb}`)
        : o.clientSecretFile !== undefined
          ? await readFirstLine(o.clientSecretFile, 'OAuth2 client secret')
          : undefined;
    const hasRefresh = o.refreshTokenEnv !== undefined || o.refreshTokenFile !== undefined;
    const grantType = o.grantType ?? (hasRefresh ? 'refresh_token' : 'client_credentials');
    const options = { fetch: this.fetch, now: this.now, timeoutMs: this.tokenTimeoutMs };

    if (grantType === 'client_credentials') {
      if (clientSecret === undefined) throw failed(`${mb}: the client_credentials grant needs clientSecretEnv or clientSecretFile`);
      if (o.scope === undefined) throw failed(`${mb}: the client_credentials grant needs a scope`);
      const { clientCredentialsGrant } = await import('../oauth2/token-client.js');
      return clientCredentialsGrant({ tokenEndpoint: o.tokenEndpoint, clientId, clientSecret, scope: o.scope }, options);
    }

    const refreshToken =
      this.heldRefreshTokens.get(key) ??
      (o.refreshTokenFile !== undefined
        ? await readFirstLine(o.refreshTokenFile, 'OAuth2 refresh token')
        : o.refreshTokenEnv !== undefined
          ? this.envValue(o.refreshTokenEnv, `the OAuth2 refresh token of ${mb}`)
          : undefined);
    if (refreshToken === undefined) throw failed(`${mb}: the refresh_token grant needs refreshTokenEnv or refreshTokenFile`);

    const { refreshTokenGrant } = await import('../oauth2/token-client.js');
    const result = await refreshTokenGrant(
      { tokenEndpoint: o.tokenEndpoint, clientId, clientSecret, refreshToken, scope: o.scope },
      options,
    );
    if (result.refreshToken !== undefined) await this.keepRotated(mailbox.id, o, key, result.refreshToken);
    return result;
  }

  /**
   * A rotated refresh token replaces the file it came from. From an environment variable it can
   * only be kept for this process: a warning says so.
   */
  private async keepRotated(mailboxId: string, o: LocalOAuth2Source, key: string, refreshToken: string): Promise<void> {
    if (o.refreshTokenFile === undefined) {
      this.heldRefreshTokens.set(key, refreshToken);
      this.logger.warn('the token endpoint rotated the refresh token, which came from an environment variable: this process uses the new one; update the variable (or use refreshTokenFile) before the old one stops working', {
        mailboxId,
        variable: o.refreshTokenEnv,
      });
      return;
    }
    try {
      await writeSecretFileAtomically(o.refreshTokenFile, `${refreshToken}\n`);
      this.heldRefreshTokens.delete(key);
      this.logger.info('saved a rotated OAuth2 refresh token', { mailboxId, path: o.refreshTokenFile });
    } catch (error) {
      this.heldRefreshTokens.set(key, refreshToken);
      this.logger.warn('could not save a rotated OAuth2 refresh token; this process keeps using it', {
        mailboxId,
        path: o.refreshTokenFile,
        reason: fsReason(error),
      });
    }
  }
}
