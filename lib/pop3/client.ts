/**
 * The POP3 client: one socket, one queue of commands, pipelined when the server allows it.
 *
 * Life cycle: `Pop3Client.connect()` dials (implicit TLS, STLS or, only when asked for by name,
 * plaintext), reads the greeting and CAPA and upgrades with STLS; `login()` authenticates; then
 * the transaction commands; `quit()` commits deletions. Any failure destroys the socket and
 * rejects everything pending with a `Pop3Error`; promises the caller did not await never become
 * unhandled rejections.
 *
 * This file keeps the queue, the pump, the dispatch of what the server sends, the deadlines and
 * the teardown. Beside it: transport.ts (socket, TLS, STLS), authenticate.ts (method choice and
 * the USER/APOP/SASL exchange), message-bodies.ts (RETR/TOP bodies, streamed or whole),
 * listing-collector.ts (CAPA/LIST/UIDL), pending.ts (a command waiting for its answer).
 */
import type net from 'node:net';
import type tls from 'node:tls';
import {
  answerChallenge,
  authFailure,
  chooseLoginMethod,
  refuseChallenge,
  saslPending,
  secretOf,
  sendCredentials,
  type LoginOptions,
} from './authenticate.js';
import { DEFAULT_TIMEOUTS, type Pop3ClientOptions, type Pop3Timeouts, type Pop3TraceEvent, type RetrieveItem, type RetrieveOptions } from './client-options.js';
import { commands, type Command } from './command.js';
import { errorFromStatus, Pop3Error, type Pop3ErrorCode, type Pop3Phase } from './errors.js';
import { LineTooLongError, ResponseFramer } from './framer.js';
import {
  BODY_HIGH_WATER_MARK_BYTES,
  DEFAULT_PIPELINE_WINDOW,
  limitExceeded,
  MAX_CHALLENGE_LINE_BYTES,
  MAX_LISTING_BYTES,
  MAX_STATUS_LINE_BYTES,
  MAX_UIDL_BYTES,
} from './limits.js';
import { ListingCollector } from './listing-collector.js';
import { MessageBodies, type MessageStream } from './message-bodies.js';
import type { CommandPending, Pending, StreamPending } from './pending.js';
import {
  checkListingNumbers,
  describeLine,
  MalformedResponseError,
  NO_CAPABILITIES,
  parseCapabilities,
  parseListLine,
  parseStat,
  parseStatusLine,
  parseUidlLine,
  splitListing,
  type Capabilities,
  type ListEntry,
  type StatResult,
  type UidlEntry,
} from './response.js';
import type { AuthMethod, Pop3Credentials } from './sasl/index.js';
import { toPop3Error } from './to-pop3-error.js';
import { describeTls, dial, mapSocketError, refuseBytesBeforeHandshake, upgradeToTls, type Endpoint, type TlsInfo, type TlsMode } from './transport.js';

export { DEFAULT_TIMEOUTS } from './client-options.js';
export type { Pop3ClientOptions, Pop3Timeouts, Pop3TraceEvent, RetrieveItem, RetrieveOptions } from './client-options.js';
export type { LoginOptions } from './authenticate.js';
export type { MessageStream } from './message-bodies.js';
export type { Pop3TlsOptions, TlsInfo, TlsMode } from './transport.js';

type State = 'new' | 'connecting' | 'authorization' | 'transaction' | 'closing' | 'closed';

const noop = (): void => {};

function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(noop);
  return promise;
}

export class Pop3Client {
  readonly host: string;
  readonly port: number;
  readonly tlsMode: TlsMode;
  private readonly options: Pop3ClientOptions;
  private readonly timeouts: Pop3Timeouts;
  private readonly framer: ResponseFramer;
  private readonly endpoint: Endpoint;
  private readonly bodies: MessageBodies;
  private socket: net.Socket | tls.TLSSocket | undefined;
  private state: State = 'new';
  private failure: Pop3Error | undefined;
  private readonly inflight: Pending[] = [];
  private readonly queue: CommandPending[] = [];
  private outgoing: string[] = [];
  private flushScheduled = false;
  /**
   * When the server last sent something (or we last wrote, or stopped waiting): for the
   * inactivity timeout in the middle of a body or listing. Status lines have their own
   * deadline (`Pending.waitingSince`).
   */
  private lastActivity = 0;
  private watchdog: NodeJS.Timeout | undefined;
  private pipeliningActive = false;
  private greetingText = '';
  private caps: Capabilities = NO_CAPABILITIES;
  private capaAnswered = false;
  private secure = false;
  private abortListener: (() => void) | undefined;
  private authMethodUsed: AuthMethod | undefined;

  private constructor(options: Pop3ClientOptions) {
    this.options = options;
    this.host = options.host;
    this.tlsMode = options.tls ?? 'implicit';
    this.port = options.port ?? (this.tlsMode === 'implicit' ? 995 : 110);
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    this.endpoint = { host: this.host, port: this.port, tlsOptions: options.tlsOptions, failure: () => this.failure };
    this.framer = new ResponseFramer(
      {
        onLine: (line) => this.onLine(line),
        onBodyData: (data) => this.onBodyData(data),
        onBodyEnd: () => this.onBodyEnd(),
      },
      options.maxStatusLineBytes ?? MAX_STATUS_LINE_BYTES,
    );
    this.bodies = new MessageBodies(
      {
        pause: () => this.socket?.pause(),
        resume: () => {
          this.lastActivity = performance.now();
          this.socket?.resume();
        },
      },
      options.bodyHighWaterMark ?? BODY_HIGH_WATER_MARK_BYTES,
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
  get authMethod(): AuthMethod | undefined {
    return this.authMethodUsed;
  }

  get isClosed(): boolean {
    return this.state === 'closed';
  }

  /** Details of the TLS session, or undefined on a plaintext connection. */
  tlsInfo(): TlsInfo | undefined {
    return describeTls(this.socket);
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
    const socket = await dial(this.endpoint, this.tlsMode === 'implicit', this.timeouts.connectMs, (s) => {
      this.socket = s; // so fail() during connect destroys it
    });
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
    this.state = 'authorization';
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
        kind: 'greeting',
        command: undefined,
        phase: 'greeting',
        timeoutMs: this.timeouts.greetingMs,
        sent: true,
        waitingSince: performance.now(),
        onOk: resolve,
        onErr: reject,
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
    refuseBytesBeforeHandshake(this.framer.bufferedBytes);
    const plain = this.socket;
    if (plain === undefined) throw new Pop3Error('INVALID_STATE', 'no connection to upgrade', { phase: 'stls' });
    this.detach(plain);
    const upgraded = await upgradeToTls(plain, this.endpoint, this.timeouts.tlsUpgradeMs, (s) => this.socket === s);
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
    const server = { greeting: this.greetingText, caps: this.caps, capaAnswered: this.capaAnswered };
    const choice = chooseLoginMethod(credentials, options.mechanism ?? 'auto', server);
    this.authMethodUsed = choice.method;
    try {
      await sendCredentials(
        {
          host: this.host,
          port: this.port,
          send: async (command) => {
            await this.single(command, 'auth', this.timeouts.authMs);
          },
          sasl: (session) =>
            new Promise<void>((resolve, reject) => {
              this.enqueue(saslPending(session, this.timeouts.authMs, { resolve, reject, failWith: (e) => this.failWith(e) }));
            }),
        },
        credentials,
        choice,
      );
    } catch (error) {
      if (error instanceof Pop3Error) throw error;
      // Credentials the client cannot send (CR/LF in a user name, characters SASLprep refuses)
      // or any other client-side failure: a typed error, and the session is not used further.
      throw this.failWith(authFailure(error, secretOf(credentials)));
    }
    this.state = 'transaction';
    this.traceInfo(`authenticated with ${choice.method}`);
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
    const ahead: Array<{ item: RetrieveItem; pending: StreamPending; promise: Promise<MessageStream> }> = [];
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
        this.enqueue({ kind: 'status', command, phase, timeoutMs, sent: false, waitingSince: 0, onOk: resolve, onErr: reject });
      }),
    );
  }

  private listing(command: Command, phase: Pop3Phase): Promise<Buffer> {
    return handled(
      new Promise<Buffer>((resolve, reject) => {
        this.enqueue({
          kind: 'listing',
          command,
          phase,
          timeoutMs: this.timeouts.commandMs,
          sent: false,
          waitingSince: 0,
          collector: new ListingCollector({ maxBytes: this.options.maxListingBytes ?? MAX_LISTING_BYTES }),
          onListing: resolve,
          onErr: reject,
        });
      }),
    );
  }

  /** `collectSize`: receive the body whole (it should be this large), unless it runs well past that. */
  private streamCommand(command: Command, n: number, collectSize?: number): { pending: StreamPending; promise: Promise<MessageStream> } {
    let settle: { deliver(m: MessageStream): void; reject(e: Pop3Error): void } | undefined;
    const promise = new Promise<MessageStream>((resolve, reject) => {
      settle = { deliver: resolve, reject };
    });
    const pending: StreamPending = {
      kind: 'stream',
      command,
      phase: 'transaction',
      timeoutMs: this.timeouts.commandMs,
      sent: false,
      waitingSince: 0,
      messageNumber: n,
      collectSize,
      body: undefined,
      discard: false,
      deliver: (m) => settle?.deliver(m),
      onErr: (e) => settle?.reject(e),
    };
    this.enqueue(pending);
    return { pending, promise };
  }

  private cancelStream(pending: StreamPending): void {
    const queued = this.queue.indexOf(pending);
    if (queued !== -1) {
      this.queue.splice(queued, 1);
      pending.onErr(new Pop3Error('ABORTED', 'retrieval cancelled', { phase: 'transaction' }));
      return;
    }
    this.bodies.discard(pending);
  }

  private enqueue(pending: CommandPending): void {
    if (this.state === 'closed' && pending.command.keyword !== 'QUIT') {
      pending.onErr(this.failure ?? new Pop3Error('INVALID_STATE', 'connection is closed', { phase: pending.phase }));
      return;
    }
    if (this.failure !== undefined) {
      pending.onErr(this.failure);
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
    for (let next = this.queue[0]; next !== undefined && this.inflight.length < window; next = this.queue[0]) {
      if (next.kind === 'sasl' && this.inflight.length > 0) break;
      this.queue.shift();
      this.inflight.push(next);
      next.sent = true;
      next.waitingSince = now === 0 ? (now = performance.now()) : now;
      this.trace('client', next.command.logForm);
      this.outgoing.push(next.command.wire);
    }
    if (this.outgoing.length > 0 && !this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    const data = this.outgoing.length === 1 ? this.outgoing[0] : this.outgoing.join('');
    this.outgoing = [];
    if (data !== undefined && data.length > 0 && this.socket !== undefined && !this.socket.destroyed) {
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
      status = parseStatusLine(line, head.kind === 'sasl');
    } catch (error) {
      const message = error instanceof MalformedResponseError ? error.message : String(error);
      this.fail(new Pop3Error('PROTOCOL_ERROR', `${message} (in answer to ${logForm})`, { phase: head.phase, command: logForm }));
      return false;
    }

    if (status.kind === 'continue') {
      // Only parsed while an AUTH exchange is the head (parseStatusLine's second argument).
      if (head.kind !== 'sasl') return false;
      this.trace('server', status.payload.length === 0 ? '+' : '+ ****');
      const refusal = refuseChallenge(head);
      if (refusal !== undefined) {
        this.fail(refusal);
        return false;
      }
      this.framer.maxLineBytes = MAX_CHALLENGE_LINE_BYTES;
      void answerChallenge(head, status.payload, (l) => this.writeLine(l)).catch((error: unknown) =>
        this.fail(toPop3Error(error, 'auth')),
      );
      return true;
    }
    this.framer.maxLineBytes = this.options.maxStatusLineBytes ?? MAX_STATUS_LINE_BYTES;
    if (this.options.trace !== undefined) {
      this.trace('server', `${status.kind === 'ok' ? '+OK' : '-ERR'}${status.text.length > 0 ? ` ${status.text}` : ''}`);
    }

    if (status.kind === 'err') {
      this.inflight.shift();
      const error = errorFromStatus(status.text, status.responseCode, head.phase, logForm);
      if (head.kind === 'greeting') {
        head.onErr(error);
        this.fail(error);
        return false;
      }
      head.onErr(head.kind === 'sasl' ? (head.cancelled ?? error) : error);
      this.afterResponse();
      return true;
    }

    switch (head.kind) {
      case 'stream':
        this.bodies.begin(head, status.text);
        this.framer.beginBody();
        return true;
      case 'listing':
        this.framer.beginBody();
        return true;
      default:
        this.inflight.shift();
        head.onOk(status.text);
        this.afterResponse();
        // After +OK to STLS nothing may follow before the handshake; stop so the rest stays visible.
        return head.command?.keyword !== 'STLS';
    }
  }

  private onBodyData(data: Buffer): void {
    const head = this.inflight[0];
    if (head?.kind === 'listing') head.collector.push(data);
    else if (head?.kind === 'stream') this.bodies.data(head, data);
  }

  private onBodyEnd(): void {
    const head = this.inflight.shift();
    if (head?.kind === 'listing') head.onListing(head.collector.finish());
    else if (head?.kind === 'stream') this.bodies.end(head);
    this.afterResponse();
  }

  private afterResponse(): void {
    // The next command in the pipeline waits for its status line from now (this chunk's arrival).
    const next = this.inflight[0];
    if (next !== undefined) next.waitingSince = this.lastActivity;
    if (this.queue.length > 0) this.pump();
  }

  // ---------------------------------------------------------------------------------------
  // Timers, errors, teardown

  /** Runs on an interval while connected; fails the session when the server went silent. */
  private readonly checkTimeout = (): void => {
    const head = this.inflight[0];
    const now = performance.now();
    if (head === undefined || this.bodies.holdingBack || this.state === 'closed') {
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
    if (head.kind === 'sasl' && head.challenges > 0) {
      message = `the ${what} exchange did not complete within ${limit} ms (${head.challenges} challenges)`;
    } else if (reading) {
      code = 'BODY_TIMEOUT';
      message = `server stopped sending in the middle of the response to ${what} (silent for ${limit} ms)`;
    } else if (head.kind === 'greeting') {
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
    this.bodies.clear();
    for (const p of pending) {
      if (p.kind === 'stream') this.bodies.fail(p, error);
      p.onErr(error);
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
