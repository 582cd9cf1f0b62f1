/**
 * The channel under a `Pop3Client` (pop3-client.ts): one socket, one queue of commands,
 * pipelined when the server allows it, and the dispatch of what the server sends to the command
 * waiting for it, and the teardown: any failure destroys the socket and rejects everything pending
 * with the one `Pop3Error`. Its clocks (signal, hard deadline, watchdog) are channel-watch.ts's.
 *
 * Beside it: transport.ts (socket, TLS, STLS), authenticate.ts (method choice and the
 * USER/APOP/SASL exchange), message-bodies.ts (RETR/TOP bodies, streamed or whole),
 * listing-collector.ts (CAPA/LIST/UIDL), pending.ts (a command waiting for its answer).
 */
import type net from 'node:net';
import type tls from 'node:tls';
import { answerChallenge, refuseChallenge, saslPending } from './authenticate.js';
import type { Pop3ClientOptions, Pop3Timeouts, Pop3TraceEvent } from './client-options.js';
import type { Command } from './command.js';
import { idlePhase, type ChannelState } from './channel-state.js';
import { ChannelWatch } from './channel-watch.js';
import { errorFromStatus, NO_RESPONSE_CODE_FACTS, Pop3Error, type Pop3Phase, type ResponseCodeFacts } from './errors.js';
import { LineTooLongError, ResponseFramer } from './framer.js';
import {
  BODY_HIGH_WATER_MARK_BYTES,
  DEFAULT_PIPELINE_WINDOW,
  limitExceeded,
  MAX_CHALLENGE_LINE_BYTES,
  MAX_LISTING_BYTES,
  MAX_LISTING_LINE_BYTES,
  MAX_STATUS_LINE_BYTES,
  RECEIVED_AHEAD_MAX_BYTES,
} from './limits.js';
import { ListingCollector } from './listing-collector.js';
import { MessageBodies, type MessageStream } from './message-bodies.js';
import { queued, type CommandPending, type Pending, type StreamPending } from './pending.js';
import { describeLine, MalformedResponseError, parseStatusLine } from './response.js';
import type { SaslSession } from './sasl/index.js';
import { toPop3Error } from './to-pop3-error.js';
import {
  describeTls,
  dial,
  mapSocketError,
  refuseBytesBeforeHandshake,
  upgradeToTls,
  type Endpoint,
  type TlsInfo,
} from './transport.js';

const noop = (): void => {};

function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(noop);
  return promise;
}

export class Pop3Channel {
  /** Set by the client as the session advances; 'closed' once it failed or was closed. */
  state: ChannelState = 'new';
  /** Whether pipelining is in use (advertised, allowed, and window > 1); set by the client. */
  pipelining = false;
  /** What CAPA said about response codes, for reading -ERR replies; set by the client. */
  responseCodes: ResponseCodeFacts = NO_RESPONSE_CODE_FACTS;
  private failureError: Pop3Error | undefined;
  private readonly framer: ResponseFramer;
  private readonly endpoint: Endpoint;
  private readonly bodies: MessageBodies;
  private socket: net.Socket | tls.TLSSocket | undefined;
  private readonly inflight: Pending[] = [];
  private readonly queue: CommandPending[] = [];
  private outgoing: string[] = [];
  private flushScheduled = false;
  private readonly watch: ChannelWatch;

  constructor(
    private readonly options: Pop3ClientOptions,
    server: Omit<Endpoint, 'failure'>,
    private readonly timeouts: Pop3Timeouts,
  ) {
    this.endpoint = { ...server, failure: () => this.failureError };
    this.watch = new ChannelWatch(options, timeouts, `${server.host}:${server.port}`, {
      head: () => this.inflight[0],
      idle: () => this.bodies.holdingBack || this.state === 'closed',
      readingBody: () => this.framer.readingBody,
      currentPhase: () => this.currentPhase(),
      fail: (error) => this.fail(error),
    });
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
          this.watch.touch();
          this.socket?.resume();
        },
      },
      options.bodyHighWaterMark ?? BODY_HIGH_WATER_MARK_BYTES,
      options.receivedAheadBytes ?? RECEIVED_AHEAD_MAX_BYTES,
    );
  }

  /** What ended the session, once it failed. */
  get failure(): Pop3Error | undefined {
    return this.failureError;
  }

  /** Details of the TLS session, or undefined on a plaintext connection. */
  tlsInfo(): TlsInfo | undefined {
    return describeTls(this.socket);
  }

  // ---------------------------------------------------------------------------------------
  // Connection

  /** Watch the caller's AbortSignal, then connect (implicit TLS or plain TCP). */
  async dial(implicit: boolean): Promise<void> {
    this.watch.start();
    this.state = 'connecting';
    const socket = await dial(this.endpoint, implicit, this.timeouts.connectMs, (s) => {
      this.socket = s; // so fail() during connect destroys it
    });
    this.attach(socket);
  }

  /** The greeting's text after +OK. */
  greeting(): Promise<string> {
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

  /** After +OK to STLS: the TLS handshake on this connection. Resolves with the TLS protocol. */
  async upgradeToTls(): Promise<string | null> {
    refuseBytesBeforeHandshake(this.framer.bufferedBytes);
    const plain = this.socket;
    if (plain === undefined) throw new Pop3Error('INVALID_STATE', 'no connection to upgrade', { phase: 'stls' });
    this.detach(plain);
    const upgraded = await upgradeToTls(plain, this.endpoint, this.timeouts.tlsUpgradeMs, (s) => this.socket === s);
    this.attach(upgraded);
    return upgraded.getProtocol();
  }

  private attach(socket: net.Socket): void {
    this.socket = socket;
    this.watch.connected();
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

  // ---------------------------------------------------------------------------------------
  // Queue and wire

  /** An AUTH exchange, lock-step, to its final status line. */
  sasl(session: SaslSession): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.enqueue(saslPending(session, this.timeouts.authMs, { resolve, reject, failWith: (e) => this.failWith(e) }));
    });
  }

  window(): number {
    return this.pipelining ? Math.max(1, this.options.pipelineWindow ?? DEFAULT_PIPELINE_WINDOW) : 1;
  }

  single(command: Command, phase: Pop3Phase, timeoutMs: number): Promise<string> {
    return handled(
      new Promise<string>((resolve, reject) => {
        this.enqueue({ kind: 'status', command, ...queued(phase, timeoutMs), onOk: resolve, onErr: reject });
      }),
    );
  }

  /** A multi-line listing, collected; `responseMs`: the limit on the whole response. */
  listing(command: Command, phase: Pop3Phase, responseMs: number): Promise<Buffer> {
    return handled(
      new Promise<Buffer>((resolve, reject) => {
        this.enqueue({
          kind: 'listing',
          command,
          ...queued(phase, this.timeouts.commandMs, responseMs),
          collector: new ListingCollector(
            { maxBytes: this.options.maxListingBytes ?? MAX_LISTING_BYTES, maxLineBytes: MAX_LISTING_LINE_BYTES },
            phase,
            command.logForm,
          ),
          onListing: resolve,
          onErr: reject,
        });
      }),
    );
  }

  /**
   * RETR/TOP n; `collectSize`: receive the body whole (it should be this large), unless it runs
   * well past that; `responseMs`: the limit on the whole response (0: inactivity only).
   */
  stream(command: Command, n: number, collectSize?: number, responseMs = 0): { pending: StreamPending; promise: Promise<MessageStream> } {
    let settle: { deliver(m: MessageStream): void; reject(e: Pop3Error): void } | undefined;
    const promise = new Promise<MessageStream>((resolve, reject) => {
      settle = { deliver: resolve, reject };
    });
    const pending: StreamPending = {
      kind: 'stream',
      command,
      ...queued('transaction', this.timeouts.commandMs, responseMs),
      messageNumber: n,
      collectSize,
      body: undefined,
      discard: false,
      held: 0,
      deliver: (m) => settle?.deliver(m),
      onErr: (e) => settle?.reject(e),
    };
    this.enqueue(pending);
    return { pending, promise: handled(promise) };
  }

  /** The consumer took this message received whole: its bytes no longer count against `receivedAheadBytes`. */
  claim(pending: StreamPending): void {
    this.bodies.claim(pending);
  }

  /** Bytes held for the consumer: messages received whole and not claimed, and the one being received. */
  get heldBytes(): number {
    return this.bodies.heldBytes;
  }

  cancelStream(pending: StreamPending): void {
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
      pending.onErr(this.failureError ?? new Pop3Error('INVALID_STATE', 'connection is closed', { phase: pending.phase }));
      return;
    }
    if (this.failureError !== undefined) {
      pending.onErr(this.failureError);
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
      this.watch.touch();
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
    this.watch.touch();
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
      const error = errorFromStatus(status.text, status.responseCode, head.phase, logForm, this.responseCodes);
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
    if (next !== undefined) next.waitingSince = this.watch.lastActivity;
    if (this.queue.length > 0) this.pump();
  }

  // ---------------------------------------------------------------------------------------
  // Errors, teardown

  private readonly onSocketError = (err: Error): void => {
    this.fail(mapSocketError(err, this.currentPhase(), this.endpoint.host, this.endpoint.port));
  };
  private readonly onSocketClose = (): void => {
    if (this.state === 'closed') return;
    const head = this.inflight[0];
    if (head === undefined && this.queue.length === 0) {
      // Closed while idle: not an error yet; the next command reports it.
      this.state = 'closed';
      this.failureError = new Pop3Error('CONNECTION_CLOSED', `${this.endpoint.host}:${this.endpoint.port} closed the connection`, {
        phase: this.currentPhase(),
      });
      this.cleanup(this.failureError);
      return;
    }
    const what = head?.command?.logForm ?? 'the greeting';
    const where = this.framer.readingBody ? `in the middle of the response to ${what}` : `while waiting for the answer to ${what}`;
    this.fail(
      new Pop3Error('CONNECTION_CLOSED', `${this.endpoint.host}:${this.endpoint.port} closed the connection ${where}`, {
        phase: head?.phase ?? this.currentPhase(),
        command: head?.command?.logForm,
      }),
    );
  };

  /** Close the connection without QUIT: the server rolls back deletions. */
  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.cleanup(new Pop3Error('INVALID_STATE', 'connection closed by the client', { phase: this.currentPhase() }));
  }

  fail(error: Pop3Error): void {
    if (this.state === 'closed' && this.failureError !== undefined) return;
    this.failureError = error;
    this.state = 'closed';
    this.cleanup(error);
  }

  failWith(error: Pop3Error): Pop3Error {
    this.fail(error);
    return error;
  }

  private cleanup(error: Pop3Error): void {
    this.watch.stop();
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

  currentPhase(): Pop3Phase {
    return this.inflight[0]?.phase ?? idlePhase(this.state);
  }

  assertState(expected: ChannelState, what: string): void {
    if (this.state === expected) return;
    if (this.failureError !== undefined) throw this.failureError;
    throw new Pop3Error('INVALID_STATE', `${what} is not allowed in state ${this.state}`, { phase: this.currentPhase() });
  }

  private trace(direction: Pop3TraceEvent['direction'], line: string): void {
    this.options.trace?.({ direction, line });
  }

  traceInfo(line: string): void {
    this.trace('info', line);
  }
}
