/**
 * The server side of the SASL mechanisms AUTH offers (RFC 5034): PLAIN, LOGIN, CRAM-MD5,
 * XOAUTH2 and OAUTHBEARER. Each exchange ends in an outcome; the session turns it into an answer.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { ScriptedConnection } from './hooks.js';
import type { Pop3UserAccount } from './options.js';
import { decodeBase64, parseOauthBearer, parseXoauth2 } from './sasl-payloads.js';

export type SaslOutcome =
  | { kind: 'ok'; user: string }
  | { kind: 'failed' }
  | { kind: 'cancelled' }
  | { kind: 'malformed' }
  | { kind: 'closed' };

type NotOk = Exclude<SaslOutcome, { kind: 'ok' }>;

/** Sends `+ base64(challenge)` and returns the decoded answer. */
async function exchange(conn: ScriptedConnection, challenge: string | Buffer): Promise<Buffer | NotOk> {
  const encoded = Buffer.from(challenge).toString('base64');
  await conn.writeLine(`+ ${encoded}`);
  const answer = await conn.readLine();
  if (answer === null) return { kind: 'closed' };
  if (answer === '*') return { kind: 'cancelled' };
  return decodeBase64(answer) ?? { kind: 'malformed' };
}

/** The client's first message: the initial response, or the answer to an empty challenge. */
async function firstMessage(conn: ScriptedConnection, initialResponse: string | undefined): Promise<Buffer | NotOk> {
  if (initialResponse === undefined) return exchange(conn, '');
  return decodeBase64(initialResponse) ?? { kind: 'malformed' };
}

/** The error challenge of the OAuth mechanisms; whatever the client answers, the login failed. */
async function oauthError(conn: ScriptedConnection, error: Record<string, string>): Promise<SaslOutcome> {
  const answer = await exchange(conn, JSON.stringify(error));
  return Buffer.isBuffer(answer) || answer.kind === 'cancelled' ? { kind: 'failed' } : answer;
}

/** Runs one mechanism's exchange with the client (the mechanism is known to be offered). */
export async function runSaslMechanism(
  conn: ScriptedConnection,
  users: Record<string, Pop3UserAccount>,
  mechanism: string,
  initialResponse: string | undefined,
): Promise<SaslOutcome> {
  switch (mechanism) {
    case 'PLAIN': {
      const msg = await firstMessage(conn, initialResponse);
      if (!Buffer.isBuffer(msg)) return msg;
      const parts = msg.toString('utf8').split('\0');
      if (parts.length !== 3) return { kind: 'malformed' };
      const [authzid = '', authcid = '', password = ''] = parts;
      if (authzid !== '' && authzid !== authcid) return { kind: 'failed' };
      return conn.checkPassword(authcid, password) ? { kind: 'ok', user: authcid } : { kind: 'failed' };
    }
    case 'LOGIN': {
      const userMsg = initialResponse === undefined ? await exchange(conn, 'Username:') : decodeBase64(initialResponse);
      if (userMsg === undefined) return { kind: 'malformed' };
      if (!Buffer.isBuffer(userMsg)) return userMsg;
      const passMsg = await exchange(conn, 'Password:');
      if (!Buffer.isBuffer(passMsg)) return passMsg;
      const user = userMsg.toString('utf8');
      return conn.checkPassword(user, passMsg.toString('utf8')) ? { kind: 'ok', user } : { kind: 'failed' };
    }
    case 'CRAM-MD5': {
      if (initialResponse !== undefined) return { kind: 'malformed' }; // no initial response in CRAM-MD5
      const challenge = `<${randomBytes(8).toString('hex')}.${Date.now()}@popdrain.test>`;
      const msg = await exchange(conn, challenge);
      if (!Buffer.isBuffer(msg)) return msg;
      const text = msg.toString('utf8');
      const space = text.lastIndexOf(' ');
      if (space <= 0) return { kind: 'malformed' };
      const user = text.slice(0, space);
      const digest = text.slice(space + 1).toLowerCase();
      const account = Object.hasOwn(users, user) ? users[user] : undefined;
      if (account === undefined) return { kind: 'failed' };
      const expected = createHmac('md5', account.password).update(challenge).digest('hex');
      return digest === expected ? { kind: 'ok', user } : { kind: 'failed' };
    }
    case 'XOAUTH2': {
      const msg = await firstMessage(conn, initialResponse);
      if (!Buffer.isBuffer(msg)) return msg;
      const parsed = parseXoauth2(msg);
      if (parsed !== undefined && conn.checkOAuthToken(parsed.user, parsed.token)) {
        return { kind: 'ok', user: parsed.user };
      }
      // Google's dialect: the error is a challenge, the client answers with an empty line.
      return oauthError(conn, { status: '401', schemes: 'bearer', scope: 'https://mail.google.com/' });
    }
    case 'OAUTHBEARER': {
      const msg = await firstMessage(conn, initialResponse);
      if (!Buffer.isBuffer(msg)) return msg;
      const parsed = parseOauthBearer(msg);
      if (parsed !== undefined) {
        const user = parsed.user ?? Object.keys(users).find((u) => conn.checkOAuthToken(u, parsed.token));
        if (user !== undefined && conn.checkOAuthToken(user, parsed.token)) return { kind: 'ok', user };
      }
      // RFC 7628 section 3.2.2: error JSON as a challenge, the client answers %x01.
      return oauthError(conn, { status: 'invalid_token', scope: 'pop3' });
    }
    default:
      return { kind: 'malformed' };
  }
}
