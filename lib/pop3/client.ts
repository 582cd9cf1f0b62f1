/**
 * The POP3 client: one socket, one queue of commands, pipelined when the server allows it.
 *
 * Life cycle: `Pop3Client.connect()` dials (implicit TLS, STLS or, only when asked for by name,
 * plaintext), reads the greeting and CAPA and upgrades with STLS; `login()` authenticates; then
 * the transaction commands; `quit()` commits deletions. Any failure destroys the socket and
 * rejects everything pending with a `Pop3Error`; promises the caller did not await never become
 * unhandled rejections.
 */
import net from 'node:net';
import { Readable } from 'node:stream';
import tls from 'node:tls';
import { CommandArgumentError, commands, saslResponseLine, type Command } from './command.js';
import { errorFromStatus, Pop3Error, type Pop3ErrorCode, type Pop3Phase } from './errors.js';
import { LineTooLongError, ResponseFramer } from './framer.js';
import {
  AUTH_TIMEOUT_MS,
  BODY_HIGH_WATER_MARK_BYTES,
  BODY_IDLE_TIMEOUT_MS,
  COMMAND_TIMEOUT_MS,
  CONNECT_TIMEOUT_MS,
  DEFAULT_PIPELINE_WINDOW,
  GREETING_TIMEOUT_MS,
  COLLECT_SLACK_BYTES,
  limitExceeded,
  MAX_CHALLENGE_LINE_BYTES,
  MAX_LISTING_BYTES,
  MAX_SASL_CHALLENGES,
  MAX_STATUS_LINE_BYTES,
  MAX_UIDL_BYTES,
  QUIT_TIMEOUT_MS,
  TLS_UPGRADE_TIMEOUT_MS,
} from './limits.js';
import {
  apopTimestamp,
  describeLine,
  MalformedResponseError,
  NO_CAPABILITIES,
  parseCapabilities,
  parseListLine,
  parseStat,
  parseStatusLine,
  parseUidlLine,
  checkListingNumbers,
  splitListing,
  type Capabilities,
  type ListEntry,
  type StatResult,
  type UidlEntry,
} from './response.js';
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

/** How the connection is protected. Plaintext has a name that says what it is. */
export type TlsMode = 'implicit' | 'starttls' | 'insecure-plaintext';

export interface Pop3TlsOptions {
  /** Extra CA certificates (PEM) to trust, e.g. a private CA. Default: Node's bundled roots. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Name to verify the certificate against and to send as SNI. Default: the host (unless an IP). */
  servername?: string;
  /** Default 'TLSv1.2'. */
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  /**
   * Certificate verification. On by default; turning it off is for debugging only and is
   * reported by `tlsInfo().verified`.
   */
  rejectUnauthorized?: boolean;
}

export interface Pop3Timeouts {
  connectMs: number;
  greetingMs: number;
  commandMs: number;
  authMs: number;
  bodyIdleMs: number;
  tlsUpgradeMs: number;
  quitMs: number;
}

export const DEFAULT_TIMEOUTS: Pop3Timeouts = {
  connectMs: CONNECT_TIMEOUT_MS,
  greetingMs: GREETING_TIMEOUT_MS,
  commandMs: COMMAND_TIMEOUT_MS,
  authMs: AUTH_TIMEOUT_MS,
  bodyIdleMs: BODY_IDLE_TIMEOUT_MS,
  tlsUpgradeMs: TLS_UPGRADE_TIMEOUT_MS,
  quitMs: QUIT_TIMEOUT_MS,
};

/** A line of the protocol exchange for tracing; secrets are already replaced by `****`. */
export interface Pop3TraceEvent {
  direction: 'client' | 'server' | 'info';
  line: string;
}

export interface Pop3ClientOptions {
  host: string;
  /** Default 995 for implicit TLS, 110 otherwise. */
  port?: number;
  /** Default 'implicit'. */
  tls?: TlsMode;
  tlsOptions?: Pop3TlsOptions;
  timeouts?: Partial<Pop3Timeouts>;
  /**
   * Commands in flight when the server advertises PIPELINING (RFC 2449). 1 means lock-step.
   * Default 512 (DEFAULT_PIPELINE_WINDOW).
   */
  pipelineWindow?: number;
  /** Use PIPELINING when advertised (default true). False forces lock-step. */
  pipelining?: boolean;
  /** Longest status line accepted. */
  maxStatusLineBytes?: number;
  /** Largest collected listing (CAPA, LIST, UIDL). */
  maxListingBytes?: number;
  /** Bytes a message stream buffers before the socket is paused. */
  bodyHighWaterMark?: number;
  /** Aborting destroys the connection and rejects everything pending with ABORTED. */
  signal?: AbortSignal;
  /** Protocol trace: commands and status lines, never bodies, never secrets. */
  trace?: (event: Pop3TraceEvent) => void;
}

export interface LoginOptions {
  /** A specific method, or 'auto' (default): the strongest both sides support. */
  mechanism?: AuthMethod | 'auto';
}

export interface TlsInfo {
  protocol: string | null;
  cipher: string;
  authorized: boolean;
  authorizationError?: string;
  peerSubject?: string;
  peerIssuer?: string;
  validFrom?: string;
  validTo?: string;
  fingerprint256?: string;
}

/** A message (or TOP excerpt) as it streams from the server: exactly the served bytes. */
export interface MessageStream {
  number: number;
  /** The text after +OK (often the size). */
  statusText: string;
  /** The bytes; backpressure applies to the socket. Consume or destroy it. */
  stream: Readable;
  /**
   * Set when the message was received whole (`RetrieveOptions.collectUpTo`): its bytes, in one
   * buffer (more when the server sent more than its listing said). `stream` then reads them
   * (it is made on first access).
   */
  body?: readonly Buffer[];
}

export interface RetrieveItem {
  number: number;
  /** Size from LIST, used to bound the bytes in flight. */
  size?: number;
}

export interface RetrieveOptions {
  /** Commands ahead of the consumer (default: the pipeline window). */
  lookahead?: number;
  /** Stop issuing RETRs beyond this many bytes in flight (by LIST size). Default 8 MiB. */
  maxBytesAhead?: number;
  /** TOP n lines instead of RETR. */
  topLines?: number;
  /**
   * Receive messages whose size (`RetrieveItem.size`, from LIST) is at most this many bytes
   * whole before yielding them, as `body` (copied into one buffer of the listed size as they
   * arrive), without a stream for each: for a mailbox of small messages the streams were most
   * of the client's work. Bytes held this way are bounded like streamed ones (by the sizes in
   * flight): a message that runs past its listed size by more than COLLECT_SLACK_BYTES is
   * yielded as a stream after all.
   */
  collectUpTo?: number;
}

type ResponseHandler = {
  onOk(text: string): void;
  onErr(error: Pop3Error): void;
};

interface Pending {
  command: Command | undefined; // undefined for the greeting
  phase: Pop3Phase;
  timeoutMs: number;
  sent: boolean;
  /**
   * When the wait for this command's status line began: when it was sent, or when the response
   * before it in the pipeline was complete. `timeoutMs` runs from here to the end of the status
   * line (for AUTH: to the end of the exchange), however slowly its bytes arrive.
   */
  waitingSince: number;
  /** RETR/TOP whose consumer went away: the body is read and dropped. */
  discard: boolean;
  handler: ResponseHandler;
  /** For 'listing': collected chunks. */
  chunks?: Buffer[];
  bytes?: number;
  resolveListing?: (data: Buffer) => void;
  /** For 'stream': the stream receiving the body. */
  stream?: BodyStream;
  /** For 'stream': the message number. */
  messageNumber?: number;
  /** For 'stream': receive the body whole into a buffer this large (its listed size)... */
  collectSize?: number;
  /** ... unless it runs past this many bytes (see RetrieveOptions.collectUpTo). */
  collectLimit?: number;
  /**
   * For 'stream', while the body is being received whole: copied into `buffer` (one copy, so
   * the socket's buffers are not held), and into `more` past its listed size.
   */
  collected?: { statusText: string; buffer: Buffer; used: number; more: Buffer[] | undefined; bytes: number };
  /** For 'stream': hands the message to the caller (the body as a stream or whole). */
  deliver?: (message: MessageStream) => void;
  /** For 'sasl'. */
  sasl?: SaslSession;
  /** Set when the client cancelled the exchange; reported instead of the server's -ERR. */
  saslError?: Pop3Error;
  /** For 'sasl': challenges received so far (at most MAX_SASL_CHALLENGES). */
  challenges?: number;
}

type State = 'new' | 'connecting' | 'authorization' | 'transaction' | 'closing' | 'closed';

const noop = (): void => {};

function collectedChunks(c: { buffer: Buffer; used: number; more: Buffer[] | undefined }): Buffer[] {
  const first = c.buffer.subarray(0, c.used);
  return c.more === undefined ? [first] : [first, ...c.more];
}

function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(noop);
  return promise;
}

class BodyStream extends Readable {
  /** The command whose body this is, while it is still being received. */
  pending: Pending | undefined;
  constructor(
    private readonly owner: Pop3Client,
    highWaterMark: number,
  ) {
    super({ highWaterMark });
  }
  override _read(): void {
    this.owner.streamWantsData(this);
  }
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.owner.streamDestroyed(this);
    callback(error);
  }
}

/** A message received whole: its chunks, and a stream over them for callers that want one. */
class WholeMessage implements MessageStream {
  private readable: Readable | undefined;
  constructor(
    readonly number: number,
    readonly statusText: string,
    readonly body: readonly Buffer[],
  ) {}
  get stream(): Readable {
    this.readable ??= Readable.from(this.body, { objectMode: false });
    return this.readable;
  }
}

export class Pop3Client {
  readonly host: string;
  readonly port: number;
  readonly tlsMode: TlsMode;
  private readonly options: Pop3ClientOptions;
  private readonly timeouts: Pop3Timeouts;
  private readonly framer: ResponseFramer;
  private socket: net.Socket | tls.TLSSocket | undefined;
  private state: State = 'new';
  private failure: Pop3Error | undefined;
  private readonly inflight: Pending[] = [];
  private readonly queue: Pending[] = [];
  private outgoing: string[] = [];
  private flushScheduled = false;
  /**
   * When the server last sent something (or we last wrote, or stopped waiting): for the
   * inactivity timeout in the middle of a body or listing. Status lines have their own
   * deadline (`Pending.waitingSince`).
   */
  private lastActivity = 0;
  private watchdog: NodeJS.Timeout | undefined;
  private readonly fullStreams = new Set<BodyStream>();
  private pipeliningActive = false;
  private greetingText = '';
  private caps: Capabilities = NO_CAPABILITIES;
  private capaAnswered = false;
  private secure = false;
  private abortListener: (() => void) | undefined;
  private authMethodUsed: AuthMethod | undefined;
  private utf8Enabled = false;

  private constructor(options: Pop3ClientOptions) {
    this.options = options;
    this.host = options.host;
    this.tlsMode = options.tls ?? 'implicit';
    this.port = options.port ?? (this.tlsMode === 'implicit' ? 995 : 110);
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    this.framer = new ResponseFramer(
      {
        onLine: (line) => this.onLine(line),
        onBodyData: (data) => this.onBodyData(data),
        onBodyEnd: () => this.onBodyEnd(),
      },
      options.maxStatusLineBytes ?? MAX_STATUS_LINE_BYTES,
    );
  }

  /** Connect, read the greeting and capabilities, and upgrade with STLS when asked to. */
  static async connect(options: Pop3ClientOptions): Promise<Pop3Client> {
    const client = new Pop3Client(options);
    try {
      await client.open();
    } catch (error) {
      client.fail(toPop3Error(error, 'connect'));
      throw client.failure ?? error;
    }
    return client;
  }

  /** The greeting's text after +OK. */
  get greeting(): string {
    return this.greetingText;
  }

  get capabilities(): Capabilities {
    return this.caps;
  }

  /** Whether pipelining is in use (advertised, allowed, and window > 1). */
  get pipelining(): boolean {
    return this.pipeliningActive;
  }

  /** The method `login()` used. */
  /** True once the server accepted UTF8 (RFC 6856): it serves messages as stored. */
  get utf8(): boolean {
    return this.utf8Enabled;
  }

  get authMethod(): AuthMethod | undefined {
    return this.authMethodUsed;
  }

  get isClosed(): boolean {
    return this.state === 'closed';
  }

  /** Details of the TLS session, or undefined on a plaintext connection. */
  tlsInfo(): TlsInfo | undefined {
    const s = this.socket;
    if (!(s instanceof tls.TLSSocket)) return undefined;
    const cert = s.getPeerCertificate();
    const name = (o: Record<string, unknown> | undefined): string | undefined =>
      o === undefined
        ? undefined
        : Object.entries(o)
            .map(([k, v]) => `${k}=${String(v)}`)
            .join(', ');
    const info: TlsInfo = {
      protocol: s.getProtocol(),
      cipher: s.getCipher().name,
      authorized: s.authorized,
    };
    if (s.authorizationError !== undefined && s.authorizationError !== null) {
      info.authorizationError = String(s.authorizationError);
    }
    if (cert !== undefined && Object.keys(cert).length > 0) {
      info.peerSubject = name(cert.subject as unknown as Record<string, unknown>);
      info.peerIssuer = name(cert.issuer as unknown as Record<string, unknown>);
      info.validFrom = cert.valid_from;
      info.validTo = cert.valid_to;
      info.fingerprint256 = cert.fingerprint256;
    }
    return info;
  }

  // ---------------------------------------------------------------------------------------
  // Connection set-up

  private async open(): Promise<void> {
    const signal = this.options.signal;
    if (signal?.aborted) throw new Pop3Error('ABORTED', 'aborted before connecting', { phase: 'connect' });
    if (signal !== undefined) {
      this.abortListener = () =>
        this.fail(new Pop3Error('ABORTED', 'aborted by the caller', { phase: this.currentPhase() }));
      signal.addEventListener('abort', this.abortListener, { once: true });
    }
    this.state = 'connecting';
    const socket = await this.dial();
    this.attach(socket);
    this.secure = this.tlsMode === 'implicit';

    const greeting = await this.expectGreeting();
    this.greetingText = greeting;
    await this.loadCapabilities();

    if (this.tlsMode === 'starttls') {
      if (!this.caps.has('STLS')) {
        throw new Pop3Error(
          'STLS_UNAVAILABLE',
          `${this.host}:${this.port} does not offer STLS; refusing to continue without TLS (use implicit TLS or, knowingly, insecure-plaintext)`,
          { phase: 'stls' },
        );
      }
      await this.startTls();
      await this.loadCapabilities();
    }
    if (this.caps.has('UTF8')) await this.enableUtf8();
    this.state = 'authorization';
  }

  /**
   * RFC 6856: a server that advertises UTF8 may otherwise serve messages with 8-bit headers
   * altered (Courier serves a "Cannot display Unicode content" placeholder instead). A refusal
   * leaves the session as it was.
   */
  private async enableUtf8(): Promise<void> {
    try {
      await this.single(commands.utf8(), 'capa', this.timeouts.commandMs);
      this.utf8Enabled = true;
    } catch (error) {
      if (!(error instanceof Pop3Error && error.code === 'COMMAND_FAILED')) throw error;
      this.traceInfo(`server refused UTF8: ${error.serverText ?? ''}`);
    }
  }

  private dial(): Promise<net.Socket | tls.TLSSocket> {
    const { host, port } = this;
    const implicit = this.tlsMode === 'implicit';
    return new Promise((resolve, reject) => {
      let settled = false;
      const socket = implicit
        ? tls.connect({ host, port, ...this.tlsConnectOptions() })
        : net.connect({ host, port });
      const done = (error?: Pop3Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.removeListener('error', onError);
        socket.removeListener('close', onClose);
        socket.removeListener(implicit ? 'secureConnect' : 'connect', onConnect);
        if (error !== undefined) {
          socket.destroy();
          reject(error);
        } else {
          resolve(socket);
        }
      };
      const onError = (err: Error): void => done(mapSocketError(err, implicit ? 'tls' : 'connect', host, port));
      const onConnect = (): void => done();
      // fail() (an abort) destroys the socket without an error: it emits 'close' only.
      const onClose = (): void =>
        done(
          this.failure ??
            new Pop3Error('CONNECTION_CLOSED', `connection to ${host}:${port} closed while connecting`, { phase: 'connect' }),
        );
      const timer = setTimeout(
        () =>
          done(
            new Pop3Error('CONNECT_TIMEOUT', `connecting to ${host}:${port} took longer than ${this.timeouts.connectMs} ms`, {
              phase: 'connect',
            }),
          ),
        this.timeouts.connectMs,
      );
      socket.once('error', onError);
      socket.once('close', onClose);
      socket.once(implicit ? 'secureConnect' : 'connect', onConnect);
      this.socket = socket; // so fail() during connect destroys it
    });
  }

  private tlsConnectOptions(): tls.ConnectionOptions {
    const t = this.options.tlsOptions ?? {};
    const servername = t.servername ?? (net.isIP(this.host) === 0 ? this.host : undefined);
    const opts: tls.ConnectionOptions = {
      minVersion: t.minVersion ?? 'TLSv1.2',
      rejectUnauthorized: t.rejectUnauthorized ?? true,
    };
    if (servername !== undefined) opts.servername = servername;
    if (t.ca !== undefined) opts.ca = t.ca;
    return opts;
  }

  private attach(socket: net.Socket): void {
    this.socket = socket;
    this.lastActivity = performance.now();
    if (this.watchdog === undefined) {
      const shortest = Math.min(...Object.values(this.timeouts).filter((v) => v > 0));
      this.watchdog = setInterval(this.checkTimeout, Math.min(1000, Math.max(5, Math.floor(shortest / 5))));
      this.watchdog.unref();
    }
    socket.setNoDelay(true);
    socket.on('data', this.onData);
    socket.on('error', this.onSocketError);
    socket.on('close', this.onSocketClose);
  }

  private detach(socket: net.Socket): void {
    socket.removeListener('data', this.onData);
    socket.removeListener('error', this.onSocketError);
    socket.removeListener('close', this.onSocketClose);
  }

  private expectGreeting(): Promise<string> {
    return new Promise((resolve, reject) => {
      this.inflight.push({
        command: undefined,
        phase: 'greeting',
        timeoutMs: this.timeouts.greetingMs,
        sent: true,
        waitingSince: performance.now(),
        discard: false,
        handler: { onOk: resolve, onErr: reject },
      });
    });
  }

  private async loadCapabilities(): Promise<void> {
    try {
      const data = await this.listing(commands.capa(), 'capa');
      this.caps = parseCapabilities(splitListing(data));
      this.capaAnswered = true;
    } catch (error) {
      if (error instanceof Pop3Error && error.code === 'COMMAND_FAILED') {
        this.caps = NO_CAPABILITIES; // RFC 1939-only server
        this.capaAnswered = false;
        // Nothing learned earlier (e.g. a plaintext CAPA before STLS) may keep pipelining on.
        this.pipeliningActive = false;
        return;
      }
      throw error;
    }
    this.pipeliningActive =
      (this.options.pipelining ?? true) && this.caps.has('PIPELINING') && (this.options.pipelineWindow ?? DEFAULT_PIPELINE_WINDOW) > 1;
  }

  /** Re-read CAPA (capabilities may change after login, RFC 2449). */
  async refreshCapabilities(): Promise<Capabilities> {
    await this.loadCapabilities();
    return this.caps;
  }

  private async startTls(): Promise<void> {
    await this.single(commands.stls(), 'stls', this.timeouts.commandMs).catch((error: unknown) => {
      if (error instanceof Pop3Error && error.code === 'COMMAND_FAILED') {
        throw new Pop3Error('STLS_UNAVAILABLE', `server refused STLS: -ERR ${error.serverText ?? ''}`, {
          phase: 'stls',
          cause: error,
        });
      }
      throw error;
    });
    // Anything the server sent after +OK and before the handshake would be injected into the
    // TLS session's stream (CVE-2011-0411 style): refuse it.
    if (this.framer.bufferedBytes > 0) {
      throw new Pop3Error('PROTOCOL_ERROR', 'server sent data after +OK to STLS, before the TLS handshake', {
        phase: 'stls',
      });
    }
    const plain = this.socket!;
    this.detach(plain);
    const upgraded = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const secureSocket = tls.connect({ socket: plain, ...this.tlsConnectOptions() });
      const timer = setTimeout(() => {
        secureSocket.destroy();
        reject(
          new Pop3Error('CONNECT_TIMEOUT', `STLS handshake took longer than ${this.timeouts.tlsUpgradeMs} ms`, {
            phase: 'stls',
          }),
        );
      }, this.timeouts.tlsUpgradeMs);
      // fail() (an abort) destroys the plain socket without an error: the TLS socket then
      // emits 'close' only. Settle on it rather than waiting for the timer.
      const onClose = (): void => {
        clearTimeout(timer);
        reject(
          this.failure ??
            new Pop3Error('CONNECTION_CLOSED', `${this.host}:${this.port} closed the connection during the STLS handshake`, {
              phase: 'stls',
            }),
        );
      };
      secureSocket.once('secureConnect', () => {
        clearTimeout(timer);
        secureSocket.removeAllListeners('error');
        secureSocket.removeListener('close', onClose);
        resolve(secureSocket);
      });
      secureSocket.once('error', (err) => {
        clearTimeout(timer);
        secureSocket.destroy();
        reject(mapSocketError(err, 'stls', this.host, this.port));
      });
      secureSocket.once('close', onClose);
      plain.once('close', () => this.socket === plain && secureSocket.destroy());
    });
    this.attach(upgraded);
    this.secure = true;
    // What the server said before TLS was open to tampering: only the CAPA that follows counts.
    this.caps = NO_CAPABILITIES;
    this.capaAnswered = false;
    this.pipeliningActive = false;
    this.traceInfo(`TLS established: ${upgraded.getProtocol() ?? '?'}`);
  }

  // ---------------------------------------------------------------------------------------
  // Authentication

  /** Log in with a password or an OAuth2 access token. */
  async login(credentials: Pop3Credentials, options: LoginOptions = {}): Promise<void> {
    this.assertState('authorization', 'login');
    if (!this.secure && this.tlsMode !== 'insecure-plaintext') {
      throw new Pop3Error('STLS_UNAVAILABLE', 'refusing to authenticate on a connection that is not protected by TLS', {
        phase: 'auth',
      });
    }
    const timestamp = apopTimestamp(this.greetingText);
    const offer = {
      sasl: this.caps.sasl,
      apop: timestamp !== undefined,
      user: this.caps.has('USER'),
      capaKnown: this.capaAnswered,
      tls: this.secure,
    };
    const requested = options.mechanism ?? 'auto';
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
      if (this.capaAnswered && method !== 'USER' && method !== 'APOP' && offer.sasl.length > 0 && !isOffered(method, offer)) {
        throw new Pop3Error('MECHANISM_UNAVAILABLE', `server does not offer ${method} (offers ${offer.sasl.join(' ')})`, {
          phase: 'auth',
        });
      }
      if (method === 'APOP' && timestamp === undefined) {
        throw new Pop3Error('MECHANISM_UNAVAILABLE', 'server greeting has no APOP timestamp', { phase: 'auth' });
      }
    }
    this.authMethodUsed = method;

    try {
      if (method === 'USER') {
        if (isTokenCredentials(credentials)) throw new SaslError('USER/PASS needs a password');
        await this.single(commands.user(credentials.user), 'auth', this.timeouts.authMs);
        await this.single(commands.pass(credentials.password), 'auth', this.timeouts.authMs);
      } else if (method === 'APOP') {
        if (isTokenCredentials(credentials)) throw new SaslError('APOP needs a password');
        await this.single(
          commands.apop(credentials.user, apopDigest(timestamp!, credentials.password)),
          'auth',
          this.timeouts.authMs,
        );
      } else {
        const session = createSaslSession(method, credentials, { host: this.host, port: this.port });
        await this.runSasl(session);
      }
    } catch (error) {
      if (error instanceof Pop3Error) throw error;
      // Credentials the client cannot send (CR/LF in a user name, characters SASLprep refuses)
      // or any other client-side failure: a typed error, and the session is not used further.
      const secret = isTokenCredentials(credentials) ? credentials.accessToken : credentials.password;
      throw this.failWith(authFailure(error, secret));
    }
    this.state = 'transaction';
    this.traceInfo(`authenticated with ${method}`);
  }

  private runSasl(session: SaslSession): Promise<void> {
    const initial = session.initialResponse();
    // RFC 5034: an empty initial response is sent as "=".
    const command = commands.auth(session.mechanism, initial === '' ? '=' : initial);
    return new Promise<void>((resolve, reject) => {
      const pending: Pending = {
        command,
        phase: 'auth',
        timeoutMs: this.timeouts.authMs,
        sent: false,
        waitingSince: 0,
        discard: false,
        sasl: session,
        handler: {
          onOk: (text) => {
            try {
              if (pending.saslError !== undefined) throw pending.saslError;
              session.verifyCompletion?.(text);
              resolve();
            } catch (error) {
              // The server let us in but could not prove itself (or we had cancelled): do not
              // use this session.
              reject(this.failWith(toPop3Error(error, 'auth')));
            }
          },
          onErr: (error) => {
            const detail = session.failureDetail?.();
            if (detail !== undefined && error.code === 'AUTH_FAILED') {
              reject(
                new Pop3Error('AUTH_FAILED', `${error.message} (${detail})`, {
                  phase: 'auth',
                  command: error.command,
                  serverText: error.serverText,
                  responseCode: error.responseCode,
                }),
              );
            } else {
              reject(error);
            }
          },
        },
      };
      this.enqueue(pending);
    });
  }

  private async answerChallenge(pending: Pending, payload: string): Promise<void> {
    let answer: string;
    try {
      answer = await pending.sasl!.respond(payload);
    } catch (error) {
      // Cancel the exchange (RFC 5034 "*"); the server answers -ERR, and the caller learns
      // from this error why the client gave up.
      const reason = error instanceof Error ? error.message : String(error);
      pending.saslError = new Pop3Error('AUTH_FAILED', reason, { phase: 'auth', cause: error });
      this.writeLine(saslResponseLine('*'));
      return;
    }
    this.writeLine(saslResponseLine(answer));
  }

  // ---------------------------------------------------------------------------------------
  // Transaction commands

  async stat(): Promise<StatResult> {
    this.assertState('transaction', 'STAT');
    const text = await this.single(commands.stat(), 'transaction', this.timeouts.commandMs);
    return this.parse(() => parseStat(text), 'STAT');
  }

  async list(): Promise<ListEntry[]> {
    this.assertState('transaction', 'LIST');
    const data = await this.listing(commands.list(), 'transaction');
    return this.parse(() => {
      const entries = splitListing(data).map(parseListLine);
      checkListingNumbers(entries, 'LIST');
      return entries;
    }, 'LIST');
  }

  async listOne(n: number): Promise<ListEntry> {
    this.assertState('transaction', 'LIST');
    const text = await this.single(commands.listOne(n), 'transaction', this.timeouts.commandMs);
    return this.parse(() => parseListLine(text), 'LIST');
  }

  async uidl(): Promise<UidlEntry[]> {
    this.assertState('transaction', 'UIDL');
    const data = await this.listing(commands.uidl(), 'transaction');
    return this.parse(() => {
      const entries = splitListing(data).map((l) => parseUidlLine(l, MAX_UIDL_BYTES));
      checkListingNumbers(entries, 'UIDL');
      return entries;
    }, 'UIDL');
  }

  async uidlOne(n: number): Promise<UidlEntry> {
    this.assertState('transaction', 'UIDL');
    const text = await this.single(commands.uidlOne(n), 'transaction', this.timeouts.commandMs);
    return this.parse(() => parseUidlLine(text, MAX_UIDL_BYTES), 'UIDL');
  }

  /** RETR n: resolves when the server answered +OK; the body then streams. */
  retr(n: number): Promise<MessageStream> {
    this.assertState('transaction', 'RETR');
    return handled(this.streamCommand(commands.retr(n), n).promise);
  }

  /** TOP n lines: the header block, a blank line and the first `lines` body lines. */
  top(n: number, lines: number): Promise<MessageStream> {
    this.assertState('transaction', 'TOP');
    return handled(this.streamCommand(commands.top(n, lines), n).promise);
  }

  /**
   * Retrieve many messages in order, keeping RETRs in flight ahead of the consumer (bounded
   * by commands and by bytes). Each yielded stream must be consumed or destroyed before the
   * next is taken. Ending the loop early discards what was requested but not yet yielded.
   */
  async *retrieve(items: Iterable<RetrieveItem>, options: RetrieveOptions = {}): AsyncGenerator<MessageStream> {
    this.assertState('transaction', 'RETR');
    // Twice the window, so the client's queue holds a refill when half the window is answered.
    const window = this.pipeliningActive ? (options.lookahead ?? 2 * this.window()) : 1;
    const maxBytesAhead = options.maxBytesAhead ?? 8 * 1024 * 1024;
    const collectUpTo = options.collectUpTo;
    const iterator = items[Symbol.iterator]();
    const ahead: Array<{ item: RetrieveItem; pending: Pending; promise: Promise<MessageStream> }> = [];
    let bytesAhead = 0;
    let exhausted = false;
    const fill = (): void => {
      // Top up in batches (when half the lookahead is used), so commands reach the wire in
      // groups rather than one per consumed message.
      if (ahead.length > 0 && ahead.length > window >> 1 && bytesAhead < maxBytesAhead >> 1) return;
      while (!exhausted && ahead.length < window && (ahead.length === 0 || bytesAhead < maxBytesAhead)) {
        const next = iterator.next();
        if (next.done === true) {
          exhausted = true;
          return;
        }
        const item = next.value;
        const command = options.topLines === undefined ? commands.retr(item.number) : commands.top(item.number, options.topLines);
        const collect = collectUpTo !== undefined && item.size !== undefined && item.size <= collectUpTo;
        const { pending, promise } = this.streamCommand(command, item.number, collect ? item.size : undefined);
        handled(promise);
        ahead.push({ item, pending, promise });
        bytesAhead += item.size ?? 0;
      }
    };
    try {
      for (;;) {
        fill();
        const head = ahead.shift();
        if (head === undefined) return;
        bytesAhead -= head.item.size ?? 0;
        const message = await head.promise;
        yield message;
      }
    } finally {
      for (const rest of ahead) this.cancelStream(rest.pending);
    }
  }

  async dele(n: number): Promise<void> {
    this.assertState('transaction', 'DELE');
    await this.single(commands.dele(n), 'transaction', this.timeouts.commandMs);
  }

  async rset(): Promise<void> {
    this.assertState('transaction', 'RSET');
    await this.single(commands.rset(), 'transaction', this.timeouts.commandMs);
  }

  async noop(): Promise<void> {
    this.assertState('transaction', 'NOOP');
    await this.single(commands.noop(), 'transaction', this.timeouts.commandMs);
  }

  /**
   * QUIT: in the transaction state the server applies deletions (UPDATE state) and answers;
   * an -ERR here means deletions may not have been applied. The connection is closed either way.
   */
  async quit(): Promise<void> {
    if (this.state === 'closed') {
      throw this.failure ?? new Pop3Error('INVALID_STATE', 'connection already closed', { phase: 'quit' });
    }
    const wasTransaction = this.state === 'transaction';
    this.state = 'closing';
    try {
      await this.single(commands.quit(), wasTransaction ? 'quit' : 'auth', this.timeouts.quitMs);
    } finally {
      this.close();
    }
  }

  /** Close the connection without QUIT: the server rolls back deletions. */
  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.cleanup(new Pop3Error('INVALID_STATE', 'connection closed by the client', { phase: this.currentPhase() }));
  }

  // ---------------------------------------------------------------------------------------
  // Queue and wire

  private window(): number {
    return this.pipeliningActive ? Math.max(1, this.options.pipelineWindow ?? DEFAULT_PIPELINE_WINDOW) : 1;
  }

  private single(command: Command, phase: Pop3Phase, timeoutMs: number): Promise<string> {
    return handled(
      new Promise<string>((resolve, reject) => {
        this.enqueue({ command, phase, timeoutMs, sent: false, waitingSince: 0, discard: false, handler: { onOk: resolve, onErr: reject } });
      }),
    );
  }

  private listing(command: Command, phase: Pop3Phase): Promise<Buffer> {
    return handled(
      new Promise<Buffer>((resolve, reject) => {
        this.enqueue({
          command,
          phase,
          timeoutMs: this.timeouts.commandMs,
          sent: false,
          waitingSince: 0,
          discard: false,
          chunks: [],
          bytes: 0,
          resolveListing: resolve,
          handler: { onOk: noop, onErr: reject },
        });
      }),
    );
  }

  /** `collectSize`: receive the body whole (it should be this large), unless it runs well past that. */
  private streamCommand(command: Command, n: number, collectSize?: number): { pending: Pending; promise: Promise<MessageStream> } {
    let pending!: Pending;
    const promise = new Promise<MessageStream>((resolve, reject) => {
      pending = {
        command,
        phase: 'transaction',
        timeoutMs: this.timeouts.commandMs,
        sent: false,
        waitingSince: 0,
        discard: false,
        handler: { onOk: noop, onErr: reject },
        messageNumber: n,
        deliver: resolve,
      };
      if (collectSize !== undefined) {
        pending.collectSize = collectSize;
        pending.collectLimit = collectSize + COLLECT_SLACK_BYTES;
      }
      this.enqueue(pending);
    });
    return { pending, promise };
  }

  /** Give the body of a RETR/TOP its stream and hand it to the caller. */
  private startBodyStream(pending: Pending, statusText: string): BodyStream {
    const stream = new BodyStream(this, this.options.bodyHighWaterMark ?? BODY_HIGH_WATER_MARK_BYTES);
    stream.pending = pending;
    pending.stream = stream;
    pending.deliver!({ number: pending.messageNumber!, statusText, stream });
    return stream;
  }

  private cancelStream(pending: Pending): void {
    const queued = this.queue.indexOf(pending);
    if (queued !== -1) {
      this.queue.splice(queued, 1);
      pending.handler.onErr(new Pop3Error('ABORTED', 'retrieval cancelled', { phase: 'transaction' }));
      return;
    }
    pending.discard = true;
    pending.collected = undefined;
    if (pending.stream !== undefined && !pending.stream.destroyed) pending.stream.destroy();
  }

  private enqueue(pending: Pending): void {
    if (this.state === 'closed' && pending.command?.keyword !== 'QUIT') {
      pending.handler.onErr(
        this.failure ?? new Pop3Error('INVALID_STATE', 'connection is closed', { phase: pending.phase }),
      );
      return;
    }
    if (this.failure !== undefined) {
      pending.handler.onErr(this.failure);
      return;
    }
    this.queue.push(pending);
    this.pump();
  }

  /** Move queued commands to the wire while the window allows. */
  private pump(): void {
    // AUTH exchanges and STLS are lock-step; so is everything until PIPELINING is known.
    const window = this.state === 'transaction' || this.state === 'closing' ? this.window() : 1;
    // Refill the window in batches: wait until half of it has been answered, so commands go out
    // in few writes (one TLS record each) rather than one write per answered command.
    if (window > 1 && this.inflight.length > window >> 1) return;
    let now = 0;
    while (this.queue.length > 0 && this.inflight.length < window) {
      const next = this.queue[0]!;
      if (next.command?.shape === 'sasl' && this.inflight.length > 0) break;
      this.queue.shift();
      this.inflight.push(next);
      next.sent = true;
      next.waitingSince = now === 0 ? (now = performance.now()) : now;
      this.trace('client', next.command!.logForm);
      this.outgoing.push(next.command!.wire);
    }
    if (this.outgoing.length > 0 && !this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    const data = this.outgoing.length === 1 ? this.outgoing[0]! : this.outgoing.join('');
    this.outgoing = [];
    if (data.length > 0 && this.socket !== undefined && !this.socket.destroyed) {
      this.lastActivity = performance.now();
      this.socket.write(data, 'utf8');
    }
  };

  private writeLine(line: { wire: string; logForm: string }): void {
    this.trace('client', line.logForm);
    this.outgoing.push(line.wire);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.flush);
    }
  }

  // ---------------------------------------------------------------------------------------
  // Incoming data

  private readonly onData = (chunk: Buffer): void => {
    this.lastActivity = performance.now();
    try {
      this.framer.push(chunk);
    } catch (error) {
      if (error instanceof LineTooLongError) {
        this.fail(limitExceeded('a status line', error.limit, this.currentPhase(), this.inflight[0]?.command?.logForm));
      } else {
        this.fail(toPop3Error(error, this.currentPhase()));
      }
    }
  };

  private onLine(line: Buffer): boolean {
    const head = this.inflight[0];
    if (head === undefined) {
      this.fail(
        new Pop3Error('PROTOCOL_ERROR', `unexpected data from server: "${describeLine(line)}"`, {
          phase: this.currentPhase(),
        }),
      );
      return false;
    }
    const logForm = head.command?.logForm ?? 'greeting';
    let status;
    try {
      status = parseStatusLine(line, head.command?.shape === 'sasl');
    } catch (error) {
      const message = error instanceof MalformedResponseError ? error.message : String(error);
      this.fail(new Pop3Error('PROTOCOL_ERROR', `${message} (in answer to ${logForm})`, { phase: head.phase, command: logForm }));
      return false;
    }

    if (status.kind === 'continue') {
      this.trace('server', status.payload.length === 0 ? '+' : '+ ****');
      head.challenges = (head.challenges ?? 0) + 1;
      // The exchange is bounded in time (authMs from sending AUTH, see checkTimeout) and in
      // challenges: a server must not keep it going, nor go on after the client cancelled it.
      if (head.saslError !== undefined || head.challenges > MAX_SASL_CHALLENGES) {
        const why =
          head.saslError !== undefined
            ? `server went on with the exchange after the client cancelled it (${head.saslError.message})`
            : `server sent more than ${MAX_SASL_CHALLENGES} challenges`;
        this.fail(new Pop3Error('PROTOCOL_ERROR', `${logForm}: ${why}`, { phase: 'auth', command: logForm }));
        return false;
      }
      this.framer.maxLineBytes = MAX_CHALLENGE_LINE_BYTES;
      void this.answerChallenge(head, status.payload).catch((error: unknown) => this.fail(toPop3Error(error, 'auth')));
      return true;
    }
    this.framer.maxLineBytes = this.options.maxStatusLineBytes ?? MAX_STATUS_LINE_BYTES;
    if (this.options.trace !== undefined) {
      this.trace('server', `${status.kind === 'ok' ? '+OK' : '-ERR'}${status.text.length > 0 ? ` ${status.text}` : ''}`);
    }

    if (status.kind === 'err') {
      this.inflight.shift();
      const error = errorFromStatus(status.text, status.responseCode, head.phase, logForm);
      if (head.phase === 'greeting') {
        head.handler.onErr(error);
        this.fail(error);
        return false;
      }
      head.handler.onErr(head.saslError ?? error);
      this.afterResponse();
      return true;
    }

    const shape = head.command?.shape ?? 'single';
    if (shape === 'stream') {
      if (!head.discard) {
        if (head.collectSize !== undefined) {
          head.collected = { statusText: status.text, buffer: Buffer.allocUnsafe(head.collectSize), used: 0, more: undefined, bytes: 0 };
        }
        else this.startBodyStream(head, status.text);
      }
      this.framer.beginBody();
      return true;
    }
    if (shape === 'listing') {
      this.framer.beginBody();
      head.handler.onOk(status.text);
      return true;
    }

    this.inflight.shift();
    head.handler.onOk(status.text);
    this.afterResponse();
    // After +OK to STLS nothing may follow before the handshake; stop so the rest stays visible.
    return head.command?.keyword !== 'STLS';
  }

  private onBodyData(data: Buffer): void {
    const head = this.inflight[0]!;
    if (head.chunks !== undefined) {
      head.bytes! += data.length;
      const limit = this.options.maxListingBytes ?? MAX_LISTING_BYTES;
      if (head.bytes! > limit) throw new LineTooLongError(limit);
      head.chunks.push(data);
      return;
    }
    if (head.discard) return;
    const collected = head.collected;
    if (collected !== undefined) {
      collected.bytes += data.length;
      if (collected.bytes <= head.collectLimit!) {
        if (collected.more === undefined && collected.used + data.length <= collected.buffer.length) {
          collected.buffer.set(data, collected.used);
          collected.used += data.length;
        } else {
          (collected.more ??= []).push(data);
        }
        return;
      }
      // Longer than its listing said: stream it after all, so backpressure applies again.
      head.collected = undefined;
      const stream = this.startBodyStream(head, collected.statusText);
      for (const chunk of collectedChunks(collected)) this.pushBody(stream, chunk);
    }
    const stream = head.stream;
    if (stream === undefined || stream.destroyed) return;
    this.pushBody(stream, data);
  }

  private pushBody(stream: BodyStream, data: Buffer): void {
    if (!stream.push(data)) {
      this.fullStreams.add(stream);
      this.socket?.pause();
    }
  }

  private onBodyEnd(): void {
    const head = this.inflight.shift()!;
    if (head.chunks !== undefined) {
      head.resolveListing!(head.chunks.length === 1 ? head.chunks[0]! : Buffer.concat(head.chunks));
    } else if (head.collected !== undefined) {
      const collected = head.collected;
      head.collected = undefined;
      head.deliver!(new WholeMessage(head.messageNumber!, collected.statusText, collectedChunks(collected)));
    } else if (head.stream !== undefined) {
      head.stream.pending = undefined;
      if (!head.stream.destroyed) head.stream.push(null);
    }
    this.afterResponse();
  }

  private afterResponse(): void {
    // The next command in the pipeline waits for its status line from now (this chunk's arrival).
    const next = this.inflight[0];
    if (next !== undefined) next.waitingSince = this.lastActivity;
    if (this.queue.length > 0) this.pump();
  }

  /** A stream's consumer wants more: resume the socket once no stream is full. */
  streamWantsData(stream: BodyStream): void {
    if (this.fullStreams.delete(stream) && this.fullStreams.size === 0) {
      this.lastActivity = performance.now();
      this.socket?.resume();
    }
  }

  /** A stream was destroyed (by its consumer, or after it ended): drop the rest of its body. */
  streamDestroyed(stream: BodyStream): void {
    if (stream.pending !== undefined) {
      stream.pending.discard = true;
      stream.pending = undefined;
    }
    this.streamWantsData(stream);
  }

  // ---------------------------------------------------------------------------------------
  // Timers, errors, teardown

  /** Runs on an interval while connected; fails the session when the server went silent. */
  private readonly checkTimeout = (): void => {
    const head = this.inflight[0];
    const now = performance.now();
    if (head === undefined || this.fullStreams.size > 0 || this.state === 'closed') {
      // Nothing expected from the server, or we hold it back: silence is not its fault.
      this.lastActivity = now;
      if (head !== undefined) head.waitingSince = now;
      return;
    }
    // In a body or listing: inactivity. Before the status line (and through a whole SASL
    // exchange): a deadline that bytes trickling in or challenges do not extend.
    const reading = this.framer.readingBody;
    const limit = reading ? this.timeouts.bodyIdleMs : head.timeoutMs;
    const since = reading ? this.lastActivity : head.waitingSince;
    if (limit <= 0 || now - since < limit) return;
    const what = head.command?.logForm ?? 'the greeting';
    let code: Pop3ErrorCode = 'COMMAND_TIMEOUT';
    let message = `no answer to ${what} within ${limit} ms`;
    if (head.command?.shape === 'sasl' && (head.challenges ?? 0) > 0) {
      message = `the ${what} exchange did not complete within ${limit} ms (${head.challenges} challenges)`;
    } else if (reading) {
      code = 'BODY_TIMEOUT';
      message = `server stopped sending in the middle of the response to ${what} (silent for ${limit} ms)`;
    } else if (head.phase === 'greeting') {
      code = 'GREETING_TIMEOUT';
      message = `no greeting from ${this.host}:${this.port} within ${limit} ms`;
    }
    this.fail(new Pop3Error(code, message, { phase: head.phase, command: head.command?.logForm }));
  };

  private readonly onSocketError = (err: Error): void => {
    this.fail(mapSocketError(err, this.currentPhase(), this.host, this.port));
  };

  private readonly onSocketClose = (): void => {
    if (this.state === 'closed') return;
    const head = this.inflight[0];
    if (head === undefined && this.queue.length === 0) {
      // Closed while idle: not an error yet; the next command reports it.
      this.state = 'closed';
      this.failure = new Pop3Error('CONNECTION_CLOSED', `${this.host}:${this.port} closed the connection`, {
        phase: this.currentPhase(),
      });
      this.cleanup(this.failure);
      return;
    }
    const what = head?.command?.logForm ?? 'the greeting';
    const where = this.framer.readingBody ? `in the middle of the response to ${what}` : `while waiting for the answer to ${what}`;
    this.fail(
      new Pop3Error('CONNECTION_CLOSED', `${this.host}:${this.port} closed the connection ${where}`, {
        phase: head?.phase ?? this.currentPhase(),
        command: head?.command?.logForm,
      }),
    );
  };

  private fail(error: Pop3Error): void {
    if (this.state === 'closed' && this.failure !== undefined) return;
    this.failure = error;
    this.state = 'closed';
    this.cleanup(error);
  }

  private failWith(error: Pop3Error): Pop3Error {
    this.fail(error);
    return error;
  }

  private cleanup(error: Pop3Error): void {
    if (this.abortListener !== undefined) {
      this.options.signal?.removeEventListener('abort', this.abortListener);
      this.abortListener = undefined;
    }
    if (this.watchdog !== undefined) {
      clearInterval(this.watchdog);
      this.watchdog = undefined;
    }
    this.socket?.destroy();
    const pending = [...this.inflight, ...this.queue];
    this.inflight.length = 0;
    this.queue.length = 0;
    this.fullStreams.clear();
    for (const p of pending) {
      const stream = p.stream;
      if (stream !== undefined && !stream.destroyed && !stream.readableEnded) {
        // A consumer that has not attached yet sees the error through the stream's state
        // (stream.errored, pipeline(), finished()) instead of an uncaught 'error' event.
        if (stream.listenerCount('error') === 0) stream.on('error', noop);
        stream.destroy(error);
      }
      p.handler.onErr(error);
    }
  }

  private currentPhase(): Pop3Phase {
    const head = this.inflight[0];
    if (head !== undefined) return head.phase;
    switch (this.state) {
      case 'new':
      case 'connecting':
        return 'connect';
      case 'authorization':
        return 'auth';
      case 'closing':
        return 'quit';
      default:
        return 'transaction';
    }
  }

  private assertState(expected: State, what: string): void {
    if (this.state === expected) return;
    if (this.failure !== undefined) throw this.failure;
    throw new Pop3Error('INVALID_STATE', `${what} is not allowed in state ${this.state}`, { phase: this.currentPhase() });
  }

  private parse<T>(fn: () => T, what: string): T {
    try {
      return fn();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw this.failWith(new Pop3Error('PROTOCOL_ERROR', `${what}: ${message}`, { phase: 'transaction', cause: error }));
    }
  }

  private trace(direction: Pop3TraceEvent['direction'], line: string): void {
    this.options.trace?.({ direction, line });
  }

  private traceInfo(line: string): void {
    this.trace('info', line);
  }
}

function mapSocketError(err: Error & { code?: string }, phase: Pop3Phase, host: string, port: number): Pop3Error {
  const code = err.code ?? '';
  if (code.startsWith('ERR_TLS') || code.includes('CERT') || code.startsWith('ERR_SSL') || /SSL|TLS|certificate/i.test(err.message)) {
    return new Pop3Error('TLS_FAILED', `TLS with ${host}:${port} failed: ${err.message}${code ? ` (${code})` : ''}`, {
      phase: phase === 'stls' ? 'stls' : 'tls',
      cause: err,
    });
  }
  if (['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'EADDRNOTAVAIL'].includes(code)) {
    return new Pop3Error('CONNECT_FAILED', `cannot connect to ${host}:${port}: ${code}`, { phase: 'connect', cause: err });
  }
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'ECONNABORTED') {
    return new Pop3Error('CONNECTION_CLOSED', `connection to ${host}:${port} was reset (${code})`, { phase, cause: err });
  }
  if (phase === 'connect') {
    return new Pop3Error('CONNECT_FAILED', `cannot connect to ${host}:${port}: ${err.message}`, { phase, cause: err });
  }
  return new Pop3Error('CONNECTION_CLOSED', `connection to ${host}:${port} failed: ${err.message}`, { phase, cause: err });
}

/**
 * A login failure that is not the server's answer: credentials the client refuses to send
 * (AUTH_FAILED) or anything unexpected (PROTOCOL_ERROR). Never retryable; the secret never
 * appears in the message (nor, when the original message held it, as the cause).
 */
function authFailure(error: unknown, secret: string): Pop3Error {
  if (error instanceof Pop3Error) return error;
  const raw = error instanceof Error ? error.message : String(error);
  const leaked = secret.length > 0 && raw.includes(secret);
  const message = leaked ? raw.split(secret).join('****') : raw;
  const code: Pop3ErrorCode = error instanceof SaslError || error instanceof CommandArgumentError ? 'AUTH_FAILED' : 'PROTOCOL_ERROR';
  return new Pop3Error(code, `login failed: ${message}`, { phase: 'auth', retryable: false, ...(leaked ? {} : { cause: error }) });
}

function toPop3Error(error: unknown, phase: Pop3Phase): Pop3Error {
  if (error instanceof Pop3Error) return error;
  if (error instanceof SaslError) return new Pop3Error('AUTH_FAILED', error.message, { phase: 'auth', cause: error });
  const message = error instanceof Error ? error.message : String(error);
  return new Pop3Error('PROTOCOL_ERROR', message, { phase, cause: error });
}
