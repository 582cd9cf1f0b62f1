/**
 * The SASL mechanisms the client speaks, behind one small interface, and the choice of the
 * strongest one both sides support.
 */

/** Credentials for a login: a password, or an OAuth2 access token. */
export interface PasswordCredentials {
  readonly user: string;
  readonly password: string;
  /** Authorization identity for PLAIN (rarely needed). */
  readonly authzid?: string;
}
export interface TokenCredentials {
  readonly user: string;
  /** An OAuth2 access token (XOAUTH2, OAUTHBEARER). */
  readonly accessToken: string;
}
export type Pop3Credentials = PasswordCredentials | TokenCredentials;

export function isTokenCredentials(c: Pop3Credentials): c is TokenCredentials {
  return 'accessToken' in c;
}

export type SaslMechanismName =
  | 'PLAIN'
  | 'LOGIN'
  | 'CRAM-MD5'
  | 'SCRAM-SHA-1'
  | 'SCRAM-SHA-256'
  | 'XOAUTH2'
  | 'OAUTHBEARER';

/** Every way to log in: SASL mechanisms plus the two POP3-native ones. */
export type AuthMethod = SaslMechanismName | 'USER' | 'APOP';

export const SASL_MECHANISMS: readonly SaslMechanismName[] = [
  'PLAIN',
  'LOGIN',
  'CRAM-MD5',
  'SCRAM-SHA-1',
  'SCRAM-SHA-256',
  'XOAUTH2',
  'OAUTHBEARER',
];

/** One run of a mechanism. Payloads are base64 text as on the wire. */
export interface SaslSession {
  readonly mechanism: SaslMechanismName;
  /** The initial response, or undefined when the mechanism waits for the server to speak first. */
  initialResponse(): string | undefined;
  /** Answer a server challenge. */
  respond(challenge: string): Promise<string> | string;
  /** Called on +OK with its text; throws when the server failed to prove itself (SCRAM). */
  verifyCompletion?(okText: string): void;
  /** A human-readable reason collected from the server's challenges (e.g. an OAuth2 error status). */
  failureDetail?(): string | undefined;
}

export class SaslError extends Error {
  override readonly name = 'SaslError';
}

/**
 * Password methods without TLS (only with insecure-plaintext): challenge-response first, so the
 * password itself crosses the unprotected channel only when nothing else is offered.
 */
const PASSWORD_ORDER_PLAINTEXT: readonly AuthMethod[] = ['SCRAM-SHA-256', 'SCRAM-SHA-1', 'CRAM-MD5', 'APOP', 'PLAIN', 'LOGIN', 'USER'];
/**
 * Password methods under TLS: the ones that send the password first. They work wherever the
 * password is right; APOP, CRAM-MD5 and SCRAM need a secret the server may not hold (an APOP
 * timestamp in the greeting or a mechanism in CAPA does not mean the user has one), and under
 * TLS they protect nothing that TLS does not. So the first attempt is the one that cannot fail
 * for want of a server-side secret, and a refused login is never followed by another try.
 */
const PASSWORD_ORDER_TLS: readonly AuthMethod[] = ['PLAIN', 'LOGIN', 'USER', 'SCRAM-SHA-256', 'SCRAM-SHA-1', 'CRAM-MD5', 'APOP'];
const TOKEN_ORDER: readonly AuthMethod[] = ['OAUTHBEARER', 'XOAUTH2'];

export interface ServerAuthOffer {
  /** SASL mechanisms from CAPA, upper case. */
  sasl: readonly string[];
  /** Whether the greeting carried an APOP timestamp. */
  apop: boolean;
  /** Whether CAPA listed USER. */
  user: boolean;
  /** Whether the server answered CAPA at all; without it, offers are unknown. */
  capaKnown: boolean;
  /** Whether the session is protected by TLS (implicit or STLS). */
  tls: boolean;
}

export function methodsFor(credentials: Pop3Credentials, tls: boolean): readonly AuthMethod[] {
  if (isTokenCredentials(credentials)) return TOKEN_ORDER;
  return tls ? PASSWORD_ORDER_TLS : PASSWORD_ORDER_PLAINTEXT;
}

/**
 * The method to log in with: the first in `methodsFor`'s order that the credentials allow and
 * the server offers. Returns undefined when there is none. Without CAPA, a token login tries
 * XOAUTH2; a password login uses USER/PASS (RFC 1939's baseline), or APOP when the greeting
 * allows it and there is no TLS.
 */
export function chooseAuthMethod(credentials: Pop3Credentials, offer: ServerAuthOffer): AuthMethod | undefined {
  if (!offer.capaKnown && isTokenCredentials(credentials)) return 'XOAUTH2';
  // Without CAPA, USER/PASS is RFC 1939's baseline: assume it.
  const known = offer.capaKnown ? offer : { ...offer, user: true };
  for (const method of methodsFor(credentials, offer.tls)) {
    if (isOffered(method, known)) return method;
  }
  return undefined;
}

export function isOffered(method: AuthMethod, offer: ServerAuthOffer): boolean {
  if (method === 'APOP') return offer.apop;
  if (method === 'USER') return offer.user;
  return offer.sasl.includes(method);
}
