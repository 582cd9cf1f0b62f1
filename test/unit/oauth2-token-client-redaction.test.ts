// A token endpoint that echoes the request in its error text must not get a secret into an error
// message in any encoding: raw, form-encoded (URLSearchParams, the request body) or
// percent-encoded (encodeURIComponent, e.g. in a URL). No network: fetch is a stub.
import { describe, expect, it } from 'vitest';
import {
  clientCredentialsGrant,
  refreshTokenGrant,
  sanitizeErrorDescription,
} from '../../lib/adapters/oauth2/token-client.js';
import { DrainError } from '../../lib/drain/errors.js';
import { drainErrorOf as failure } from '../support/drain-error.js';

const TOKEN_ENDPOINT = 'https://login.example.test/tenant/oauth2/v2.0/token';
const CLIENT_ID = 'client-1234';
// Each holds ~ / + = a space and non-ASCII, all of which the encodings rewrite.
const CLIENT_SECRET = 'cs~Kq/7+Wz=9 Öl€ secret';
const REFRESH_TOKEN = '1//0g~rt+Yv=/ ünï tail';

/** Every way a secret may appear in text a server sends back. */
function encodings(secret: string): string[] {
  const form = new URLSearchParams({ x: secret }).toString().slice(2);
  const uri = encodeURIComponent(secret);
  const lower = (s: string): string => s.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase());
  return [...new Set([secret, form, uri, lower(form), lower(uri)])];
}

function expectNone(text: string, secrets: readonly string[]): void {
  for (const secret of secrets) {
    for (const form of encodings(secret)) expect(text).not.toContain(form);
  }
}

/** A fetch stub that answers an OAuth error whose description echoes the request. */
function echoingFetch(describe: (body: string) => string, status = 400): typeof fetch {
  return async (_input, init) => {
    const body = String(init?.body ?? '');
    return new Response(JSON.stringify({ error: 'invalid_request', error_description: describe(body) }), {
      status,
      headers: { 'content-type': 'application/json' },
    });
  };
}

describe('token endpoint error text redaction', () => {
  it('the test secrets really change under each encoding', () => {
    for (const secret of [CLIENT_SECRET, REFRESH_TOKEN]) {
      const [raw, form, uri] = encodings(secret);
      expect(form).not.toBe(raw);
      expect(uri).not.toBe(raw);
      expect(uri).not.toBe(form);
      expect(form).toContain('%7E');
      expect(form).toContain('%2F');
      expect(form).toContain('+');
      expect(uri).toContain('%20');
    }
  });

  it('redacts a refresh token and client secret echoed form-encoded in the request body', async () => {
    const error = await failure(
      refreshTokenGrant(
        { tokenEndpoint: TOKEN_ENDPOINT, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, refreshToken: REFRESH_TOKEN },
        { fetch: echoingFetch((body) => `Could not parse request body: ${body}`) },
      ),
    );
    expect(error).toMatchObject({ code: 'CREDENTIALS_FAILED', phase: 'credentials', retryable: false });
    expect(error.message).toBe(
      'refresh token grant refused by token endpoint login.example.test: invalid_request (Could not parse request body: ' +
        'grant_type=refresh_token&refresh_token=[redacted]&client_id=client-1234&client_secret=[redacted]) (HTTP 400)',
    );
    expectNone(error.message, [CLIENT_SECRET, REFRESH_TOKEN]);
  });

  it('redacts a client secret echoed percent-encoded, in lower-case hex, or raw', async () => {
    const uri = encodeURIComponent(CLIENT_SECRET);
    const error = await failure(
      clientCredentialsGrant(
        { tokenEndpoint: TOKEN_ENDPOINT, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, scope: 'https://outlook.office365.com/.default' },
        {
          fetch: echoingFetch(
            () => `redirect_uri=https://app.example/cb?s=${uri} lower ${uri.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase())} raw ${CLIENT_SECRET} end`,
            401,
          ),
        },
      ),
    );
    expect(error.message).toBe(
      'client credentials grant refused by token endpoint login.example.test: invalid_request ' +
        '(redirect_uri=https://app.example/cb?s=[redacted] lower [redacted] raw [redacted] end) (HTTP 401)',
    );
    expectNone(error.message, [CLIENT_SECRET]);
  });

  it('sanitizeErrorDescription redacts every form of each secret and keeps the rest', () => {
    const secrets = [CLIENT_SECRET, REFRESH_TOKEN];
    const text = secrets.flatMap((s) => encodings(s).map((form, i) => `#${i}:${form};`)).join(' ');
    const out = sanitizeErrorDescription(`bad request ${text} done`, secrets);
    expectNone(out, secrets);
    expect(out).toBe(`bad request ${secrets.flatMap((s) => encodings(s).map((_, i) => `#${i}:[redacted];`)).join(' ')} done`);
    // A secret encodeURIComponent cannot encode (a lone surrogate) is still redacted as is.
    expect(sanitizeErrorDescription('x ab\ud800cd y', ['ab\ud800cd'])).toBe('x [redacted] y');
  });
});
