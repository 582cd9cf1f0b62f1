// A POP3 peer that knows nothing, for tests of the scriptable POP3 server
// (script-server-*.test.ts): raw sockets, bytes on the wire are what is checked.
import net from 'node:net';
import tls from 'node:tls';
import { expect } from 'vitest';
import type { Pop3TestServer } from './script-server.js';

const READ_TIMEOUT_MS = 3_000;
export const SILENCE_WINDOW_MS = 300;
const TERMINATOR = Buffer.from('\r\n.\r\n', 'latin1');

/** A POP3 peer that knows nothing: it sends what it is told and hands back raw bytes. */
export class RawClient {
  private buffer: Buffer = Buffer.alloc(0);
  private ended = false;
  private wake: (() => void) | undefined;

  private constructor(public socket: net.Socket) {
    this.attach(socket);
  }

  static async connect(server: Pop3TestServer, tlsOptions?: tls.ConnectionOptions): Promise<RawClient> {
    const socket = server.implicitTls
      ? tls.connect({ host: server.host, port: server.port, servername: 'localhost', ...tlsOptions })
      : net.connect({ host: server.host, port: server.port });
    await new Promise<void>((resolve, reject) => {
      socket.once(server.implicitTls ? 'secureConnect' : 'connect', () => resolve());
      socket.once('error', reject);
    });
    return new RawClient(socket);
  }

  private readonly onData = (chunk: Buffer): void => {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    this.wake?.();
  };
  private readonly onEnd = (): void => {
    this.ended = true;
    this.wake?.();
  };

  private attach(socket: net.Socket): void {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', () => undefined);
  }

  private async waitFor(found: () => number, timeoutMs: number): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const end = found();
      if (end >= 0) {
        const out = this.buffer.subarray(0, end);
        this.buffer = this.buffer.subarray(end);
        return out;
      }
      if (this.ended) throw new Error(`connection closed; unread: ${JSON.stringify(this.buffer.toString('latin1'))}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; unread: ${JSON.stringify(this.buffer.toString('latin1'))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  /** One line, without CRLF. */
  async readLine(timeoutMs = READ_TIMEOUT_MS): Promise<string> {
    const raw = await this.waitFor(() => {
      const i = this.buffer.indexOf('\r\n');
      return i < 0 ? -1 : i + 2;
    }, timeoutMs);
    return raw.subarray(0, raw.length - 2).toString('latin1');
  }

  /** A whole multi-line response as raw bytes, status line through CRLF.CRLF. */
  async readMultilineRaw(timeoutMs = READ_TIMEOUT_MS): Promise<Buffer> {
    return this.waitFor(() => {
      const statusEnd = this.buffer.indexOf('\r\n');
      if (statusEnd < 0) return -1;
      // The status line's CRLF is the first half of the terminator of an empty body.
      const i = this.buffer.indexOf(TERMINATOR, statusEnd);
      return i < 0 ? -1 : i + TERMINATOR.length;
    }, timeoutMs);
  }

  /** A multi-line response: the status line and the dot-unstuffed lines. */
  async readMultiline(): Promise<{ status: string; lines: string[] }> {
    const text = (await this.readMultilineRaw()).toString('latin1');
    const lines = text.split('\r\n').slice(0, -2); // drop the '.' and the empty tail
    const status = lines.shift() ?? '';
    return { status, lines: lines.map((l) => (l.startsWith('.') ? l.slice(1) : l)) };
  }

  /** Whatever arrives until the server closes. */
  async readToEnd(timeoutMs = READ_TIMEOUT_MS): Promise<Buffer> {
    return this.waitFor(() => (this.ended ? this.buffer.length : -1), timeoutMs);
  }

  send(text: string): void {
    this.socket.write(text);
  }

  async command(line: string): Promise<string> {
    this.send(`${line}\r\n`);
    return this.readLine();
  }

  async expectSilence(ms = SILENCE_WINDOW_MS): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    expect(this.buffer.toString('latin1')).toBe('');
    expect(this.ended).toBe(false);
  }

  /** Bytes received and not yet read. */
  get unread(): string {
    return this.buffer.toString('latin1');
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** The client half of STLS: after +OK, a TLS handshake on the same socket. */
  async upgrade(ca: string): Promise<void> {
    expect(this.buffer.length).toBe(0);
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    const secure = tls.connect({ socket: this.socket, ca, servername: 'localhost' });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    });
    this.socket = secure;
    this.attach(secure);
  }

  close(): void {
    this.socket.destroy();
  }
}
