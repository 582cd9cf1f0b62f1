/**
 * A loopback OAuth2 token endpoint (RFC 6749) for tests: it issues access tokens for configured
 * clients, for the refresh-token and the client-credentials grants, rotates refresh tokens when
 * asked (optionally revoking the old one, as strict servers do), and answers scripted errors
 * (invalid_grant, 500, a stall).
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface TokenClient {
  clientId: string;
  /** Absent for a public client. */
  clientSecret?: string;
}

export interface TokenServerOptions {
  clients: TokenClient[];
  /** Refresh tokens that are valid at the start. */
  refreshTokens?: string[];
  /** Issue a new refresh token with every refresh-token grant. @default false */
  rotate?: boolean;
  /** With `rotate`: the old refresh token stops working once redeemed. @default false */
  revokeOnRotate?: boolean;
  /** `expires_in` of issued access tokens, in seconds. @default 3600 */
  expiresInS?: number;
  /** The path of the token endpoint. @default '/tenant/oauth2/v2.0/token' */
  path?: string;
}

export interface TokenRequestRecord {
  grantType: string | undefined;
  clientId: string | undefined;
  /** The form fields as received. */
  form: Record<string, string>;
  /** How the client authenticated. */
  auth: 'post' | 'basic' | 'none';
  contentType: string | undefined;
}

export type TokenFault =
  | { kind: 'oauth-error'; error: string; description?: string; status?: number }
  | { kind: 'status'; status: number; body?: string; contentType?: string }
  | { kind: 'stall' }
  | { kind: 'redirect'; location: string };

export interface OAuth2TokenServer {
  /** The token endpoint URL. */
  readonly url: string;
  readonly requests: TokenRequestRecord[];
  /** Access tokens issued, in order. */
  readonly issued: string[];
  /** Refresh tokens valid now. */
  validRefreshTokens(): string[];
  addRefreshToken(token: string): void;
  setRotation(rotate: boolean, revokeOnRotate?: boolean): void;
  /** Answer the next `count` requests with `fault`. */
  failNext(count: number, fault: TokenFault): void;
  close(): Promise<void>;
}

function token(prefix: string): string {
  return `${prefix}.${randomBytes(24).toString('base64url')}`;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(text);
}

export async function startTokenServer(options: TokenServerOptions): Promise<OAuth2TokenServer> {
  const path = options.path ?? '/tenant/oauth2/v2.0/token';
  const clients = new Map(options.clients.map((c) => [c.clientId, c]));
  const refreshTokens = new Set(options.refreshTokens ?? []);
  let rotate = options.rotate ?? false;
  let revokeOnRotate = options.revokeOnRotate ?? false;
  const expiresIn = options.expiresInS ?? 3600;
  const requests: TokenRequestRecord[] = [];
  const issued: string[] = [];
  const faults: Array<{ remaining: number; fault: TokenFault }> = [];

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const text = await readBody(req);
    if (req.method !== 'POST' || (req.url ?? '').split('?')[0] !== path) {
      json(res, 404, { error: 'not_found' });
      return;
    }
    const form = Object.fromEntries(new URLSearchParams(text));
    let clientId = form.client_id;
    let clientSecret = form.client_secret;
    let auth: TokenRequestRecord['auth'] = clientSecret === undefined ? 'none' : 'post';
    const header = req.headers.authorization;
    if (header?.startsWith('Basic ')) {
      const [id, secret] = Buffer.from(header.slice(6), 'base64').toString('utf8').split(':');
      clientId = decodeURIComponent(id ?? '');
      clientSecret = decodeURIComponent(secret ?? '');
      auth = 'basic';
    }
    requests.push({ grantType: form.grant_type, clientId, form, auth, contentType: req.headers['content-type'] });

    const fault = faults[0];
    if (fault !== undefined) {
      fault.remaining -= 1;
      if (fault.remaining <= 0) faults.shift();
      const f = fault.fault;
      switch (f.kind) {
        case 'oauth-error':
          json(res, f.status ?? 400, { error: f.error, ...(f.description === undefined ? {} : { error_description: f.description }) });
          return;
        case 'status':
          res.writeHead(f.status, { 'content-type': f.contentType ?? 'text/html' });
          res.end(f.body ?? '<html>Service Unavailable</html>');
          return;
        case 'stall':
          return; // never answers; the client's timeout must fire
        case 'redirect':
          res.writeHead(307, { location: f.location });
          res.end();
          return;
      }
    }

    const client = clientId === undefined ? undefined : clients.get(clientId);
    if (client === undefined || client.clientSecret !== clientSecret) {
      json(res, 401, { error: 'invalid_client', error_description: 'Client authentication failed.' });
      return;
    }

    if (form.grant_type === 'refresh_token') {
      const presented = form.refresh_token;
      if (presented === undefined || !refreshTokens.has(presented)) {
        json(res, 400, { error: 'invalid_grant', error_description: 'The refresh token is invalid or expired.' });
        return;
      }
      const accessToken = token('at');
      issued.push(accessToken);
      const body: Record<string, unknown> = { token_type: 'Bearer', access_token: accessToken, expires_in: expiresIn };
      if (form.scope !== undefined) body.scope = form.scope;
      if (rotate) {
        const next = token('rt');
        refreshTokens.add(next);
        if (revokeOnRotate) refreshTokens.delete(presented);
        body.refresh_token = next;
      }
      json(res, 200, body);
      return;
    }
    if (form.grant_type === 'client_credentials') {
      if (form.scope === undefined) {
        json(res, 400, { error: 'invalid_scope', error_description: 'A scope is required.' });
        return;
      }
      const accessToken = token('at');
      issued.push(accessToken);
      json(res, 200, { token_type: 'Bearer', access_token: accessToken, expires_in: expiresIn });
      return;
    }
    json(res, 400, { error: 'unsupported_grant_type' });
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}${path}`,
    requests,
    issued,
    validRefreshTokens: () => [...refreshTokens],
    addRefreshToken: (t) => {
      refreshTokens.add(t);
    },
    setRotation: (r, revoke = false) => {
      rotate = r;
      revokeOnRotate = revoke;
    },
    failNext: (count, fault) => {
      faults.push({ remaining: count, fault });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
