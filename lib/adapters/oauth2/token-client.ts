/**
 * A small OAuth2 token client (RFC 6749) over the global `fetch`: the refresh-token grant and
 * the client-credentials grant, which is all popdrain needs to log in to Microsoft 365 and
 * Gmail with XOAUTH2/OAUTHBEARER.
 *
 * Failures are `DrainError` CREDENTIALS_FAILED (phase 'credentials'). Their messages carry the
 * token endpoint's host, the OAuth `error` code and a cleaned `error_description`, and never
 * the request body, the client secret or any token: the description is stripped of control
 * characters, shortened, and scrubbed of the secrets of the request and of anything shaped like
 * a token, in case a server echoes them.
 */
import { scrubSecrets } from '../../pop3/scrub.js';
import { DrainError } from '../../drain/errors.js';

/** How long one token request may take, response included. */
export const TOKEN_REQUEST_TIMEOUT_MS = 15_000;
/** Largest token response read; a token endpoint has no reason to send more. */
export const MAX_TOKEN_RESPONSE_BYTES = 64 * 1024;
/**
 * Lifetime assumed when a response has no `expires_in`. Short on purpose: a token is then never
 * used long past a real expiry we were not told about.
 */
export const DEFAULT_TOKEN_LIFETIME_S = 300;
/** Longest `error_description` quoted in an error message. */
export const MAX_ERROR_DESCRIPTION_CHARS = 300;

/** OAuth `error` codes that say the grant or the client is wrong: trying again cannot help. */
const PERMANENT_OAUTH_ERRORS: ReadonlySet<string> = new Set([
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'unauthorized_client',
  'unsupported_grant_type',
  'invalid_scope',
  'access_denied',
  'consent_required',
  'interaction_required',
]);

/** OAuth `error` codes that say the server is having trouble. */
const TRANSIENT_OAUTH_ERRORS: ReadonlySet<string> = new Set(['server_error', 'temporarily_unavailable', 'slow_down']);

export interface TokenResult {
  accessToken: string;
  /** Epoch ms at which the access token expires. */
  expiresAt: number;
  /** A new refresh token, when the server rotated it (differs from the one sent). */
  refreshToken?: string;
  /** The granted scope, when the server said. */
  scope?: string;
}

export interface RefreshTokenGrant {
  tokenEndpoint: string;
  clientId: string;
  /** Absent for public clients (e.g. a desktop app registration). */
  clientSecret?: string;
  refreshToken: string;
  scope?: string;
}

export interface ClientCredentialsGrant {
  tokenEndpoint: string;
  clientId: string;
  clientSecret: string;
  /** e.g. `https://outlook.office365.com/.default` for Microsoft 365 app-only POP3. */
  scope: string;
}

export interface TokenClientOptions {
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Epoch ms, for expiry times. @default Date.now */
  now?: () => number;
  /** @default TOKEN_REQUEST_TIMEOUT_MS */
  timeoutMs?: number;
  /**
   * How the client authenticates: `post` sends client_id/client_secret in the form body
   * (Microsoft, Google), `basic` in an Authorization header (RFC 6749 section 2.3.1).
   * @default 'post'
   */
  clientAuthentication?: 'post' | 'basic';
}

/** The token endpoint of a Microsoft Entra tenant (a tenant id, a domain, or `organizations`). */
export function microsoftTokenEndpoint(tenant: string): string {
  return `https://login.microsoftonline.com/${encodeURIComponent(tenant)}/oauth2/v2.0/token`;
}

export function refreshTokenGrant(grant: RefreshTokenGrant, options: TokenClientOptions = {}): Promise<TokenResult> {
  const form: Record<string, string> = { grant_type: 'refresh_token', refresh_token: grant.refreshToken };
  if (grant.scope !== undefined && grant.scope !== '') form.scope = grant.scope;
  return requestToken(
    grant.tokenEndpoint,
    form,
    { clientId: grant.clientId, clientSecret: grant.clientSecret },
    [grant.refreshToken],
    'refresh token',
    options,
  ).then((result) => {
    // Report a refresh token only when it is really a new one.
    if (result.refreshToken === grant.refreshToken) delete result.refreshToken;
    return result;
  });
}

export function clientCredentialsGrant(grant: ClientCredentialsGrant, options: TokenClientOptions = {}): Promise<TokenResult> {
  return requestToken(
    grant.tokenEndpoint,
    { grant_type: 'client_credentials', scope: grant.scope },
    { clientId: grant.clientId, clientSecret: grant.clientSecret },
    [],
    'client credentials',
    options,
  ).then((result) => {
    // A client-credentials grant has no refresh token to rotate (RFC 6749 section 4.4.3).
    delete result.refreshToken;
    return result;
  });
}

function fail(message: string, retryable: boolean, cause?: unknown): DrainError {
  return new DrainError('CREDENTIALS_FAILED', message, { phase: 'credentials', retryable, cause });
}

function isLoopback(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

function parseEndpoint(tokenEndpoint: string): URL {
  let url: URL;
  try {
    url = new URL(tokenEndpoint);
  } catch {
    throw fail('the OAuth2 token endpoint is not a URL', false);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopback(url.hostname))) {
    throw fail(`the OAuth2 token endpoint at ${url.host} must use https`, false);
  }
  if (url.username !== '' || url.password !== '') {
    throw fail(`the OAuth2 token endpoint at ${url.host} must not hold credentials in its URL`, false);
  }
  return url;
}

/** Anything that looks like a token: a long run without spaces of token characters. */
const TOKEN_LIKE = /[A-Za-z0-9._~+/=-]{48,}/g;

/**
 * The forms a secret can take in text a server sends back: as is, form-encoded as in the request
 * body (URLSearchParams: space as `+`, `~` as `%7E`), percent-encoded as in a URL
 * (encodeURIComponent), the last two also with lower-case hex digits.
 */
function secretForms(secret: string): string[] {
  const lowerHex = (s: string): string => s.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase());
  const form = new URLSearchParams({ s: secret }).toString().slice('s='.length);
  const forms = [secret, form, lowerHex(form)];
  try {
    const uri = encodeURIComponent(secret);
    forms.push(uri, lowerHex(uri));
  } catch {
    // A lone surrogate (URIError): URLSearchParams above encoded it as U+FFFD instead.
  }
  return forms;
}

/** A server's `error_description`, made safe to quote: one line, short, secrets scrubbed. */
export function sanitizeErrorDescription(text: string, secrets: readonly string[]): string {
  let out = text;
  const forms = new Set(secrets.filter((secret) => secret.length >= 4).flatMap(secretForms));
  // Longest first: one form may hold a shorter one (of this secret or another).
  for (const form of [...forms].sort((a, b) => b.length - a.length)) {
    out = out.split(form).join('[redacted]');
  }
  // Base64 (a secret alone or inside a longer blob) and forms with the symbols stripped.
  out = scrubSecrets(out, secrets);
  out = out
    .replace(TOKEN_LIKE, '[redacted]')
    .replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return out.length > MAX_ERROR_DESCRIPTION_CHARS ? `${out.slice(0, MAX_ERROR_DESCRIPTION_CHARS)}...` : out;
}

/** An OAuth `error` code is ASCII by the RFC; keep it to a safe, short token. */
function sanitizeErrorCode(code: string): string {
  return code.replace(/[^\w.-]/g, '').slice(0, 64) || 'unknown_error';
}

async function readLimited(response: Response): Promise<string | undefined> {
  if (response.body === null) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > MAX_TOKEN_RESPONSE_BYTES) {
      await reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseLifetime(value: unknown): number | undefined {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : NaN;
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

async function requestToken(
  tokenEndpoint: string,
  form: Record<string, string>,
  client: { clientId: string; clientSecret: string | undefined },
  extraSecrets: readonly string[],
  grantName: string,
  options: TokenClientOptions,
): Promise<TokenResult> {
  const url = parseEndpoint(tokenEndpoint);
  const where = `token endpoint ${url.host}`;
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const now = options.now ?? Date.now;
  const secrets = [...extraSecrets, ...(client.clientSecret === undefined ? [] : [client.clientSecret])];

  const body = new URLSearchParams(form);
  const headers: Record<string, string> = {
    'content-type': 'application/x-www-form-urlencoded',
    accept: 'application/json',
  };
  if (options.clientAuthentication === 'basic' && client.clientSecret !== undefined) {
    // RFC 6749 section 2.3.1: both parts form-encoded before base64.
    const pair = `${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret)}`;
    headers.authorization = `Basic ${Buffer.from(pair).toString('base64')}`;
  } else {
    body.set('client_id', client.clientId);
    if (client.clientSecret !== undefined) body.set('client_secret', client.clientSecret);
  }

  let response: Response;
  let text: string | undefined;
  try {
    response = await fetchImpl(url, {
      method: 'POST',
      headers,
      body: body.toString(),
      // A redirect would carry the form, secrets and all, to wherever it points.
      redirect: 'manual',
      signal: AbortSignal.timeout(options.timeoutMs ?? TOKEN_REQUEST_TIMEOUT_MS),
    });
    text = await readLimited(response);
  } catch (error) {
    const name = error instanceof Error ? error.name : 'Error';
    if (name === 'TimeoutError' || name === 'AbortError') {
      throw fail(`${grantName} grant: ${where} did not answer within ${options.timeoutMs ?? TOKEN_REQUEST_TIMEOUT_MS} ms`, true, error);
    }
    // undici's "fetch failed" TypeError holds the system error (ECONNREFUSED, ...) as its cause.
    const code = (error as { cause?: { code?: unknown } } | undefined)?.cause?.code;
    const detail = typeof code === 'string' ? code.replace(/[^\w]/g, '') : name;
    // Neither error holds anything of the request: safe as a cause.
    throw fail(`${grantName} grant: could not reach ${where} (${detail})`, true, error);
  }

  const status = response.status;
  if (status >= 300 && status < 400) {
    throw fail(`${grantName} grant: ${where} answered with a redirect (HTTP ${status}); token requests do not follow redirects`, false);
  }
  if (text === undefined) {
    throw fail(`${grantName} grant: ${where} answered more than ${MAX_TOKEN_RESPONSE_BYTES} bytes (HTTP ${status})`, status >= 500);
  }

  let json: Record<string, unknown> | undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) json = parsed as Record<string, unknown>;
  } catch {
    json = undefined;
  }

  if (status < 200 || status >= 300) {
    const transientStatus = status >= 500 || status === 429 || status === 408;
    if (json !== undefined && typeof json.error === 'string') {
      // An endpoint may answer with a secret as its error code, or with its symbols stripped.
      const code = scrubSecrets(sanitizeErrorCode(scrubSecrets(json.error, secrets)), secrets);
      const description =
        typeof json.error_description === 'string' ? sanitizeErrorDescription(json.error_description, secrets) : '';
      const retryable = PERMANENT_OAUTH_ERRORS.has(code) ? false : transientStatus || TRANSIENT_OAUTH_ERRORS.has(code);
      const tail = description === '' ? '' : ` (${description})`;
      throw fail(`${grantName} grant refused by ${where}: ${code}${tail} (HTTP ${status})`, retryable);
    }
    throw fail(`${grantName} grant: ${where} answered HTTP ${status}${json === undefined ? ' without a JSON body' : ''}`, transientStatus);
  }

  if (json === undefined) {
    throw fail(`${grantName} grant: ${where} answered HTTP ${status} with a body that is not a JSON object`, false);
  }
  const accessToken = json.access_token;
  if (typeof accessToken !== 'string' || accessToken === '') {
    throw fail(`${grantName} grant: ${where} answered without an access_token`, false);
  }
  const lifetimeS = parseLifetime(json.expires_in) ?? DEFAULT_TOKEN_LIFETIME_S;
  const result: TokenResult = { accessToken, expiresAt: now() + lifetimeS * 1000 };
  if (typeof json.refresh_token === 'string' && json.refresh_token !== '') result.refreshToken = json.refresh_token;
  if (typeof json.scope === 'string') result.scope = json.scope;
  return result;
}
