/**
 * Typed errors of the POP3 client. Every failure the client reports is a `Pop3Error` with a
 * `code` from one union, the `phase` of the session it happened in, and whether retrying later
 * can help (`retryable`). Messages never contain credentials: they are built from status lines
 * the server sent and from our own text, never from the commands we sent.
 */

export type Pop3ErrorCode =
  /** TCP connect failed (refused, unreachable, DNS). */
  | 'CONNECT_FAILED'
  /** Connecting (TCP and, for implicit TLS, the handshake) took too long. */
  | 'CONNECT_TIMEOUT'
  /** TLS handshake failed: untrusted certificate, wrong host name, protocol mismatch. */
  | 'TLS_FAILED'
  /** The server did not send its greeting in time. */
  | 'GREETING_TIMEOUT'
  /** The server did not answer a command in time. */
  | 'COMMAND_TIMEOUT'
  /** The server stopped sending in the middle of a multi-line response. */
  | 'BODY_TIMEOUT'
  /** The server closed the connection (or it was reset) while a response was expected. */
  | 'CONNECTION_CLOSED'
  /** The server sent something that is not POP3: a malformed status line, bytes after STLS, ... */
  | 'PROTOCOL_ERROR'
  /** A status line or a listing exceeded a limit of `limits.ts`. */
  | 'LIMIT_EXCEEDED'
  /** STLS was required but the server does not offer it, or refused it. */
  | 'STLS_UNAVAILABLE'
  /** No authentication mechanism both sides support (or the requested one is not offered). */
  | 'MECHANISM_UNAVAILABLE'
  /** The server refused the credentials. */
  | 'AUTH_FAILED'
  /** RFC 2449 [IN-USE]: the mailbox is locked by another session. */
  | 'IN_USE'
  /** RFC 2449 [LOGIN-DELAY]: logged in too recently. */
  | 'LOGIN_DELAY'
  /** RFC 3206 [SYS/TEMP]: a temporary server-side problem. */
  | 'SYS_TEMP'
  /** RFC 3206 [SYS/PERM]: a permanent server-side problem. */
  | 'SYS_PERM'
  /** The server answered -ERR to a command (no extended code that says more). */
  | 'COMMAND_FAILED'
  /** The caller aborted through its AbortSignal. */
  | 'ABORTED'
  /** The client was used after it was closed, or in a state that does not allow the call. */
  | 'INVALID_STATE';

export type Pop3Phase =
  | 'connect'
  | 'tls'
  | 'greeting'
  | 'capa'
  | 'stls'
  | 'auth'
  | 'transaction'
  | 'quit';

/** RFC 2449 / RFC 3206 extended response codes we understand, as sent in brackets. */
export type ResponseCode = 'IN-USE' | 'LOGIN-DELAY' | 'SYS/TEMP' | 'SYS/PERM' | 'AUTH' | string;

const RETRYABLE: Record<Pop3ErrorCode, boolean> = {
  CONNECT_FAILED: true,
  CONNECT_TIMEOUT: true,
  TLS_FAILED: false,
  GREETING_TIMEOUT: true,
  COMMAND_TIMEOUT: true,
  BODY_TIMEOUT: true,
  CONNECTION_CLOSED: true,
  PROTOCOL_ERROR: false,
  LIMIT_EXCEEDED: false,
  STLS_UNAVAILABLE: false,
  MECHANISM_UNAVAILABLE: false,
  AUTH_FAILED: false,
  IN_USE: true,
  LOGIN_DELAY: true,
  SYS_TEMP: true,
  SYS_PERM: false,
  COMMAND_FAILED: false,
  ABORTED: false,
  INVALID_STATE: false,
};

export interface Pop3ErrorOptions {
  phase: Pop3Phase;
  /** The command's log form (already redacted), when a command was involved. */
  command?: string;
  /** The server's status text (after `-ERR `), when the server answered. */
  serverText?: string;
  /** The extended response code in brackets, when the server sent one. */
  responseCode?: ResponseCode;
  retryable?: boolean;
  /** With LOGIN_DELAY: the seconds the server asks for between logins (CAPA LOGIN-DELAY). */
  retryAfterSeconds?: number;
  /** What the user can most likely do about it, one line (e.g. the option that accepts a certificate). */
  hint?: string;
  /** With TLS_FAILED: the certificate the server presented, when one was. */
  peerCertificate?: PeerCertificate;
  cause?: unknown;
}

/** A certificate a server presented, as shown to a person deciding whether to trust it. */
export interface PeerCertificate {
  subject?: string;
  issuer?: string;
  validFrom?: string;
  validTo?: string;
  /** SHA-256 of the DER certificate, colon-separated hex (as OpenSSL prints it). */
  fingerprint256?: string;
}

export class Pop3Error extends Error {
  override readonly name = 'Pop3Error';
  readonly code: Pop3ErrorCode;
  readonly phase: Pop3Phase;
  readonly retryable: boolean;
  readonly command: string | undefined;
  readonly serverText: string | undefined;
  readonly responseCode: ResponseCode | undefined;
  /** With LOGIN_DELAY: retry no sooner than this many seconds (CAPA LOGIN-DELAY), when known. */
  readonly retryAfterSeconds: number | undefined;
  /**
   * The likely fix, one line, for the CLI to print once after the message. Set where the error
   * is made, or added by the caller that knows more (the client knows a plain connection was
   * asked for when no greeting came).
   */
  hint: string | undefined;
  readonly peerCertificate: PeerCertificate | undefined;

  constructor(code: Pop3ErrorCode, message: string, options: Pop3ErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.phase = options.phase;
    this.retryable = options.retryable ?? RETRYABLE[code];
    this.command = options.command;
    this.serverText = options.serverText;
    this.responseCode = options.responseCode;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.hint = options.hint;
    this.peerCertificate = options.peerCertificate;
  }
}

export function isPop3Error(value: unknown): value is Pop3Error {
  return value instanceof Pop3Error;
}

/** What CAPA told about the server's response codes (a `Capabilities` has these fields). */
export interface ResponseCodeFacts {
  /** RFC 2449 RESP-CODES: any bracketed text at the start of a reply is a response code. */
  readonly respCodes: boolean;
  /** RFC 3206 AUTH-RESP-CODE: a login refused for its credentials carries [AUTH]. */
  readonly authRespCode: boolean;
  /** RFC 2449 LOGIN-DELAY: the least number of seconds between logins. */
  readonly loginDelaySeconds: number | undefined;
}

/** Before (or without) CAPA nothing is known. */
export const NO_RESPONSE_CODE_FACTS: ResponseCodeFacts = { respCodes: false, authRespCode: false, loginDelaySeconds: undefined };

/** The codes RFC 2449 and RFC 3206 define: taken as codes even from a server that does not announce RESP-CODES. */
const DEFINED_CODES: ReadonlySet<string> = new Set(['IN-USE', 'LOGIN-DELAY', 'SYS/TEMP', 'SYS/PERM', 'AUTH']);

/**
 * The response code of a reply as the server means it: any bracketed word from a server that
 * announces RESP-CODES; from one that does not, only the codes the RFCs define (otherwise
 * `[...]` is just the start of its text).
 */
export function effectiveResponseCode(responseCode: ResponseCode | undefined, facts: ResponseCodeFacts): ResponseCode | undefined {
  if (responseCode === undefined) return undefined;
  const upper = responseCode.toUpperCase();
  return facts.respCodes || DEFINED_CODES.has(upper) ? upper : undefined;
}

/**
 * Map a -ERR status to a typed error. The extended response code decides the error code;
 * without one, a refusal during authentication is AUTH_FAILED, unless the server announces
 * AUTH-RESP-CODE (then a refusal without [AUTH] is not about the credentials: COMMAND_FAILED,
 * retryable), and anything else COMMAND_FAILED. [LOGIN-DELAY] carries CAPA's LOGIN-DELAY as
 * `retryAfterSeconds`.
 */
export function errorFromStatus(
  text: string,
  sentCode: ResponseCode | undefined,
  phase: Pop3Phase,
  command: string,
  facts: ResponseCodeFacts = NO_RESPONSE_CODE_FACTS,
): Pop3Error {
  const responseCode = effectiveResponseCode(sentCode, facts);
  const notCredentials = phase === 'auth' && responseCode === undefined && facts.authRespCode;
  const code = notCredentials ? 'COMMAND_FAILED' : codeForResponse(responseCode, phase);
  const shown = text.length > 0 ? text : '(no text)';
  const delay = code === 'LOGIN_DELAY' ? facts.loginDelaySeconds : undefined;
  const why = notCredentials
    ? ' (no [AUTH] from a server that announces AUTH-RESP-CODE: not a problem with the credentials)'
    : delay !== undefined
      ? ` (the server allows one login per ${delay} s: retry after that)`
      : '';
  return new Pop3Error(code, `${command} failed in ${phase}: -ERR ${shown}${why}`, {
    phase,
    command,
    serverText: text,
    responseCode,
    retryable: notCredentials ? true : undefined,
    retryAfterSeconds: delay,
  });
}

function codeForResponse(responseCode: ResponseCode | undefined, phase: Pop3Phase): Pop3ErrorCode {
  switch (responseCode) {
    case 'IN-USE':
      return 'IN_USE';
    case 'LOGIN-DELAY':
      return 'LOGIN_DELAY';
    case 'SYS/TEMP':
      return 'SYS_TEMP';
    case 'SYS/PERM':
      return 'SYS_PERM';
    case 'AUTH':
      return 'AUTH_FAILED';
    default:
      return phase === 'auth' ? 'AUTH_FAILED' : 'COMMAND_FAILED';
  }
}

/** One line describing any error, for reports and logs (the same function as lib/drain's). */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
