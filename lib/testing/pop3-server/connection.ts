/**
 * One client connection: writes, pull-based line reads, the log of what was received, the ways
 * it can close (FIN, destroy, reset, linger after the session), and the STLS upgrade.
 */
import type net from 'node:net';
import tls from 'node:tls';
import { redactCommand } from './command-line.js';
import { ConnectionClosedError, isConnectionError } from './errors.js';
import type { ScriptedConnection } from './hooks.js';
import { BODY_WRITE_CHUNK_BYTES, CLOSE_LINGER_MS, STLS_HANDSHAKE_TIMEOUT_MS } from './limits.js';
import { LineReader } from './line-reader.js';
import type { ServerContext } from './server-context.js';
import { awaitTlsHandshake, wrapServerTls } from './tls.js';
import { multilineText } from './wire.js';

export class Connection implements ScriptedConnection {
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
    await this.write(multilineText(status, lines));
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
    const secure = wrapServerTls(this.rawSocket, secureContext);
    this.socket = secure;
    this.reader = new LineReader(secure);
    this.isTls = true;
    this.watch(secure);
    await awaitTlsHandshake(secure, STLS_HANDSHAKE_TIMEOUT_MS);
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
