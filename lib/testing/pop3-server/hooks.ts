/**
 * What scripts see: the hooks a test passes in, the connection they control and the session
 * state they read; and the rule that several hook sets are asked in order, the first answer wins.
 */
import type { SessionMessage } from './mailbox.js';

export type Awaitable<T> = T | Promise<T>;

/** Where a session stands (RFC 1939 section 3). */
export type SessionPhase = 'AUTHORIZATION' | 'TRANSACTION' | 'UPDATE';

/** How the user logged in, as told to `onLogin`. */
export type LoginMethod = 'USER' | 'APOP' | 'SASL';

/** What hooks can see of a session. */
export interface SessionState {
  readonly id: number;
  readonly phase: SessionPhase;
  /** The authenticated user, once in TRANSACTION. */
  readonly user: string | undefined;
  readonly tls: boolean;
  /** The `<...>` timestamp of the greeting that was sent, if any. */
  readonly apopTimestamp: string | undefined;
  /** The maildrop snapshot taken at login (empty before). */
  readonly messages: readonly SessionMessage[];
  /** The message a command argument names, unless it does not exist or is marked deleted. */
  message(numberArg: string | number | undefined): SessionMessage | undefined;
}

/** Raw control of one connection, for hooks. */
export interface ScriptedConnection {
  readonly id: number;
  readonly remoteAddress: string;
  /** Every line received on this connection so far (the same array as the session log's). */
  readonly received: readonly string[];
  readonly tls: boolean;
  /** The socket is closed, or the server has ended or destroyed it. */
  readonly isClosed: boolean;
  /** Resolves when the socket has closed. */
  readonly closed: Promise<void>;
  /** Raw bytes, nothing added; resolves once handed to the OS. Rejects if the connection is closed. */
  write(data: string | Buffer): Promise<void>;
  /** `line` plus CRLF. */
  writeLine(line: string): Promise<void>;
  /** A correct multi-line response: the status line, the lines dot-stuffed, `.` CRLF. */
  writeMultiline(status: string, lines: readonly string[]): Promise<void>;
  /**
   * The next line from the client, without its line ending; `null` at end of stream. Rejects
   * with `ReadLineTimeoutError` after `timeoutMs` (no timeout by default).
   */
  readLine(timeoutMs?: number): Promise<string | null>;
  /** Answer nothing any more: read (and record) what arrives until the client closes. */
  silence(): Promise<void>;
  /** Graceful close (FIN, after a TLS close_notify). */
  end(): void;
  /** Abrupt close without waiting for pending writes. */
  destroy(): void;
  /**
   * TCP reset (RST) where the socket allows it; `destroy()` otherwise (TLS sockets). The peer
   * sees ECONNRESET or, if it had already read everything, just the end of the stream.
   */
  reset(): void;
  /** Starts the server side of a TLS handshake; call after writing `+OK` to STLS. */
  startTls(): Promise<void>;
  /** Checks a password against the server's users (for hooks that run their own exchanges). */
  checkPassword(user: string, password: string): boolean;
  /** Checks a bearer token against the server's users. */
  checkOAuthToken(user: string, token: string): boolean;
}

/** Returned by `onAuth` when the hook authenticated the user; the server completes the login. */
export interface AuthSuccess {
  user: string;
  /** The +OK line to send. @default '+OK Logged in.' */
  response?: string;
}

export interface Pop3ServerHooks {
  /**
   * Called for every connection before the greeting. Return `true` to take the connection over:
   * the server then sends nothing more and only reads (and records) until the client closes.
   */
  onConnect?(conn: ScriptedConnection): Awaitable<boolean | void>;
  /**
   * Called for every command line (without CRLF), before the default handling. Return `true`
   * when the hook has fully answered it; the server then goes on with the next line, unless the
   * hook closed the connection.
   */
  onCommand?(conn: ScriptedConnection, line: string, state: SessionState): Awaitable<boolean | void>;
  /**
   * Called for `AUTH <mechanism> [initial-response]` (mechanism upper-cased, `=` already turned
   * into ''), before the default exchange and before the check that the mechanism is offered.
   * Return `true` when the hook answered (the session stays unauthenticated), or an
   * `AuthSuccess` to let the server finish the login.
   */
  onAuth?(
    conn: ScriptedConnection,
    mechanism: string,
    initialResponse: string | undefined,
    state: SessionState,
  ): Awaitable<boolean | AuthSuccess | void>;
  /**
   * Called after credentials were verified, before the mailbox is locked. Return a line to send
   * instead of the default answer: one starting with `+OK` still logs the user in, any other
   * keeps the session in AUTHORIZATION. Return `true` when the hook wrote its own answer.
   */
  onLogin?(
    conn: ScriptedConnection,
    user: string,
    method: LoginMethod,
    state: SessionState,
  ): Awaitable<string | boolean | void>;
}

/** Runs one hook kind over every hook set; the first truthy answer wins. */
export async function callHooks<T>(
  hookSets: readonly Pop3ServerHooks[],
  call: (h: Pop3ServerHooks) => Awaitable<T | false | void> | undefined,
): Promise<T | undefined> {
  for (const hooks of hookSets) {
    const result = await call(hooks);
    if (result !== undefined && result !== false) return result;
  }
  return undefined;
}
