import { SaslError, type SaslSession } from './mechanism.js';

/**
 * OAuth2 bearer mechanisms. A server that refuses the token answers with a continuation
 * holding a JSON error; the client must answer it (XOAUTH2: an empty line, OAUTHBEARER: %x01)
 * before the server sends -ERR. Both record the error's status for the error message.
 *
 * XOAUTH2 always uses the two-step form Microsoft 365 requires: `AUTH XOAUTH2`, an empty `+`
 * challenge, then the token (Microsoft closes the connection on an initial response). Gmail and
 * Dovecot accept it too. OAUTHBEARER sends the token as an initial response when the AUTH line
 * stays within RFC 5034's 255 octets, and otherwise waits for the empty challenge.
 */

/** RFC 5034 section 4: the AUTH command line, initial response included, is at most 255 octets. */
export const MAX_AUTH_LINE_OCTETS = 255;

interface OAuthError {
  status?: string;
  schemes?: string;
  scope?: string;
}

function describeOAuthError(challenge: string): string {
  let parsed: OAuthError = {};
  try {
    const value: unknown = JSON.parse(Buffer.from(challenge, 'base64').toString('utf8'));
    if (value !== null && typeof value === 'object') parsed = value as OAuthError;
  } catch {
    return 'server refused the token (unparsable error)';
  }
  const status = typeof parsed.status === 'string' ? parsed.status : 'unknown';
  return `server refused the token (status ${status.replace(/[^\w./ -]/g, '').slice(0, 40)})`;
}

function oauthSession(
  mechanism: 'XOAUTH2' | 'OAUTHBEARER',
  payload: string,
  errorAnswer: string,
  allowInitialResponse: boolean,
): SaslSession {
  let sentToken = false;
  let answeredError = false;
  let detail: string | undefined;
  const fitsInline = allowInitialResponse && `AUTH ${mechanism} ${payload}`.length + 2 <= MAX_AUTH_LINE_OCTETS;
  return {
    mechanism,
    initialResponse: () => {
      if (!fitsInline) return undefined;
      sentToken = true;
      return payload;
    },
    respond: (challenge) => {
      if (!sentToken && challenge.length === 0) {
        sentToken = true;
        return payload;
      }
      // The error challenge is answered once; the server must then send -ERR. Another challenge
      // cancels the exchange rather than answering it over and over.
      if (answeredError) throw new SaslError(`${mechanism}: server sent another challenge after its error`);
      answeredError = true;
      detail = challenge.length > 0 ? describeOAuthError(challenge) : 'server refused the token';
      return errorAnswer;
    },
    failureDetail: () => detail,
  };
}

export function xoauth2Session(user: string, accessToken: string): SaslSession {
  const payload = Buffer.from(`user=${user}\x01auth=Bearer ${accessToken}\x01\x01`, 'utf8').toString('base64');
  return oauthSession('XOAUTH2', payload, '', false);
}

/** RFC 7628, with the gs2 header naming the user and the optional host and port. */
export function oauthBearerSession(user: string, accessToken: string, host?: string, port?: number): SaslSession {
  const safeUser = user.replace(/=/g, '=3D').replace(/,/g, '=2C');
  let message = `n,a=${safeUser},\x01`;
  if (host !== undefined) message += `host=${host}\x01`;
  if (port !== undefined) message += `port=${port}\x01`;
  message += `auth=Bearer ${accessToken}\x01\x01`;
  const payload = Buffer.from(message, 'utf8').toString('base64');
  return oauthSession('OAUTHBEARER', payload, Buffer.from('\x01').toString('base64'), true);
}
