/**
 * The POP3 client as its callers see it. Life cycle: `Pop3Client.connect()` dials (implicit TLS,
 * STLS or, only when asked for by name, plaintext), reads the greeting and CAPA and upgrades
 * with STLS; `login()` authenticates; then the transaction commands; `quit()` commits
 * deletions. Any failure destroys the socket and rejects everything pending with a `Pop3Error`;
 * promises the caller did not await never become unhandled rejections.
 *
 * What each call sends and what it makes of the answer is here; the queue, the pipelining,
 * the dispatch of what the server sends, the deadlines and the teardown are the channel's
 * (client.ts).
 */
import { authFailure, chooseLoginMethod, secretOf, sendCredentials, type LoginOptions, type ServerOffer } from './authenticate.js';
import { Pop3Channel } from './client.js';
import { DEFAULT_TIMEOUTS, PLAIN_GREETING_TIMEOUT_MS, type Pop3ClientOptions, type Pop3Timeouts, type RetrieveItem, type RetrieveOptions } from './client-options.js';
import { commands, type Command } from './command.js';
import { Pop3Error, describeError } from './errors.js';
import { DEFAULT_PIPELINE_WINDOW, MAX_UIDL_BYTES, MIN_BODY_BYTES_PER_SECOND } from './limits.js';
import type { MessageStream } from './message-bodies.js';
import type { StreamPending } from './pending.js';
import {
  NO_CAPABILITIES,
  parseCapabilities,
  parseListLine,
  parseListListing,
  parseStat,
  parseUidlLine,
  parseUidlListing,
  splitListing,
  type Capabilities,
  type ListEntry,
  type StatResult,
  type UidlEntry,
} from './response.js';
import { RetrievalWindow } from './retrieval-window.js';
import type { AuthMethod, Pop3Credentials } from './sasl/index.js';
import { inertText } from './inert-text.js';
import { credentialSecrets, scrubSecrets } from './scrub.js';
import { toPop3Error } from './to-pop3-error.js';
import type { TlsInfo, TlsMode } from './transport.js';

export class Pop3Client {
  readonly host: string;
  readonly port: number;
  readonly tlsMode: TlsMode;
  private readonly options: Pop3ClientOptions;
  private readonly timeouts: Pop3Timeouts;
  private readonly channel: Pop3Channel;
  private greetingText = '';
  private caps: Capabilities = NO_CAPABILITIES;
  private capaAnswered = false;
  private secure = false;
  private authMethodUsed: AuthMethod | undefined;
  private utf8Enabled = false;
  /** Messages marked deleted in this session (DELE answered +OK, RSET not since). */
  private marked = 0;
  /** The secrets of the login under way or done, scrubbed from any text the server sends. */
  private secrets: string[] = [];

  private constructor(options: Pop3ClientOptions) {
    this.options = options;
    this.host = options.host;
    this.tlsMode = options.tls ?? 'implicit';
    this.port = options.port ?? (this.tlsMode === 'implicit' ? 995 : 110);
    const plainGreeting = this.tlsMode === 'implicit' ? {} : { greetingMs: PLAIN_GREETING_TIMEOUT_MS };
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...plainGreeting, ...options.timeouts };
    // The trace shows text from the server: scrubbed of the secrets in use, control bytes escaped.
    const trace = options.trace;
    const channelOptions: Pop3ClientOptions =
      trace === undefined ? options : { ...options, trace: (event) => trace({ ...event, line: this.outsideText(event.line) }) };
    this.channel = new Pop3Channel(channelOptions, { host: this.host, port: this.port, tlsOptions: options.tlsOptions }, this.timeouts);
  }

  /** Connect, read the greeting and capabilities, and upgrade with STLS when asked to. */
  static async connect(options: Pop3ClientOptions): Promise<Pop3Client> {
    const client = new Pop3Client(options);
    try {
      await client.open();
    } catch (error) {
      client.channel.fail(toPop3Error(error, 'connect'));
      throw client.channel.failure ?? error;
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
    return this.channel.pipelining;
  }

  /** True once the server accepted UTF8 (RFC 6856): it serves messages as stored. */
  get utf8(): boolean {
    return this.utf8Enabled;
  }

  /** What the server told before login (greeting, CAPA, TLS): what the login choice reads. */
  get serverOffer(): ServerOffer {
    return { greeting: this.greetingText, caps: this.caps, capaAnswered: this.capaAnswered, tls: this.secure };
  }

  /** The method `login()` used. */
  get authMethod(): AuthMethod | undefined {
    return this.authMethodUsed;
  }

  /**
   * Bytes of messages received whole for `retrieve()` and not yet taken by its consumer (the
   * one being received included): past `receivedAheadBytes` the socket is paused.
   */
  get bufferedBytes(): number {
    return this.channel.heldBytes;
  }

  get isClosed(): boolean {
    return this.channel.state === 'closed';
  }

  /** Details of the TLS session, or undefined on a plaintext connection. */
  tlsInfo(): TlsInfo | undefined {
    return this.channel.tlsInfo();
  }

  // ---------------------------------------------------------------------------------------
  // Connection set-up

  private async open(): Promise<void> {
    await this.channel.dial(this.tlsMode === 'implicit');
    this.secure = this.tlsMode === 'implicit';
    try {
      this.greetingText = await this.channel.greeting();
    } catch (error) {
      if (error instanceof Pop3Error && error.code === 'GREETING_TIMEOUT' && this.tlsMode !== 'implicit') {
        error.hint ??= `the server may be waiting for a TLS handshake: try pop3s://${this.host}:${this.port}`;
      }
      throw error;
    }
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
    this.channel.state = 'authorization';
  }

  /**
   * RFC 6856: a server that advertises UTF8 may otherwise serve messages with 8-bit headers
   * altered (Courier serves a "Cannot display Unicode content" placeholder instead). A refusal
   * leaves the session as it was.
   */
  private async enableUtf8(): Promise<void> {
    try {
      await this.channel.single(commands.utf8(), 'capa', this.timeouts.commandMs);
      this.utf8Enabled = true;
    } catch (error) {
      if (!(error instanceof Pop3Error && error.code === 'COMMAND_FAILED')) throw error;
      this.channel.traceInfo(`server refused UTF8: ${error.serverText ?? ''}`);
    }
  }

  private async loadCapabilities(): Promise<void> {
    try {
      const data = await this.channel.listing(commands.capa(), 'capa', this.timeouts.commandMs);
      this.caps = parseCapabilities(splitListing(data));
      this.capaAnswered = true;
      this.channel.responseCodes = this.caps;
    } catch (error) {
      if (error instanceof Pop3Error && error.code === 'COMMAND_FAILED') {
        this.caps = NO_CAPABILITIES; // RFC 1939-only server
        this.capaAnswered = false;
        this.channel.responseCodes = NO_CAPABILITIES;
        // Nothing learned earlier (e.g. a plaintext CAPA before STLS) may keep pipelining on.
        this.channel.pipelining = false;
        return;
      }
      throw error;
    }
    this.channel.pipelining =
      (this.options.pipelining ?? true) && this.caps.has('PIPELINING') && (this.options.pipelineWindow ?? DEFAULT_PIPELINE_WINDOW) > 1;
  }

  /** Re-read CAPA (capabilities may change after login, RFC 2449). */
  async refreshCapabilities(): Promise<Capabilities> {
    await this.loadCapabilities();
    return this.caps;
  }

  private async startTls(): Promise<void> {
    await this.channel.single(commands.stls(), 'stls', this.timeouts.commandMs).catch((error: unknown) => {
      if (error instanceof Pop3Error && error.code === 'COMMAND_FAILED') {
        throw new Pop3Error('STLS_UNAVAILABLE', `server refused STLS: -ERR ${error.serverText ?? ''}`, {
          phase: 'stls',
          cause: error,
        });
      }
      throw error;
    });
    const protocol = await this.channel.upgradeToTls();
    this.secure = true;
    // What the server said before TLS was open to tampering: only the CAPA that follows counts.
    this.caps = NO_CAPABILITIES;
    this.capaAnswered = false;
    this.channel.responseCodes = NO_CAPABILITIES;
    this.channel.pipelining = false;
    this.channel.traceInfo(`TLS established: ${protocol ?? '?'}`);
  }

  // ---------------------------------------------------------------------------------------
  // Authentication

  /** Log in with a password or an OAuth2 access token. */
  async login(credentials: Pop3Credentials, options: LoginOptions = {}): Promise<void> {
    this.channel.assertState('authorization', 'login');
    if (!this.secure && this.tlsMode !== 'insecure-plaintext') {
      throw new Pop3Error('STLS_UNAVAILABLE', 'refusing to authenticate on a connection that is not protected by TLS', {
        phase: 'auth',
      });
    }
    const choice = chooseLoginMethod(credentials, options.mechanism ?? 'auto', this.serverOffer);
    this.authMethodUsed = choice.method;
    this.secrets = credentialSecrets(credentials);
    try {
      const channel = this.channel;
      const send = async (command: Command): Promise<void> => {
        await channel.single(command, 'auth', this.timeouts.authMs);
      };
      await sendCredentials({ host: this.host, port: this.port, send, sasl: (s) => channel.sasl(s) }, credentials, choice);
    } catch (error) {
      if (error instanceof Pop3Error) throw this.scrubbed(error);
      // Credentials the client cannot send (CR/LF in a user name, characters SASLprep refuses)
      // or any other client-side failure: a typed error, and the session is not used further.
      throw this.channel.failWith(authFailure(error, secretOf(credentials)));
    }
    this.channel.state = 'transaction';
    this.channel.traceInfo(`authenticated with ${choice.method}`);
  }

  // ---------------------------------------------------------------------------------------
  // Transaction commands

  // Every error these throw has the server's text scrubbed of the session's secrets and its
  // control bytes escaped (`scrubbed`): a server may quote what it was sent in any -ERR.

  stat(): Promise<StatResult> {
    return this.safely(async () => {
      const text = await this.transaction('STAT', () => commands.stat());
      return this.parse(() => parseStat(text), 'STAT');
    });
  }

  list(): Promise<ListEntry[]> {
    return this.safely(async () => {
      this.channel.assertState('transaction', 'LIST');
      const data = await this.channel.listing(commands.list(), 'transaction', this.timeouts.listingMs);
      return this.parse(() => parseListListing(data), 'LIST');
    });
  }

  listOne(n: number): Promise<ListEntry> {
    return this.safely(async () => {
      const text = await this.transaction('LIST', () => commands.listOne(n));
      return this.parse(() => parseListLine(text), 'LIST');
    });
  }

  uidl(): Promise<UidlEntry[]> {
    return this.safely(async () => {
      this.channel.assertState('transaction', 'UIDL');
      const data = await this.channel.listing(commands.uidl(), 'transaction', this.timeouts.listingMs);
      return this.parse(() => parseUidlListing(data, MAX_UIDL_BYTES), 'UIDL');
    });
  }

  uidlOne(n: number): Promise<UidlEntry> {
    return this.safely(async () => {
      const text = await this.transaction('UIDL', () => commands.uidlOne(n));
      return this.parse(() => parseUidlLine(text, MAX_UIDL_BYTES), 'UIDL');
    });
  }

  /** RETR n: resolves when the server answered +OK; the body then streams. */
  retr(n: number): Promise<MessageStream> {
    return this.safely(() => {
      this.channel.assertState('transaction', 'RETR');
      return this.channel.stream(commands.retr(n), n).promise;
    });
  }

  /** TOP n lines: the header block, a blank line and the first `lines` body lines. */
  top(n: number, lines: number): Promise<MessageStream> {
    return this.safely(() => {
      this.channel.assertState('transaction', 'TOP');
      return this.channel.stream(commands.top(n, lines), n).promise;
    });
  }

  /**
   * Retrieve many messages in order, keeping RETRs in flight ahead of the consumer (bounded
   * by commands and by bytes). Each yielded stream must be consumed or destroyed before the
   * next is taken. Ending the loop early discards what was requested but not yet yielded.
   */
  async *retrieve(items: Iterable<RetrieveItem>, options: RetrieveOptions = {}): AsyncGenerator<MessageStream> {
    this.channel.assertState('transaction', 'RETR');
    // Twice the window, so the client's queue holds a refill when half the window is answered.
    const lookahead = this.channel.pipelining ? (options.lookahead ?? 2 * this.channel.window()) : 1;
    const plan = new RetrievalWindow(items, lookahead, options.maxBytesAhead ?? 8 * 1024 * 1024, options.admit);
    const { collectUpTo, topLines } = options;
    const ahead: Array<{ item: RetrieveItem; pending: StreamPending; promise: Promise<MessageStream> }> = [];
    try {
      for (;;) {
        for (const item of plan.refill()) {
          const command = topLines === undefined ? commands.retr(item.number) : commands.top(item.number, topLines);
          const collect = collectUpTo !== undefined && item.size !== undefined && item.size <= collectUpTo;
          const { pending, promise } = this.channel.stream(command, item.number, collect ? item.size : undefined, this.bodyLimitMs(item.size));
          ahead.push({ item, pending, promise });
        }
        const head = ahead.shift();
        if (head === undefined) return;
        plan.taken(head.item);
        const message = await this.safely(() => head.promise);
        this.channel.claim(head.pending);
        yield message;
      }
    } finally {
      for (const rest of ahead) this.channel.cancelStream(rest.pending);
    }
  }

  dele(n: number): Promise<void> {
    return this.safely(async () => {
      await this.transaction('DELE', () => commands.dele(n));
      this.marked += 1;
    });
  }

  rset(): Promise<void> {
    return this.safely(async () => {
      await this.transaction('RSET', () => commands.rset());
      this.marked = 0;
    });
  }

  noop(): Promise<void> {
    return this.safely(() => this.transaction('NOOP', () => commands.noop()).then(() => undefined));
  }

  /**
   * QUIT: in the transaction state the server applies deletions (UPDATE state) and answers;
   * an -ERR here means deletions may not have been applied. The connection is closed either way.
   * A server (or a TLS terminator in front of it) that closes the connection instead of
   * answering loses nothing when no message was marked deleted: that is not an error. With
   * deletions marked it is (CONNECTION_CLOSED): RFC 1939 deletes only in the UPDATE state,
   * which the +OK to QUIT confirms, so whether they were applied is unknown.
   */
  quit(): Promise<void> {
    return this.safely(() => this.quitSession());
  }

  private async quitSession(): Promise<void> {
    if (this.channel.state === 'closed') {
      throw this.channel.failure ?? new Pop3Error('INVALID_STATE', 'connection already closed', { phase: 'quit' });
    }
    const wasTransaction = this.channel.state === 'transaction';
    this.channel.state = 'closing';
    try {
      await this.channel.single(commands.quit(), wasTransaction ? 'quit' : 'auth', this.timeouts.quitMs);
    } catch (error) {
      if (!(error instanceof Pop3Error && error.code === 'CONNECTION_CLOSED')) throw error;
      if (this.marked === 0) {
        this.channel.traceInfo('the server closed the connection without answering QUIT; nothing was marked for deletion');
        return;
      }
      throw new Pop3Error(
        'CONNECTION_CLOSED',
        `${this.host}:${this.port} closed the connection without answering QUIT: whether the ${this.marked} message(s) marked for deletion were deleted is unknown (RFC 1939 deletes them only in the UPDATE state, confirmed by +OK)`,
        { phase: 'quit', command: 'QUIT', cause: error },
      );
    } finally {
      this.close();
    }
  }

  /** Close the connection without QUIT: the server rolls back deletions. */
  close(): void {
    this.channel.close();
  }

  /**
   * Close the connection without QUIT because the caller ran out of time or was stopped:
   * everything pending fails with ABORTED (`why` says what), as with the AbortSignal.
   */
  abort(why: string): void {
    this.channel.fail(new Pop3Error('ABORTED', why, { phase: this.channel.currentPhase() }));
  }

  /**
   * The limit on a whole RETR/TOP response of this listed size (0 when the size is unknown:
   * inactivity only): a status line's time plus the size at MIN_BODY_BYTES_PER_SECOND.
   */
  private bodyLimitMs(size: number | undefined): number {
    if (size === undefined || this.timeouts.commandMs <= 0) return 0;
    return this.timeouts.commandMs + Math.ceil((size * 1000) / MIN_BODY_BYTES_PER_SECOND);
  }

  /** Text that came from the server, safe to show: no secret of ours, no control byte. */
  private outsideText(text: string): string {
    return inertText(scrubSecrets(text, this.secrets));
  }

  /** The error with the server's text made safe (a server may quote what it was sent). */
  private scrubbed(error: Pop3Error): Pop3Error {
    const message = this.outsideText(error.message);
    const serverText = error.serverText === undefined ? undefined : this.outsideText(error.serverText);
    if (message === error.message && serverText === error.serverText) return error;
    // The cause stays behind: it may hold the text unscrubbed.
    return new Pop3Error(error.code, message, {
      phase: error.phase,
      command: error.command,
      serverText,
      responseCode: error.responseCode,
      retryable: error.retryable,
      retryAfterSeconds: error.retryAfterSeconds,
      hint: error.hint,
      peerCertificate: error.peerCertificate,
    });
  }

  /** `call`'s result; a Pop3Error it throws or rejects with comes out scrubbed. */
  private async safely<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw error instanceof Pop3Error ? this.scrubbed(error) : error;
    }
  }

  /** A command of the transaction state answered by one status line (checked before it is built). */
  private transaction(what: string, command: () => Command): Promise<string> {
    this.channel.assertState('transaction', what);
    return this.channel.single(command(), 'transaction', this.timeouts.commandMs);
  }

  /** A reply that does not parse ends the session: it is not POP3 as we know it. */
  private parse<T>(fn: () => T, what: string): T {
    try {
      return fn();
    } catch (error) {
      const message = describeError(error);
      throw this.channel.failWith(new Pop3Error('PROTOCOL_ERROR', `${what}: ${message}`, { phase: 'transaction', cause: error }));
    }
  }
}
