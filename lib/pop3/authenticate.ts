/**
 * Logging in: which method to use (a pure decision from the credentials, the greeting and
 * CAPA), and the exchange of each (USER/PASS, APOP, a SASL mechanism over AUTH with its
 * challenges). Failures are Pop3Errors whose messages never hold the secret.
 */
import { CommandArgumentError, commands, saslResponseLine, type Command } from './command.js';
import { Pop3Error, type Pop3ErrorCode, describeError } from './errors.js';
import { MAX_SASL_CHALLENGES } from './limits.js';
import { queued, type SaslPending } from './pending.js';
import { apopTimestamp, type Capabilities } from './response.js';
import {
  chooseAuthMethod,
  createSaslSession,
  isOffered,
  isTokenCredentials,
  SaslError,
  type AuthMethod,
  type Pop3Credentials,
  type SaslSession,
} from './sasl/index.js';
import { apopDigest } from './apop.js';
import { toPop3Error } from './to-pop3-error.js';

export interface LoginOptions {
  /** A specific method, or 'auto' (default): see `chooseAuthMethod` for the order and why. */
  mechanism?: AuthMethod | 'auto';
}

/** What the server told about logging in before it: its greeting and its CAPA. */
export interface ServerOffer {
  greeting: string;
  caps: Capabilities;
  /** CAPA was answered (an RFC 1939-only server says nothing). */
  capaAnswered: boolean;
  /** The session is protected by TLS (implicit or STLS). */
  tls: boolean;
}

export type LoginChoice = { method: 'APOP'; timestamp: string } | { method: Exclude<AuthMethod, 'APOP'> };

/**
 * The method to log in with: the requested one when the server may take it, or for 'auto' the
 * first both sides support in the order for the session (mechanism.ts). Throws MECHANISM_UNAVAILABLE when there is none.
 */
export function chooseLoginMethod(credentials: Pop3Credentials, requested: AuthMethod | 'auto', server: ServerOffer): LoginChoice {
  const timestamp = apopTimestamp(server.greeting);
  const offer = {
    sasl: server.caps.sasl,
    apop: timestamp !== undefined,
    user: server.caps.has('USER'),
    capaKnown: server.capaAnswered,
    tls: server.tls,
  };
  let method: AuthMethod | undefined;
  if (requested === 'auto') {
    method = chooseAuthMethod(credentials, offer);
    if (method === undefined) {
      throw new Pop3Error(
        'MECHANISM_UNAVAILABLE',
        `no authentication method in common: server offers [${[...offer.sasl, ...(offer.user ? ['USER'] : []), ...(offer.apop ? ['APOP'] : [])].join(' ')}] for ${isTokenCredentials(credentials) ? 'an OAuth2 token' : 'a password'}`,
        { phase: 'auth' },
      );
    }
  } else {
    method = requested;
    // An explicitly requested SASL mechanism is tried even when CAPA is silent about it,
    // except when CAPA lists SASL mechanisms and this one is not among them.
    if (server.capaAnswered && method !== 'USER' && method !== 'APOP' && offer.sasl.length > 0 && !isOffered(method, offer)) {
      throw new Pop3Error('MECHANISM_UNAVAILABLE', `server does not offer ${method} (offers ${offer.sasl.join(' ')})`, {
        phase: 'auth',
      });
    }
  }
  if (method !== 'APOP') return { method };
  if (timestamp === undefined) {
    throw new Pop3Error('MECHANISM_UNAVAILABLE', 'server greeting has no APOP timestamp', { phase: 'auth' });
  }
  return { method, timestamp };
}

/** What the exchange needs of the session. */
export interface LoginChannel {
  host: string;
  port: number;
  /** Send a command of the login (one status line) and wait for its +OK. */
  send(command: Command): Promise<void>;
  /** Run a SASL exchange to its end. */
  sasl(session: SaslSession): Promise<void>;
}

/**
 * Send the credentials with the chosen method. Throws the server's refusal as a Pop3Error, and
 * credentials the client cannot send (CR/LF in a user name, characters SASLprep refuses) as
 * they were thrown: `authFailure` turns them into typed errors without the secret.
 */
export async function sendCredentials(channel: LoginChannel, credentials: Pop3Credentials, choice: LoginChoice): Promise<void> {
  if (choice.method === 'USER') {
    if (isTokenCredentials(credentials)) throw new SaslError('USER/PASS needs a password');
    await channel.send(commands.user(credentials.user));
    await channel.send(commands.pass(credentials.password));
  } else if (choice.method === 'APOP') {
    if (isTokenCredentials(credentials)) throw new SaslError('APOP needs a password');
    await channel.send(commands.apop(credentials.user, apopDigest(choice.timestamp, credentials.password)));
  } else {
    await channel.sasl(createSaslSession(choice.method, credentials, { host: channel.host, port: channel.port }));
  }
}

/** The secret of the credentials, to keep out of error messages. */
export function secretOf(credentials: Pop3Credentials): string {
  return isTokenCredentials(credentials) ? credentials.accessToken : credentials.password;
}

/**
 * The AUTH command of a SASL exchange, as a pending command that resolves when the server let
 * us in (and, where the mechanism can, proved itself), or rejects with why not. `failWith`
 * ends the session: one that could not be verified is not used.
 */
export function saslPending(
  session: SaslSession,
  timeoutMs: number,
  settle: { resolve(): void; reject(error: unknown): void; failWith(error: Pop3Error): Pop3Error },
): SaslPending {
  const initial = session.initialResponse();
  // RFC 5034: an empty initial response is sent as "=".
  const command = commands.auth(session.mechanism, initial === '' ? '=' : initial);
  const pending: SaslPending = {
    kind: 'sasl',
    command,
    ...queued('auth', timeoutMs),
    session,
    challenges: 0,
    cancelled: undefined,
    onOk: (text) => {
      try {
        if (pending.cancelled !== undefined) throw pending.cancelled;
        session.verifyCompletion?.(text);
        settle.resolve();
      } catch (error) {
        // The server let us in but could not prove itself (or we had cancelled): do not
        // use this session.
        settle.reject(settle.failWith(toPop3Error(error, 'auth')));
      }
    },
    onErr: (error) => {
      const detail = session.failureDetail?.();
      if (detail !== undefined && error.code === 'AUTH_FAILED') {
        settle.reject(
          new Pop3Error('AUTH_FAILED', `${error.message} (${detail})`, {
            phase: 'auth',
            command: error.command,
            serverText: error.serverText,
            responseCode: error.responseCode,
          }),
        );
      } else {
        settle.reject(error);
      }
    },
  };
  return pending;
}

/**
 * A challenge arrived: count it. The exchange is bounded in challenges (and in time, by the
 * session's deadline): a server must not keep it going, nor go on after the client cancelled
 * it. Returns the protocol error that ends the session, or undefined to answer it.
 */
export function refuseChallenge(pending: SaslPending): Pop3Error | undefined {
  pending.challenges += 1;
  if (pending.cancelled === undefined && pending.challenges <= MAX_SASL_CHALLENGES) return undefined;
  const logForm = pending.command.logForm;
  const why =
    pending.cancelled !== undefined
      ? `server went on with the exchange after the client cancelled it (${pending.cancelled.message})`
      : `server sent more than ${MAX_SASL_CHALLENGES} challenges`;
  return new Pop3Error('PROTOCOL_ERROR', `${logForm}: ${why}`, { phase: 'auth', command: logForm });
}

/** Answer a challenge through `writeLine`, or cancel the exchange when the mechanism cannot. */
export async function answerChallenge(
  pending: SaslPending,
  payload: string,
  writeLine: (line: { wire: string; logForm: string }) => void,
): Promise<void> {
  let answer: string;
  try {
    answer = await pending.session.respond(payload);
  } catch (error) {
    // Cancel the exchange (RFC 5034 "*"); the server answers -ERR, and the caller learns
    // from this error why the client gave up.
    const reason = describeError(error);
    pending.cancelled = new Pop3Error('AUTH_FAILED', reason, { phase: 'auth', cause: error });
    writeLine(saslResponseLine('*'));
    return;
  }
  writeLine(saslResponseLine(answer));
}

/**
 * A login failure that is not the server's answer: credentials the client refuses to send
 * (AUTH_FAILED) or anything unexpected (PROTOCOL_ERROR). Never retryable; the secret never
 * appears in the message (nor, when the original message held it, as the cause).
 */
export function authFailure(error: unknown, secret: string): Pop3Error {
  if (error instanceof Pop3Error) return error;
  const raw = describeError(error);
  const leaked = secret.length > 0 && raw.includes(secret);
  const message = leaked ? raw.split(secret).join('****') : raw;
  const code: Pop3ErrorCode = error instanceof SaslError || error instanceof CommandArgumentError ? 'AUTH_FAILED' : 'PROTOCOL_ERROR';
  return new Pop3Error(code, `login failed: ${message}`, { phase: 'auth', retryable: false, cause: leaked ? undefined : error });
}
