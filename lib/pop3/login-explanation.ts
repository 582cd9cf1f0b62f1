/**
 * Which method the automatic login would use and why, in words (for `popdrain check`). A pure
 * function over what the server told before login; the choice itself is `chooseLoginMethod`'s.
 */
import { chooseLoginMethod, type ServerOffer } from './authenticate.js';
import { isPop3Error } from './errors.js';
import { methodsFor, type AuthMethod, type Pop3Credentials } from './sasl/index.js';

export interface LoginExplanation {
  /** The method login() would use, or undefined when there is none in common. */
  method: AuthMethod | undefined;
  /** Why, in one sentence. */
  reason: string;
}

const NEEDS_NO_SERVER_SECRET: ReadonlySet<AuthMethod> = new Set(['PLAIN', 'LOGIN', 'USER']);

/** What `login()` with `requested` would choose for a password or a token, and why. */
export function explainLoginChoice(credentials: 'password' | 'token', requested: AuthMethod | 'auto', server: ServerOffer): LoginExplanation {
  // Only the kind of the credentials matters to the choice, never their value.
  const probe: Pop3Credentials = credentials === 'token' ? { user: '', accessToken: '' } : { user: '', password: '' };
  let method: AuthMethod;
  try {
    method = chooseLoginMethod(probe, requested, server).method;
  } catch (error) {
    if (isPop3Error(error)) return { method: undefined, reason: error.message };
    throw error;
  }
  const order = methodsFor(probe, server.tls).join(', ');
  if (requested !== 'auto') return { method, reason: 'asked for by name (--auth)' };
  if (credentials === 'token') {
    return { method, reason: server.capaAnswered ? `the first OAuth2 mechanism offered (order ${order})` : 'no CAPA, so the mechanisms are unknown: XOAUTH2' };
  }
  if (!server.capaAnswered && method === 'USER') {
    const apop = server.tls ? ' (an APOP timestamp is not used under TLS: it needs a server-side secret)' : '';
    return { method, reason: `no CAPA, so USER/PASS, RFC 1939's baseline${apop}` };
  }
  if (server.tls) {
    return NEEDS_NO_SERVER_SECRET.has(method)
      ? { method, reason: `under TLS, the first method that needs no server-side secret (order ${order})` }
      : { method, reason: `under TLS, but the server offers no method that needs no server-side secret (order ${order})` };
  }
  return NEEDS_NO_SERVER_SECRET.has(method)
    ? { method, reason: `without TLS and no challenge-response method offered: the password crosses the wire in clear (order ${order})` }
    : { method, reason: `without TLS, challenge-response first so the password never crosses the wire (order ${order})` };
}
