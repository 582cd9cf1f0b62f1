/**
 * A scriptable, in-process POP3 server for tests and for the demo.
 *
 * By default it is a well-behaved server (RFC 1939, RFC 2449 CAPA and response codes, RFC 2595
 * STLS, RFC 5034 AUTH with PLAIN, LOGIN, CRAM-MD5, XOAUTH2 and RFC 7628 OAUTHBEARER, APOP,
 * mailbox locking, pipelined commands answered strictly in order). Hooks replace any part of
 * it, down to raw bytes on the socket, so tests can show what a real server will not do on
 * demand: malformed or over-long status lines, silence, a disconnect in the middle of a body, a
 * body without its terminator, [IN-USE] / [LOGIN-DELAY] / [SYS/*] answers, Microsoft's XOAUTH2
 * dialect. The helpers at the end of this file build the common misbehaviours.
 *
 * It depends on `node:` built-ins only (the demo runs it with nothing but Node installed) and
 * imports nothing else of ours. It listens on loopback addresses only. Session logs keep every
 * received line, AUTH payloads and passwords included, because tests assert on them; the `log`
 * callback never sees passwords, tokens or SASL payloads.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';

// ---------------------------------------------------------------------------------------------
// Limits and timeouts
// ---------------------------------------------------------------------------------------------

/** Longest command or SASL response line accepted; XOAUTH2 tokens of a few KiB fit easily. */
export const MAX_COMMAND_LINE_BYTES = 64 * 1024;
/** Message bodies are written in chunks of this size, each awaited (backpressure). */
const BODY_WRITE_CHUNK_BYTES = 64 * 1024;
/** Limit for the TLS handshake after STLS. */
const STLS_HANDSHAKE_TIMEOUT_MS = 10_000;
/** After the server closed its side, how long it waits for the client's FIN before a reset. */
const CLOSE_LINGER_MS = 2_000;

const CRLF = Buffer.from('\r\n', 'latin1');
const TERMINATOR = Buffer.from('.\r\n', 'latin1');
const DOT = Buffer.from('.', 'latin1');
const LF_BYTE = 0x0a;
const CR_BYTE = 0x0d;
const DOT_BYTE = 0x2e;

const DEFAULT_HOST = '127.0.0.1';
const DEFAULT_SASL_MECHANISMS: readonly string[] = ['PLAIN', 'LOGIN'];
const IMPLEMENTATION = 'popdrain-test-server';
const AUTH_FAILED = '-ERR [AUTH] Authentication failed';

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

type Awaitable<T> = T | Promise<T>;

/** One message of a maildrop. */
export interface MailboxMessage {
  /** The message as stored, CRLF line endings expected; the server dot-stuffs when sending. */
  bytes: Buffer;
  /**
   * The UIDL unique-id, sent as given (not validated, so tests can serve hostile ones).
   * @default a stable id derived from the SHA-256 of the bytes (made unique within the mailbox)
   */
  uid?: string;
  /**
   * Set to `true` by the server when a session's QUIT removed the message from its mailbox.
   * A message that is already `deleted: true` when a session logs in is not in the maildrop.
   */
  deleted?: boolean;
}

export interface Pop3UserAccount {
  password: string;
  /** Bearer tokens accepted by XOAUTH2 and OAUTHBEARER for this user. */
  oauthTokens?: string[];
}

export interface Pop3ServerFeatures {
  /** UIDL command and capability. @default true */
  uidl?: boolean;
  /** TOP command and capability. @default true */
  top?: boolean;
  /** Advertise PIPELINING (pipelined commands are always answered correctly). @default true */
  pipelining?: boolean;
  /** STLS command and capability. @default true when `tls` is set and `implicitTls` is not */
  stls?: boolean;
  /** APOP command; the default greeting then carries a timestamp. @default false */
  apop?: boolean;
  /** SASL mechanisms offered by AUTH and listed in CAPA. @default ['PLAIN', 'LOGIN'] */
  sasl?: string[];
  /** USER/PASS allowed and USER listed in CAPA. @default true */
  user?: boolean;
}

export interface Pop3ServerOptions {
  /** Must be a loopback address. @default '127.0.0.1' */
  host?: string;
  /** @default 0 (a free port) */
  port?: number;
  /** Certificate and key: implicit TLS when `implicitTls`, STLS otherwise. */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /** TLS from the first byte (port 995 style); needs `tls`. @default false */
  implicitTls?: boolean;
  /** @default {} (every login fails) */
  users?: Record<string, Pop3UserAccount>;
  /**
   * Maildrops by user name. The object is shared, not copied: QUIT removes deleted messages
   * from these arrays, so tests inspect them afterwards. A user without an entry gets an empty
   * array at login.
   * @default {}
   */
  mailboxes?: Record<string, MailboxMessage[]>;
  /**
   * Replaces the CAPA lines; `null` makes CAPA answer -ERR (a server that predates RFC 2449).
   * @default derived from `features` and the session state
   */
  capabilities?: readonly string[] | null;
  features?: Pop3ServerFeatures;
  /**
   * The whole greeting line, sent as given. An APOP timestamp in it (`<...>`) is used by APOP.
   * @default '+OK popdrain test server ready', plus a fresh timestamp when `features.apop`
   */
  greeting?: string;
  /** Scripted behaviour; several hook sets are consulted in order, the first that answers wins. */
  hooks?: Pop3ServerHooks | readonly Pop3ServerHooks[];
  /** Protocol log, one line per call, credentials redacted. @default silent */
  log?: (line: string) => void;
}

/** Where a session stands (RFC 1939 section 3). */
export type SessionPhase = 'AUTHORIZATION' | 'TRANSACTION' | 'UPDATE';

/** How the user logged in, as told to `onLogin`. */
export type LoginMethod = 'USER' | 'APOP' | 'SASL';

/** A message as one session sees it (numbered from 1, DELE marks are session-local). */
export interface SessionMessage {
  readonly number: number;
  readonly uid: string;
  /** Byte length of the stored bytes, as LIST and STAT report it. */
  readonly size: number;
  readonly bytes: Buffer;
  /** Marked by DELE in this session; RSET clears it, QUIT applies it. */
  readonly deleted: boolean;
  /** The mailbox entry it came from. */
  readonly stored: MailboxMessage;
}

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

/** The record of one connection, kept by the server for assertions. */
export interface SessionLog {
  readonly id: number;
  readonly remoteAddress: string;
  /** Every line received, in order, without CRLF; passwords and AUTH payloads included. */
  readonly received: readonly string[];
  readonly tls: boolean;
  readonly phase: SessionPhase;
  readonly user: string | undefined;
  /** QUIT was answered with +OK. */
  readonly quit: boolean;
  /** UIDs of the messages this session's QUIT removed from the mailbox. */
  readonly expunged: readonly string[];
  readonly closed: boolean;
  /** Resolves when the session is over: socket closed, mailbox lock released. */
  readonly finished: Promise<void>;
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

export interface Pop3TestServer {
  readonly host: string;
  readonly port: number;
  readonly implicitTls: boolean;
  /** `pop3://` (or `pop3s://` with implicit TLS), with the user and password when given. */
  url(user?: string, password?: string): string;
  /** TCP connections accepted so far. */
  readonly connections: number;
  /** Sessions whose socket is still open. */
  readonly activeConnections: number;
  /** One record per connection, in the order they arrived. */
  readonly sessions: readonly SessionLog[];
  /** The shared maildrops (the object given in the options). */
  readonly mailboxes: Record<string, MailboxMessage[]>;
  /** Unexpected errors: exceptions from hooks or from the server itself, not socket errors. */
  readonly errors: readonly Error[];
  /** Resolves when every session so far has finished and its socket has closed. */
  whenIdle(): Promise<void>;
  /** Stops listening, destroys open connections; rejects if `errors` is not empty. */
  close(): Promise<void>;
}

export class ReadLineTimeoutError extends Error {
  override readonly name = 'ReadLineTimeoutError';
  readonly code = 'READ_LINE_TIMEOUT';
  constructor(readonly timeoutMs: number) {
    super(`no line from the client within ${timeoutMs} ms`);
  }
}

export class ConnectionClosedError extends Error {
  override readonly name = 'ConnectionClosedError';
  readonly code = 'CONNECTION_CLOSED';
  constructor() {
    super('the connection is closed');
  }
}

export class CommandLineTooLongError extends Error {
  override readonly name = 'CommandLineTooLongError';
  readonly code = 'COMMAND_LINE_TOO_LONG';
  constructor() {
    super(`client line longer than ${MAX_COMMAND_LINE_BYTES} bytes`);
  }
}

// ---------------------------------------------------------------------------------------------
// Wire helpers (exported for tests that check bytes on the wire)
// ---------------------------------------------------------------------------------------------

/** RFC 1939 byte-stuffing: a line that starts with `.` gets another `.` in front. */
export function dotStuff(bytes: Buffer): Buffer {
  const parts: Buffer[] = [];
  let copiedUpTo = 0;
  let lineStart = 0;
  while (lineStart < bytes.length) {
    if (bytes[lineStart] === DOT_BYTE) {
      parts.push(bytes.subarray(copiedUpTo, lineStart), DOT);
      copiedUpTo = lineStart;
    }
    const lf = bytes.indexOf(LF_BYTE, lineStart);
    if (lf < 0) break;
    lineStart = lf + 1;
  }
  if (parts.length === 0) return bytes;
  parts.push(bytes.subarray(copiedUpTo));
  return Buffer.concat(parts);
}

function endsWithCrlf(bytes: Buffer): boolean {
  return bytes.length >= 2 && bytes[bytes.length - 2] === CR_BYTE && bytes[bytes.length - 1] === LF_BYTE;
}

/**
 * The bytes that follow a positive status line for a message: dot-stuffed, CRLF added when the
 * stored bytes do not end with one (as real servers do), then `.` CRLF.
 */
export function encodeMultilineBody(bytes: Buffer): Buffer {
  const stuffed = dotStuff(bytes);
  const parts = [stuffed];
  if (bytes.length > 0 && !endsWithCrlf(bytes)) parts.push(CRLF);
  parts.push(TERMINATOR);
  return Buffer.concat(parts);
}

/** What TOP n k sends: the header block with its blank line, then the first `bodyLines` lines. */
export function extractTop(bytes: Buffer, bodyLines: number): Buffer {
  let pos = 0;
  while (pos < bytes.length) {
    const lf = bytes.indexOf(LF_BYTE, pos);
    const isBlank = lf === pos || (lf === pos + 1 && bytes[pos] === CR_BYTE);
    pos = lf < 0 ? bytes.length : lf + 1;
    if (isBlank) break;
  }
  for (let left = bodyLines; left > 0 && pos < bytes.length; left--) {
    const lf = bytes.indexOf(LF_BYTE, pos);
    pos = lf < 0 ? bytes.length : lf + 1;
  }
  return bytes.subarray(0, pos);
}

// ---------------------------------------------------------------------------------------------
// Line reading (pull-based, so bytes the session has not asked for stay in the socket)
// ---------------------------------------------------------------------------------------------

class LineReader {
  private buffer: Buffer = Buffer.alloc(0);
  private eof = false;
  private busy = false;

  constructor(private readonly stream: net.Socket) {}

  /** Throws away bytes received but not yet read as lines; returns how many. */
  discardBuffered(): number {
    const n = this.buffer.length;
    this.buffer = Buffer.alloc(0);
    return n;
  }

  async readLine(timeoutMs?: number): Promise<string | null> {
    if (this.busy) throw new Error('readLine() called while another readLine() is pending');
    this.busy = true;
    const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
    try {
      for (;;) {
        const lf = this.buffer.indexOf(LF_BYTE);
        if (lf >= 0) {
          const end = lf > 0 && this.buffer[lf - 1] === CR_BYTE ? lf - 1 : lf;
          const line = this.buffer.toString('utf8', 0, end);
          this.buffer = this.buffer.subarray(lf + 1);
          return line;
        }
        if (this.buffer.length > MAX_COMMAND_LINE_BYTES) throw new CommandLineTooLongError();
        if (this.eof) return null;
        const chunk: unknown = this.stream.read();
        if (chunk !== null) {
          const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk), 'utf8');
          this.buffer = this.buffer.length === 0 ? bytes : Buffer.concat([this.buffer, bytes]);
          continue;
        }
        if (this.stream.readableEnded || this.stream.destroyed) {
          this.eof = true;
          continue;
        }
        await this.waitForData(deadline, timeoutMs ?? 0);
      }
    } finally {
      this.busy = false;
    }
  }

  private waitForData(deadline: number | undefined, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onData = (): void => {
        cleanup();
        resolve();
      };
      const onEnd = (): void => {
        this.eof = true;
        cleanup();
        resolve();
      };
      const cleanup = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        this.stream.off('readable', onData);
        this.stream.off('end', onEnd);
        this.stream.off('close', onEnd);
        this.stream.off('error', onEnd);
      };
      this.stream.on('readable', onData);
      this.stream.on('end', onEnd);
      this.stream.on('close', onEnd);
      this.stream.on('error', onEnd);
      if (deadline !== undefined) {
        timer = setTimeout(() => {
          cleanup();
          reject(new ReadLineTimeoutError(timeoutMs));
        }, Math.max(0, deadline - Date.now()));
      }
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Connection
// ---------------------------------------------------------------------------------------------

function isConnectionError(err: unknown): boolean {
  if (err instanceof ConnectionClosedError || err instanceof ReadLineTimeoutError) return true;
  if (err instanceof CommandLineTooLongError) return true;
  // Socket, stream and TLS errors: ECONNRESET, EPIPE, ERR_STREAM_DESTROYED, ERR_SSL_..., ...
  // (not ERR_ASSERTION and the like: a failing assertion in a hook is a real error).
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(?:E[A-Z]+$|ERR_(?:STREAM|SSL|TLS|SOCKET)_)/.test(code);
}

interface ServerContext {
  readonly users: Record<string, Pop3UserAccount>;
  readonly secureContext: tls.SecureContext | undefined;
  readonly log: ((line: string) => void) | undefined;
}

class Connection implements ScriptedConnection {
  readonly received: string[] = [];
  readonly closed: Promise<void>;
  readonly remoteAddress: string;
  /** Set while a SASL exchange runs, so the log redacts every client line. */
  sensitive = false;
  private socket: net.Socket;
  private reader: LineReader;
  private closing = false;
  private hasClosed = false;
  private isTls: boolean;
  private resolveClosed!: () => void;

  constructor(
    readonly id: number,
    socket: net.Socket,
    private readonly rawSocket: net.Socket,
    private readonly ctx: ServerContext,
  ) {
    this.socket = socket;
    this.isTls = socket instanceof tls.TLSSocket;
    this.remoteAddress = rawSocket.remoteAddress ?? '';
    this.closed = new Promise<void>((resolve) => {
      this.resolveClosed = resolve;
    });
    this.reader = new LineReader(socket);
    this.watch(socket);
  }

  get tls(): boolean {
    return this.isTls;
  }

  get isClosed(): boolean {
    return this.hasClosed || this.closing || this.socket.destroyed;
  }

  private watch(socket: net.Socket): void {
    socket.on('error', (err) => this.log(`socket error: ${err.message}`));
    socket.once('close', () => {
      this.hasClosed = true;
      this.resolveClosed();
    });
  }

  log(text: string): void {
    this.ctx.log?.(`[#${this.id}] ${text}`);
  }

  write(data: string | Buffer): Promise<void> {
    const socket = this.socket;
    if (this.isClosed || !socket.writable) return Promise.reject(new ConnectionClosedError());
    return new Promise<void>((resolve, reject) => {
      socket.write(data, (err) => (err ? reject(err) : resolve()));
    });
  }

  async writeLine(line: string): Promise<void> {
    this.log(`S: ${line}`);
    await this.write(`${line}\r\n`);
  }

  async writeMultiline(status: string, lines: readonly string[]): Promise<void> {
    this.log(`S: ${status} (+${lines.length} lines)`);
    const body = lines.map((l) => (l.startsWith('.') ? `.${l}` : l)).join('\r\n');
    await this.write(`${status}\r\n${lines.length > 0 ? `${body}\r\n` : ''}.\r\n`);
  }

  /** A status line and a message body in bounded chunks, each write awaited. */
  async writeBody(status: string, wire: Buffer): Promise<void> {
    this.log(`S: ${status} (+${wire.length} body bytes)`);
    await this.write(`${status}\r\n`);
    for (let offset = 0; offset < wire.length; offset += BODY_WRITE_CHUNK_BYTES) {
      await this.write(wire.subarray(offset, offset + BODY_WRITE_CHUNK_BYTES));
    }
  }

  async readLine(timeoutMs?: number): Promise<string | null> {
    const line = await this.reader.readLine(timeoutMs);
    if (line === null) {
      this.log('C: <end of stream>');
      return null;
    }
    this.received.push(line);
    this.log(`C: ${this.sensitive ? '<SASL response redacted>' : redactCommand(line)}`);
    return line;
  }

  async silence(): Promise<void> {
    try {
      while ((await this.readLine()) !== null) {
        // Recorded but never answered.
      }
    } catch (err) {
      if (!isConnectionError(err)) throw err;
    }
    if (!this.hasClosed) {
      this.socket.end();
      await this.closed;
    }
  }

  /** After the session: end our side, read until the client's FIN, reset after a grace period. */
  async finish(): Promise<void> {
    if (this.hasClosed) return;
    if (!this.socket.destroyed) this.socket.end();
    this.closing = true;
    const linger = setTimeout(() => this.socket.destroy(), CLOSE_LINGER_MS);
    try {
      for (;;) {
        const line = await this.reader.readLine();
        if (line === null) break;
        this.received.push(line);
        this.log(`C: ${redactCommand(line)} (after close)`);
      }
    } catch {
      // Whatever the client does now, the session is over.
    }
    this.socket.destroySoon();
    await this.closed;
    clearTimeout(linger);
  }

  end(): void {
    this.log('S: <end>');
    this.closing = true;
    this.socket.end();
  }

  destroy(): void {
    this.log('S: <destroy>');
    this.closing = true;
    this.socket.destroy();
    this.rawSocket.destroy();
  }

  reset(): void {
    this.log('S: <reset>');
    this.closing = true;
    if (this.socket === this.rawSocket && !this.rawSocket.destroyed) {
      try {
        this.rawSocket.resetAndDestroy();
        return;
      } catch {
        // Not a TCP handle; fall back to destroy.
      }
    }
    this.socket.destroy();
    this.rawSocket.destroy();
  }

  /** Drops received bytes the session has not read, in our buffer and in the socket's. */
  discardPendingInput(): number {
    let n = this.reader.discardBuffered();
    for (;;) {
      const chunk: unknown = this.socket.read();
      if (chunk === null) break;
      n += Buffer.isBuffer(chunk) ? chunk.length : String(chunk).length;
    }
    return n;
  }

  async startTls(): Promise<void> {
    if (this.isTls) throw new Error('startTls(): the connection already uses TLS');
    const secureContext = this.ctx.secureContext;
    if (secureContext === undefined) throw new Error('startTls(): the server has no `tls` option');
    if (this.isClosed) throw new ConnectionClosedError();
    // Plaintext that arrived before the handshake and was already framed is an injection
    // attempt (the client must wait for +OK); it is dropped, never read after the upgrade.
    const dropped = this.reader.discardBuffered();
    if (dropped > 0) this.log(`dropped ${dropped} plaintext bytes received before the TLS handshake`);
    const secure = new tls.TLSSocket(this.rawSocket, { isServer: true, secureContext });
    this.socket = secure;
    this.reader = new LineReader(secure);
    this.isTls = true;
    this.watch(secure);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        done();
        secure.destroy();
        reject(new Error(`TLS handshake not finished within ${STLS_HANDSHAKE_TIMEOUT_MS} ms`));
      }, STLS_HANDSHAKE_TIMEOUT_MS);
      const onSecure = (): void => {
        done();
        resolve();
      };
      const onError = (err: Error): void => {
        done();
        secure.destroy();
        reject(err);
      };
      const onClose = (): void => {
        done();
        reject(new ConnectionClosedError());
      };
      const done = (): void => {
        clearTimeout(timer);
        secure.off('secure', onSecure);
        secure.off('error', onError);
        secure.off('close', onClose);
      };
      secure.on('secure', onSecure);
      secure.on('error', onError);
      secure.on('close', onClose);
    });
    this.log('TLS established');
  }

  checkPassword(user: string, password: string): boolean {
    const account = Object.hasOwn(this.ctx.users, user) ? this.ctx.users[user] : undefined;
    return account !== undefined && account.password === password;
  }

  checkOAuthToken(user: string, token: string): boolean {
    const account = Object.hasOwn(this.ctx.users, user) ? this.ctx.users[user] : undefined;
    return account?.oauthTokens?.includes(token) ?? false;
  }
}

function splitCommand(line: string): { verb: string; args: string[] } {
  const parts = line.trim().split(/ +/);
  const verb = (parts.shift() ?? '').toUpperCase();
  return { verb, args: parts.filter((p) => p.length > 0) };
}

/** The log form of a client command: no passwords, digests or SASL payloads. */
function redactCommand(line: string): string {
  const { verb, args } = splitCommand(line);
  if (verb === 'PASS') return 'PASS <redacted>';
  if (verb === 'APOP') return `APOP ${args[0] ?? ''} <redacted>`;
  if (verb === 'AUTH' && args.length > 1) return `AUTH ${args[0] ?? ''} <redacted>`;
  return line;
}

// ---------------------------------------------------------------------------------------------
// SASL helpers
// ---------------------------------------------------------------------------------------------

const BASE64_PATTERN = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function decodeBase64(text: string): Buffer | undefined {
  return BASE64_PATTERN.test(text) ? Buffer.from(text, 'base64') : undefined;
}

function parseXoauth2(payload: Buffer): { user: string; token: string } | undefined {
  const fields = payload.toString('utf8').split('\x01');
  let user: string | undefined;
  let token: string | undefined;
  for (const field of fields) {
    if (field.startsWith('user=')) user = field.slice('user='.length);
    else if (/^auth=Bearer /i.test(field)) token = field.slice('auth=Bearer '.length);
  }
  return user !== undefined && token !== undefined ? { user, token } : undefined;
}

/** RFC 7628: gs2 header `n,a=<saslname>,` then `\x01` key=value pairs, ending `\x01\x01`. */
function parseOauthBearer(payload: Buffer): { user: string | undefined; token: string } | undefined {
  const text = payload.toString('utf8');
  const firstSep = text.indexOf('\x01');
  if (firstSep < 0) return undefined;
  const gs2 = text.slice(0, firstSep).split(',');
  if (gs2[0] !== 'n' && gs2[0] !== 'y') return undefined; // 'p=' asks for channel binding
  const authzid = gs2.find((p) => p.startsWith('a='))?.slice(2);
  const user = authzid?.replace(/=2C/g, ',').replace(/=3D/g, '=');
  const auth = text
    .slice(firstSep + 1)
    .split('\x01')
    .find((kv) => /^auth=Bearer /i.test(kv));
  if (auth === undefined) return undefined;
  return { user: user === '' ? undefined : user, token: auth.slice('auth=Bearer '.length) };
}

type SaslOutcome =
  | { kind: 'ok'; user: string }
  | { kind: 'failed' }
  | { kind: 'cancelled' }
  | { kind: 'malformed' }
  | { kind: 'closed' };

// ---------------------------------------------------------------------------------------------
// Session
// ---------------------------------------------------------------------------------------------

interface MutableMessage extends SessionMessage {
  deleted: boolean;
}

interface ServerShared extends ServerContext {
  readonly options: Pop3ServerOptions;
  readonly hooks: readonly Pop3ServerHooks[];
  readonly mailboxes: Record<string, MailboxMessage[]>;
  readonly locks: Map<string, number>;
  readonly features: Required<Pop3ServerFeatures>;
  readonly assignedUids: WeakMap<MailboxMessage, string>;
  recordError(err: unknown, where: string, conn: Connection): void;
}

let timestampCounter = 0;

function makeApopTimestamp(): string {
  timestampCounter += 1;
  return `<${process.pid}.${Date.now()}.${timestampCounter}@popdrain.test>`;
}

function digestUid(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex').slice(0, 32);
}

class Session implements SessionState, SessionLog {
  phase: SessionPhase = 'AUTHORIZATION';
  user: string | undefined;
  apopTimestamp: string | undefined;
  messages: MutableMessage[] = [];
  quit = false;
  readonly expunged: string[] = [];
  finished: Promise<void> = Promise.resolve();
  private pendingUser: string | undefined;

  constructor(
    private readonly conn: Connection,
    private readonly server: ServerShared,
  ) {}

  get id(): number {
    return this.conn.id;
  }
  get remoteAddress(): string {
    return this.conn.remoteAddress;
  }
  get received(): readonly string[] {
    return this.conn.received;
  }
  get tls(): boolean {
    return this.conn.tls;
  }
  get closed(): boolean {
    return this.conn.isClosed;
  }

  message(numberArg: string | number | undefined): SessionMessage | undefined {
    const m = this.lookup(numberArg);
    return m === undefined || m.deleted ? undefined : m;
  }

  private lookup(numberArg: string | number | undefined): MutableMessage | undefined {
    const text = String(numberArg ?? '');
    if (!/^[1-9][0-9]{0,9}$/.test(text)) return undefined;
    return this.messages[Number(text) - 1];
  }

  async run(): Promise<void> {
    const { conn } = this;
    try {
      if (await this.callHooks((h) => h.onConnect?.(conn))) {
        if (!conn.isClosed) await conn.silence();
        return;
      }
      const greeting = this.server.options.greeting ?? this.defaultGreeting();
      this.apopTimestamp = /<[^<>\s]+>/.exec(greeting)?.[0];
      await conn.writeLine(greeting);
      while (!conn.isClosed && this.phase !== 'UPDATE' && !this.quit) {
        const line = await conn.readLine();
        if (line === null) break;
        if (await this.callHooks((h) => h.onCommand?.(conn, line, this))) continue;
        await this.dispatch(line);
      }
    } catch (err) {
      if (err instanceof CommandLineTooLongError && !conn.isClosed) {
        await conn.writeLine('-ERR Line too long').catch(() => undefined);
      } else if (!isConnectionError(err)) {
        this.server.recordError(err, 'session', conn);
      }
    } finally {
      // Without QUIT nothing is applied: DELE marks die with the session (RFC 1939 section 6).
      if (this.user !== undefined && this.server.locks.get(this.user) === this.id) {
        this.server.locks.delete(this.user);
      }
      await conn.finish();
    }
  }

  private defaultGreeting(): string {
    const base = '+OK popdrain test server ready';
    return this.server.features.apop ? `${base} ${makeApopTimestamp()}` : base;
  }

  /** Runs one hook kind over every hook set; the first truthy answer wins. */
  private async callHooks<T>(call: (h: Pop3ServerHooks) => Awaitable<T | false | void> | undefined): Promise<T | undefined> {
    for (const hooks of this.server.hooks) {
      const result = await call(hooks);
      if (result !== undefined && result !== false) return result;
    }
    return undefined;
  }

  private async dispatch(line: string): Promise<void> {
    const { verb, args } = splitCommand(line);
    const { conn } = this;
    switch (verb) {
      case 'CAPA':
        return this.capa();
      case 'QUIT':
        return this.quitCommand();
      case 'USER':
      case 'PASS':
      case 'APOP':
      case 'AUTH':
      case 'STLS':
        if (this.phase !== 'AUTHORIZATION') return conn.writeLine('-ERR Command not valid in this state');
        if (verb === 'USER') return this.userCommand(args);
        if (verb === 'PASS') return this.passCommand(line);
        if (verb === 'APOP') return this.apopCommand(args);
        if (verb === 'AUTH') return this.authCommand(args);
        return this.stlsCommand();
      case 'STAT':
      case 'LIST':
      case 'UIDL':
      case 'RETR':
      case 'TOP':
      case 'DELE':
      case 'RSET':
      case 'NOOP':
        if (this.phase !== 'TRANSACTION') return conn.writeLine('-ERR Command not valid in this state');
        return this.transactionCommand(verb, args);
      default:
        return conn.writeLine('-ERR Unknown command');
    }
  }

  // ----- any state -----

  private capabilityLines(): string[] {
    const configured = this.server.options.capabilities;
    if (configured) return [...configured];
    const f = this.server.features;
    const lines: string[] = [];
    if (f.top) lines.push('TOP');
    if (f.uidl) lines.push('UIDL');
    if (f.user) lines.push('USER');
    if (f.sasl.length > 0) lines.push(`SASL ${f.sasl.join(' ')}`);
    if (f.pipelining) lines.push('PIPELINING');
    if (f.stls && !this.conn.tls && this.phase === 'AUTHORIZATION') lines.push('STLS');
    lines.push('RESP-CODES', 'AUTH-RESP-CODE', `IMPLEMENTATION ${IMPLEMENTATION}`);
    return lines;
  }

  private async capa(): Promise<void> {
    if (this.server.options.capabilities === null) return this.conn.writeLine('-ERR Unknown command');
    await this.conn.writeMultiline('+OK Capability list follows', this.capabilityLines());
  }

  private async quitCommand(): Promise<void> {
    if (this.phase === 'TRANSACTION' && this.user !== undefined) {
      this.phase = 'UPDATE';
      const box = this.server.mailboxes[this.user];
      for (const m of this.messages) {
        if (!m.deleted) continue;
        const index = box?.indexOf(m.stored) ?? -1;
        if (index >= 0) box?.splice(index, 1);
        m.stored.deleted = true;
        this.expunged.push(m.uid);
      }
      await this.conn.writeLine(`+OK Logging out, ${this.expunged.length} messages deleted`);
    } else {
      await this.conn.writeLine('+OK Logging out');
    }
    this.quit = true;
  }

  // ----- AUTHORIZATION -----

  private async userCommand(args: string[]): Promise<void> {
    if (!this.server.features.user) return this.conn.writeLine('-ERR USER/PASS not supported');
    const name = args[0];
    if (name === undefined || args.length > 1) return this.conn.writeLine('-ERR Syntax: USER name');
    this.pendingUser = name;
    await this.conn.writeLine('+OK');
  }

  private async passCommand(line: string): Promise<void> {
    const user = this.pendingUser;
    this.pendingUser = undefined;
    if (!this.server.features.user) return this.conn.writeLine('-ERR USER/PASS not supported');
    if (user === undefined) return this.conn.writeLine('-ERR No user name given (USER first)');
    // RFC 1939 allows spaces in the password: everything after "PASS ".
    const password = line.replace(/^\s*\S+ ?/, '');
    if (!this.conn.checkPassword(user, password)) return this.conn.writeLine(AUTH_FAILED);
    await this.login(user, 'USER');
  }

  private async apopCommand(args: string[]): Promise<void> {
    if (!this.server.features.apop || this.apopTimestamp === undefined) {
      return this.conn.writeLine('-ERR APOP not available');
    }
    const [user, digest] = args;
    if (user === undefined || digest === undefined || args.length !== 2) {
      return this.conn.writeLine('-ERR Syntax: APOP name digest');
    }
    const account = Object.hasOwn(this.server.users, user) ? this.server.users[user] : undefined;
    const expected =
      account === undefined
        ? undefined
        : createHash('md5').update(this.apopTimestamp + account.password, 'utf8').digest('hex');
    if (expected === undefined || digest.toLowerCase() !== expected) return this.conn.writeLine(AUTH_FAILED);
    await this.login(user, 'APOP');
  }

  private async stlsCommand(): Promise<void> {
    const { conn } = this;
    if (conn.tls) return conn.writeLine('-ERR Command not permitted when TLS active');
    if (!this.server.features.stls || this.server.secureContext === undefined) {
      return conn.writeLine('-ERR STLS not available');
    }
    // RFC 2595 section 4: the client must wait for +OK, so anything already received is dropped.
    const dropped = conn.discardPendingInput();
    if (dropped > 0) conn.log(`dropped ${dropped} bytes pipelined after STLS`);
    await conn.writeLine('+OK Begin TLS negotiation');
    await conn.startTls();
    this.pendingUser = undefined;
  }

  private async authCommand(args: string[]): Promise<void> {
    const { conn } = this;
    const offered = this.server.features.sasl;
    if (args.length === 0) return conn.writeMultiline('+OK Supported mechanisms follow', offered);
    if (args.length > 2) return conn.writeLine('-ERR Syntax: AUTH mechanism [initial-response]');
    const mechanism = (args[0] ?? '').toUpperCase();
    const initialResponse = args[1] === undefined ? undefined : args[1] === '=' ? '' : args[1];
    conn.sensitive = true;
    let outcome: SaslOutcome;
    try {
      const hooked = await this.callHooks((h) => h.onAuth?.(conn, mechanism, initialResponse, this));
      if (hooked === true) return;
      if (hooked !== undefined) return await this.login(hooked.user, 'SASL', hooked.response);
      if (!offered.includes(mechanism)) return await conn.writeLine('-ERR Unsupported authentication mechanism');
      outcome = await this.runMechanism(mechanism, initialResponse);
    } finally {
      conn.sensitive = false;
    }
    switch (outcome.kind) {
      case 'ok':
        return this.login(outcome.user, 'SASL');
      case 'failed':
        return conn.writeLine(AUTH_FAILED);
      case 'cancelled':
        return conn.writeLine('-ERR Authentication cancelled');
      case 'malformed':
        return conn.writeLine('-ERR Malformed SASL response');
      case 'closed':
        return;
    }
  }

  /** Sends `+ base64(challenge)` and returns the decoded answer. */
  private async exchange(challenge: string | Buffer): Promise<Buffer | Exclude<SaslOutcome, { kind: 'ok' }>> {
    const encoded = Buffer.from(challenge).toString('base64');
    await this.conn.writeLine(`+ ${encoded}`);
    const answer = await this.conn.readLine();
    if (answer === null) return { kind: 'closed' };
    if (answer === '*') return { kind: 'cancelled' };
    return decodeBase64(answer) ?? { kind: 'malformed' };
  }

  /** The client's first message: the initial response, or the answer to an empty challenge. */
  private async firstMessage(initialResponse: string | undefined): Promise<Buffer | Exclude<SaslOutcome, { kind: 'ok' }>> {
    if (initialResponse === undefined) return this.exchange('');
    return decodeBase64(initialResponse) ?? { kind: 'malformed' };
  }

  private async runMechanism(mechanism: string, initialResponse: string | undefined): Promise<SaslOutcome> {
    const { conn } = this;
    switch (mechanism) {
      case 'PLAIN': {
        const msg = await this.firstMessage(initialResponse);
        if (!Buffer.isBuffer(msg)) return msg;
        const parts = msg.toString('utf8').split('\0');
        if (parts.length !== 3) return { kind: 'malformed' };
        const [authzid = '', authcid = '', password = ''] = parts;
        if (authzid !== '' && authzid !== authcid) return { kind: 'failed' };
        return conn.checkPassword(authcid, password) ? { kind: 'ok', user: authcid } : { kind: 'failed' };
      }
      case 'LOGIN': {
        const userMsg = initialResponse === undefined ? await this.exchange('Username:') : decodeBase64(initialResponse);
        if (userMsg === undefined) return { kind: 'malformed' };
        if (!Buffer.isBuffer(userMsg)) return userMsg;
        const passMsg = await this.exchange('Password:');
        if (!Buffer.isBuffer(passMsg)) return passMsg;
        const user = userMsg.toString('utf8');
        return conn.checkPassword(user, passMsg.toString('utf8')) ? { kind: 'ok', user } : { kind: 'failed' };
      }
      case 'CRAM-MD5': {
        if (initialResponse !== undefined) return { kind: 'malformed' }; // no initial response in CRAM-MD5
        const challenge = `<${randomBytes(8).toString('hex')}.${Date.now()}@popdrain.test>`;
        const msg = await this.exchange(challenge);
        if (!Buffer.isBuffer(msg)) return msg;
        const text = msg.toString('utf8');
        const space = text.lastIndexOf(' ');
        if (space <= 0) return { kind: 'malformed' };
        const user = text.slice(0, space);
        const digest = text.slice(space + 1).toLowerCase();
        const account = Object.hasOwn(this.server.users, user) ? this.server.users[user] : undefined;
        if (account === undefined) return { kind: 'failed' };
        const expected = createHmac('md5', account.password).update(challenge).digest('hex');
        return digest === expected ? { kind: 'ok', user } : { kind: 'failed' };
      }
      case 'XOAUTH2': {
        const msg = await this.firstMessage(initialResponse);
        if (!Buffer.isBuffer(msg)) return msg;
        const parsed = parseXoauth2(msg);
        if (parsed !== undefined && conn.checkOAuthToken(parsed.user, parsed.token)) {
          return { kind: 'ok', user: parsed.user };
        }
        // Google's dialect: the error is a challenge, the client answers with an empty line.
        return this.oauthError({ status: '401', schemes: 'bearer', scope: 'https://mail.google.com/' });
      }
      case 'OAUTHBEARER': {
        const msg = await this.firstMessage(initialResponse);
        if (!Buffer.isBuffer(msg)) return msg;
        const parsed = parseOauthBearer(msg);
        if (parsed !== undefined) {
          const user =
            parsed.user ??
            Object.keys(this.server.users).find((u) => conn.checkOAuthToken(u, parsed.token));
          if (user !== undefined && conn.checkOAuthToken(user, parsed.token)) return { kind: 'ok', user };
        }
        // RFC 7628 section 3.2.2: error JSON as a challenge, the client answers %x01.
        return this.oauthError({ status: 'invalid_token', scope: 'pop3' });
      }
      default:
        return { kind: 'malformed' };
    }
  }

  private async oauthError(error: Record<string, string>): Promise<SaslOutcome> {
    const answer = await this.exchange(JSON.stringify(error));
    return Buffer.isBuffer(answer) || answer.kind === 'cancelled' ? { kind: 'failed' } : answer;
  }

  /** Credentials are good: ask the hooks, lock the maildrop, enter TRANSACTION. */
  private async login(user: string, method: LoginMethod, okLine = '+OK Logged in.'): Promise<void> {
    const { conn } = this;
    const verdict = await this.callHooks((h) => h.onLogin?.(conn, user, method, this));
    if (verdict === true) return;
    if (typeof verdict === 'string' && !verdict.startsWith('+OK')) return conn.writeLine(verdict);
    const holder = this.server.locks.get(user);
    if (holder !== undefined && holder !== this.id) {
      return conn.writeLine('-ERR [IN-USE] Mailbox is locked by another session');
    }
    this.server.locks.set(user, this.id);
    this.user = user;
    this.phase = 'TRANSACTION';
    this.messages = this.loadMaildrop(user);
    await conn.writeLine(typeof verdict === 'string' ? verdict : okLine);
  }

  private loadMaildrop(user: string): MutableMessage[] {
    const box = (this.server.mailboxes[user] ??= []);
    const present = box.filter((m) => m.deleted !== true);
    const { assignedUids } = this.server;
    const used = new Set<string>();
    for (const m of present) {
      const uid = m.uid ?? assignedUids.get(m);
      if (uid !== undefined) used.add(uid);
    }
    return present.map((stored, index) => {
      let uid = stored.uid ?? assignedUids.get(stored);
      if (uid === undefined) {
        const base = digestUid(stored.bytes);
        uid = base;
        for (let n = 2; used.has(uid); n++) uid = `${base}-${n}`;
        used.add(uid);
        assignedUids.set(stored, uid);
      }
      return { number: index + 1, uid, size: stored.bytes.length, bytes: stored.bytes, deleted: false, stored };
    });
  }

  // ----- TRANSACTION -----

  private totals(): { count: number; octets: number } {
    let count = 0;
    let octets = 0;
    for (const m of this.messages) {
      if (m.deleted) continue;
      count++;
      octets += m.size;
    }
    return { count, octets };
  }

  private async transactionCommand(verb: string, args: string[]): Promise<void> {
    const { conn } = this;
    const f = this.server.features;
    switch (verb) {
      case 'STAT': {
        const { count, octets } = this.totals();
        return conn.writeLine(`+OK ${count} ${octets}`);
      }
      case 'LIST':
      case 'UIDL': {
        if (verb === 'UIDL' && !f.uidl) return conn.writeLine('-ERR Unknown command');
        const field = (m: SessionMessage): string => (verb === 'LIST' ? String(m.size) : m.uid);
        if (args.length > 1) return conn.writeLine(`-ERR Syntax: ${verb} [msg]`);
        if (args.length === 1) {
          const m = this.message(args[0]);
          return conn.writeLine(m === undefined ? '-ERR No such message' : `+OK ${m.number} ${field(m)}`);
        }
        const { count, octets } = this.totals();
        const lines = this.messages.filter((m) => !m.deleted).map((m) => `${m.number} ${field(m)}`);
        return conn.writeMultiline(`+OK ${count} messages (${octets} octets)`, lines);
      }
      case 'RETR': {
        if (args.length !== 1) return conn.writeLine('-ERR Syntax: RETR msg');
        const m = this.message(args[0]);
        if (m === undefined) return conn.writeLine('-ERR No such message');
        return conn.writeBody(`+OK ${m.size} octets`, encodeMultilineBody(m.bytes));
      }
      case 'TOP': {
        if (!f.top) return conn.writeLine('-ERR Unknown command');
        const lines = args[1];
        if (args.length !== 2 || lines === undefined || !/^[0-9]{1,9}$/.test(lines)) {
          return conn.writeLine('-ERR Syntax: TOP msg n');
        }
        const m = this.message(args[0]);
        if (m === undefined) return conn.writeLine('-ERR No such message');
        return conn.writeBody('+OK', encodeMultilineBody(extractTop(m.bytes, Number(lines))));
      }
      case 'DELE': {
        if (args.length !== 1) return conn.writeLine('-ERR Syntax: DELE msg');
        const m = this.lookup(args[0]);
        if (m === undefined) return conn.writeLine('-ERR No such message');
        if (m.deleted) return conn.writeLine(`-ERR Message ${m.number} already deleted`);
        m.deleted = true;
        return conn.writeLine(`+OK Message ${m.number} deleted`);
      }
      case 'RSET': {
        for (const m of this.messages) m.deleted = false;
        const { count, octets } = this.totals();
        return conn.writeLine(`+OK maildrop has ${count} messages (${octets} octets)`);
      }
      default: // NOOP
        return conn.writeLine('+OK');
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (net.isIPv4(host)) return host.startsWith('127.');
  return net.isIPv6(host) && (host === '::1' || /^::ffff:127\./i.test(host));
}

/** Starts a server on a loopback address; resolves once it listens. */
export async function startPop3Server(options: Pop3ServerOptions = {}): Promise<Pop3TestServer> {
  const host = options.host ?? DEFAULT_HOST;
  if (!isLoopback(host)) throw new Error(`the POP3 test server listens on loopback only, not on ${host}`);
  const implicitTls = options.implicitTls ?? false;
  if (implicitTls && options.tls === undefined) throw new Error('implicitTls needs the `tls` option');
  const stls = options.features?.stls ?? (options.tls !== undefined && !implicitTls);
  if (stls && options.tls === undefined) throw new Error('features.stls needs the `tls` option');

  const features: Required<Pop3ServerFeatures> = {
    uidl: options.features?.uidl ?? true,
    top: options.features?.top ?? true,
    pipelining: options.features?.pipelining ?? true,
    stls: stls && !implicitTls,
    apop: options.features?.apop ?? false,
    sasl: (options.features?.sasl ?? [...DEFAULT_SASL_MECHANISMS]).map((m) => m.toUpperCase()),
    user: options.features?.user ?? true,
  };
  const hookList = options.hooks === undefined ? [] : Array.isArray(options.hooks) ? options.hooks : [options.hooks];
  const errors: Error[] = [];
  const sessions: Session[] = [];
  const running = new Set<Promise<void>>();
  const rawSockets = new Set<net.Socket>();
  const openConnections = new Set<Connection>();
  let accepted = 0;
  let nextId = 1;

  const shared: ServerShared = {
    options,
    hooks: hookList as readonly Pop3ServerHooks[],
    users: options.users ?? {},
    mailboxes: options.mailboxes ?? {},
    locks: new Map(),
    features,
    assignedUids: new WeakMap(),
    secureContext:
      options.tls === undefined ? undefined : tls.createSecureContext({ key: options.tls.key, cert: options.tls.cert }),
    log: options.log,
    recordError(err, where, conn) {
      const error = err instanceof Error ? err : new Error(String(err));
      errors.push(error);
      conn.log(`unexpected error in ${where}: ${error.stack ?? error.message}`);
      if (!conn.isClosed) conn.destroy();
    },
  };

  const startSession = (socket: net.Socket, raw: net.Socket): void => {
    const conn = new Connection(nextId++, socket, raw, shared);
    const session = new Session(conn, shared);
    sessions.push(session);
    openConnections.add(conn);
    conn.log(`connected from ${conn.remoteAddress}${conn.tls ? ' (TLS)' : ''}`);
    const done = session
      .run()
      .catch((err: unknown) => shared.recordError(err, 'session', conn))
      .finally(() => {
        openConnections.delete(conn);
        running.delete(done);
        conn.log('closed');
      });
    session.finished = done;
    running.add(done);
  };

  const trackRaw = (raw: net.Socket): void => {
    accepted++;
    rawSockets.add(raw);
    // Small status lines go out at once (no Nagle delay), so scripted byte counts are exact
    // even when the next step is a reset.
    raw.setNoDelay(true);
    raw.on('error', () => undefined); // reported by the connection; never crash the test run
    raw.once('close', () => rawSockets.delete(raw));
  };

  let server: net.Server;
  if (implicitTls && options.tls !== undefined) {
    const tlsServer = tls.createServer({ key: options.tls.key, cert: options.tls.cert });
    tlsServer.on('secureConnection', (socket: tls.TLSSocket) => {
      const raw = (socket as unknown as { _parent?: net.Socket })._parent ?? socket;
      startSession(socket, raw);
    });
    tlsServer.on('tlsClientError', (err) => options.log?.(`TLS handshake failed: ${err.message}`));
    server = tlsServer;
  } else {
    server = net.createServer((socket) => startSession(socket, socket));
  }
  server.on('connection', trackRaw);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port: options.port ?? 0 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('unexpected server address');
  const port = address.port;
  options.log?.(`listening on ${host}:${port}${implicitTls ? ' (implicit TLS)' : ''}`);

  const whenIdle = async (): Promise<void> => {
    while (running.size > 0) await Promise.all([...running]);
  };

  return {
    host,
    port,
    implicitTls,
    url(user?: string, password?: string): string {
      const scheme = implicitTls ? 'pop3s' : 'pop3';
      const hostPart = net.isIPv6(host) ? `[${host}]` : host;
      const userInfo =
        user === undefined
          ? ''
          : `${encodeURIComponent(user)}${password === undefined ? '' : `:${encodeURIComponent(password)}`}@`;
      return `${scheme}://${userInfo}${hostPart}:${port}`;
    },
    get connections() {
      return accepted;
    },
    get activeConnections() {
      return openConnections.size;
    },
    sessions,
    mailboxes: shared.mailboxes,
    errors,
    whenIdle,
    async close(): Promise<void> {
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const conn of openConnections) conn.destroy();
      for (const raw of rawSockets) raw.destroy();
      await stopped;
      await whenIdle();
      if (errors.length > 0) {
        throw new AggregateError(errors, `the POP3 test server saw ${errors.length} unexpected error(s)`);
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Helpers for common misbehaviours
// ---------------------------------------------------------------------------------------------

/**
 * Which command a helper reacts to: a verb (`'RETR'` matches `RETR 3`), a whole command when it
 * contains a space (`'RETR 3'`), a pattern tested on the raw line, or a predicate.
 */
export type CommandMatcher = string | RegExp | ((line: string, state: SessionState) => boolean);

/** What the server does after a scripted answer. */
export type AfterAnswer = 'continue' | 'end' | 'destroy' | 'reset' | 'silence';

export function matchesCommand(matcher: CommandMatcher, line: string, state: SessionState): boolean {
  if (typeof matcher === 'function') return matcher(line, state);
  if (matcher instanceof RegExp) return matcher.test(line);
  const want = matcher.trim().replace(/ +/g, ' ').toUpperCase();
  const got = line.trim().replace(/ +/g, ' ').toUpperCase();
  return want.includes(' ') ? got === want : splitCommand(got).verb === want;
}

async function applyAfter(conn: ScriptedConnection, after: AfterAnswer): Promise<void> {
  switch (after) {
    case 'continue':
      return;
    case 'end':
      return conn.end();
    case 'destroy':
      return conn.destroy();
    case 'reset':
      return conn.reset();
    case 'silence':
      return conn.silence();
  }
}

/** A counter for `times` options: true while the helper should still act. */
function budget(times: number | undefined): () => boolean {
  let left = times ?? Number.POSITIVE_INFINITY;
  return () => {
    if (left <= 0) return false;
    left -= 1;
    return true;
  };
}

export type ScriptedResponse =
  | string
  | readonly string[]
  | Buffer
  | ((line: string, state: SessionState) => string | readonly string[] | Buffer);

export interface RespondWithOptions {
  /** @default 'continue' */
  then?: AfterAnswer;
  /** Act on the first `times` matching commands only. @default every one */
  times?: number;
}

/**
 * Answers matching commands with exactly the given text: a string is one line (CRLF added), an
 * array is several lines sent as they are (no dot-stuffing, no terminator added), a Buffer is
 * raw bytes. E.g. `respondWith('STAT', '+OK ' + 'x'.repeat(10_000))`,
 * `respondWith('PASS', '-ERR [SYS/TEMP] try later', { then: 'end' })`.
 */
export function respondWith(
  command: CommandMatcher,
  response: ScriptedResponse,
  options: RespondWithOptions = {},
): Pop3ServerHooks {
  const take = budget(options.times);
  return {
    async onCommand(conn, line, state) {
      if (!matchesCommand(command, line, state) || !take()) return false;
      const answer = typeof response === 'function' ? response(line, state) : response;
      if (Buffer.isBuffer(answer)) await conn.write(answer);
      else if (typeof answer === 'string') await conn.writeLine(answer);
      else for (const l of answer) await conn.writeLine(l);
      await applyAfter(conn, options.then ?? 'continue');
      return true;
    },
  };
}

/** After the matching command arrives, the server never answers again (proves client timeouts). */
export function silentAfter(command: CommandMatcher): Pop3ServerHooks {
  return {
    async onCommand(conn, line, state) {
      if (!matchesCommand(command, line, state)) return false;
      await conn.silence();
      return true;
    },
  };
}

/** Accepts the connection and sends nothing, not even a greeting. */
export function silentGreeting(): Pop3ServerHooks {
  return {
    async onConnect(conn) {
      await conn.silence();
      return true;
    },
  };
}

/**
 * Sends `greeting` (a line, CRLF added; or raw bytes) instead of the normal one, then ends,
 * destroys, resets or falls silent. For a different greeting followed by a normal session,
 * use the `greeting` option instead.
 */
export function greetWith(greeting: string | Buffer, then: Exclude<AfterAnswer, 'continue'> = 'end'): Pop3ServerHooks {
  return {
    async onConnect(conn) {
      if (Buffer.isBuffer(greeting)) await conn.write(greeting);
      else await conn.writeLine(greeting);
      await applyAfter(conn, then);
      return true;
    },
  };
}

export interface PartialBodyOptions {
  /** @default 'RETR' */
  command?: 'RETR' | 'TOP';
  /** Only for this message number. @default any */
  message?: number;
  /** Act on the first `times` matching commands only. @default every one */
  times?: number;
}

/** RETR/TOP of an existing message: the status line and the full wire form of the answer. */
function bodyFor(line: string, state: SessionState, opts: PartialBodyOptions): { status: string; wire: Buffer } | undefined {
  const { verb, args } = splitCommand(line);
  if (verb !== (opts.command ?? 'RETR') || state.phase !== 'TRANSACTION') return undefined;
  const m = state.message(args[0]);
  if (m === undefined || (opts.message !== undefined && m.number !== opts.message)) return undefined;
  if (verb === 'TOP') {
    const n = Number(args[1]);
    if (!Number.isInteger(n) || n < 0) return undefined;
    return { status: '+OK', wire: encodeMultilineBody(extractTop(m.bytes, n)) };
  }
  return { status: `+OK ${m.size} octets`, wire: encodeMultilineBody(m.bytes) };
}

function partialBody(
  opts: PartialBodyOptions,
  cut: (wire: Buffer) => Buffer,
  then: Exclude<AfterAnswer, 'continue'>,
): Pop3ServerHooks {
  const take = budget(opts.times);
  return {
    async onCommand(conn, line, state) {
      const body = bodyFor(line, state, opts);
      if (body === undefined || !take()) return false;
      await conn.writeLine(body.status);
      const part = cut(body.wire);
      if (part.length > 0) await conn.write(part);
      await applyAfter(conn, then);
      return true;
    },
  };
}

/**
 * RETR (or TOP) sends its status line and the first `afterBytes` bytes of the body as they go on
 * the wire (dot-stuffed), then the connection drops.
 */
export function disconnectMidBody(
  afterBytes: number,
  options: PartialBodyOptions & { how?: 'end' | 'destroy' | 'reset' } = {},
): Pop3ServerHooks {
  return partialBody(options, (wire) => wire.subarray(0, afterBytes), options.how ?? 'destroy');
}

/** Like `disconnectMidBody`, but the connection then stays open and silent (body idle timeout). */
export function stallMidBody(afterBytes: number, options: PartialBodyOptions = {}): Pop3ServerHooks {
  return partialBody(options, (wire) => wire.subarray(0, afterBytes), 'silence');
}

/** RETR (or TOP) sends the whole body but never the terminating `.` line, then ends or stalls. */
export function bodyWithoutTerminator(
  options: PartialBodyOptions & { then?: 'end' | 'destroy' | 'silence' } = {},
): Pop3ServerHooks {
  return partialBody(options, (wire) => wire.subarray(0, wire.length - TERMINATOR.length), options.then ?? 'end');
}

/** Extended response codes of RFC 2449 and RFC 3206. */
export type LoginResponseCode = 'IN-USE' | 'LOGIN-DELAY' | 'SYS/TEMP' | 'SYS/PERM' | 'AUTH';

const RESPONSE_CODE_TEXT: Record<LoginResponseCode, string> = {
  'IN-USE': 'Mailbox is locked by another session',
  'LOGIN-DELAY': 'Logged in too recently',
  'SYS/TEMP': 'Temporary system failure, try again later',
  'SYS/PERM': 'Permanent system failure',
  AUTH: 'Authentication failed',
};

export interface RejectLoginOptions {
  /** @default a text that fits the code */
  text?: string;
  /** Reject the first `times` logins with good credentials, then let them through. @default all */
  times?: number;
  /** @default 'continue' (the session stays in AUTHORIZATION) */
  then?: AfterAnswer;
  /** Only for this user. @default any */
  user?: string;
}

/**
 * Answers a login with good credentials (USER/PASS, APOP or AUTH) with `-ERR [code] text`,
 * e.g. `rejectLogin('IN-USE', { times: 1 })`. `code: null` sends `-ERR text` without a code.
 */
export function rejectLogin(code: LoginResponseCode | null, options: RejectLoginOptions = {}): Pop3ServerHooks {
  const take = budget(options.times);
  const text = options.text ?? (code === null ? 'Login failed' : RESPONSE_CODE_TEXT[code]);
  const line = code === null ? `-ERR ${text}` : `-ERR [${code}] ${text}`;
  return {
    async onLogin(conn, user) {
      if ((options.user !== undefined && user !== options.user) || !take()) return undefined;
      await conn.writeLine(line);
      await applyAfter(conn, options.then ?? 'continue');
      return true;
    },
  };
}

/** What outlook.office365.com answers to CAPA. */
export const MICROSOFT_CAPABILITIES: readonly string[] = ['TOP', 'UIDL', 'SASL PLAIN XOAUTH2', 'USER'];

export interface MicrosoftXoauth2Options {
  /**
   * What `AUTH XOAUTH2 <initial-response>` gets. Exchange Online answers it with a protocol
   * error and closes the connection; clients must send the payload on its own line.
   * @default 'protocol-error'
   */
  initialResponse?: 'protocol-error' | 'accept';
  /** The continuation line. Exchange sends a bare `+` without the space RFC 5034 asks for. @default '+' */
  challenge?: string;
}

/**
 * XOAUTH2 the way Exchange Online does it: `AUTH XOAUTH2`, a bare `+`, the base64 payload on
 * the next line, then `+OK User successfully authenticated.` or a plain `-ERR` (no error
 * challenge, no [AUTH] code). Combine with `capabilities: MICROSOFT_CAPABILITIES`.
 */
export function microsoftXoauth2(options: MicrosoftXoauth2Options = {}): Pop3ServerHooks {
  return {
    async onAuth(conn, mechanism, initialResponse) {
      if (mechanism !== 'XOAUTH2') return undefined;
      let payload = initialResponse;
      if (payload !== undefined && (options.initialResponse ?? 'protocol-error') === 'protocol-error') {
        await conn.writeLine('-ERR Protocol error. Connection is closed. 10');
        conn.end();
        return true;
      }
      if (payload === undefined) {
        await conn.writeLine(options.challenge ?? '+');
        const line = await conn.readLine();
        if (line === null) return true;
        payload = line;
      }
      const decoded = decodeBase64(payload);
      const parsed = decoded === undefined ? undefined : parseXoauth2(decoded);
      if (parsed !== undefined && conn.checkOAuthToken(parsed.user, parsed.token)) {
        return { user: parsed.user, response: '+OK User successfully authenticated.' };
      }
      await conn.writeLine('-ERR Authentication failure: unknown user name or bad password.');
      return true;
    },
  };
}
