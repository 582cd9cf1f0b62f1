/**
 * POP3 command serialization. Each command is built once, with two forms: the bytes for the
 * wire and the form for logs and errors. Credentials and SASL payloads are marked sensitive
 * here, where the command is built, so the log form never holds them.
 */

export const REDACTED = '****';

/** How the response to a command is framed. */
export type ResponseShape =
  /** One status line. */
  | 'single'
  /** A status line, then (on +OK) a multi-line block that is collected (CAPA, LIST, UIDL). */
  | 'listing'
  /** A status line, then (on +OK) a multi-line block that is streamed (RETR, TOP). */
  | 'stream'
  /** AUTH: continuations (`+ ...`) until a final +OK or -ERR. */
  | 'sasl';

export interface Command {
  /** Upper-case keyword, e.g. `RETR`. */
  readonly keyword: string;
  /** Bytes to send, CRLF included. */
  readonly wire: string;
  /** What logs and errors may show: secrets replaced by `****`. */
  readonly logForm: string;
  readonly shape: ResponseShape;
}

export class CommandArgumentError extends Error {
  override readonly name = 'CommandArgumentError';
}

function checkArg(value: string, what: string): string {
  if (/[\r\n\0]/.test(value)) throw new CommandArgumentError(`${what} must not contain CR, LF or NUL`);
  if (value.length === 0) throw new CommandArgumentError(`${what} must not be empty`);
  return value;
}

function checkMessageNumber(n: number): string {
  if (!Number.isSafeInteger(n) || n < 1) throw new CommandArgumentError(`invalid message number ${n}`);
  return String(n);
}

function make(keyword: string, args: string[], shape: ResponseShape, logArgs: string[] = args): Command {
  const wire = args.length === 0 ? keyword : `${keyword} ${args.join(' ')}`;
  const logForm = logArgs.length === 0 ? keyword : `${keyword} ${logArgs.join(' ')}`;
  return { keyword, wire: `${wire}\r\n`, logForm, shape };
}

export const commands = {
  capa: (): Command => make('CAPA', [], 'listing'),
  stls: (): Command => make('STLS', [], 'single'),
  /** RFC 6856: UTF-8 mode, in the AUTHORIZATION state (after STLS, before login). */
  utf8: (): Command => make('UTF8', [], 'single'),
  user: (name: string): Command => make('USER', [checkArg(name, 'user name')], 'single'),
  pass: (password: string): Command => make('PASS', [checkArg(password, 'password')], 'single', [REDACTED]),
  apop: (name: string, digestHex: string): Command =>
    make('APOP', [checkArg(name, 'user name'), checkArg(digestHex, 'APOP digest')], 'single', [name, REDACTED]),
  /** AUTH with an optional initial response (already base64; `=` for an empty one). */
  auth: (mechanism: string, initialResponse?: string): Command =>
    initialResponse === undefined
      ? make('AUTH', [checkArg(mechanism, 'mechanism')], 'sasl')
      : make('AUTH', [checkArg(mechanism, 'mechanism'), checkArg(initialResponse, 'initial response')], 'sasl', [
          mechanism,
          REDACTED,
        ]),
  stat: (): Command => make('STAT', [], 'single'),
  list: (): Command => make('LIST', [], 'listing'),
  listOne: (n: number): Command => make('LIST', [checkMessageNumber(n)], 'single'),
  uidl: (): Command => make('UIDL', [], 'listing'),
  uidlOne: (n: number): Command => make('UIDL', [checkMessageNumber(n)], 'single'),
  retr: (n: number): Command => make('RETR', [checkMessageNumber(n)], 'stream'),
  top: (n: number, lines: number): Command => {
    if (!Number.isSafeInteger(lines) || lines < 0) throw new CommandArgumentError(`invalid line count ${lines}`);
    return make('TOP', [checkMessageNumber(n), String(lines)], 'stream');
  },
  dele: (n: number): Command => make('DELE', [checkMessageNumber(n)], 'single'),
  rset: (): Command => make('RSET', [], 'single'),
  noop: (): Command => make('NOOP', [], 'single'),
  quit: (): Command => make('QUIT', [], 'single'),
};

/**
 * One line of a SASL exchange sent in answer to a continuation. Always sensitive; `*` cancels
 * the exchange (RFC 5034) and is the only form shown as is.
 */
export function saslResponseLine(base64: string): { wire: string; logForm: string } {
  if (/[\r\n]/.test(base64)) throw new CommandArgumentError('SASL response must not contain CR or LF');
  return { wire: `${base64}\r\n`, logForm: base64 === '*' ? '*' : REDACTED };
}
