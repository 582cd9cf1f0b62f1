/**
 * Line reading, pull-based, so bytes the session has not asked for stay in the socket (and can be
 * dropped before a TLS upgrade).
 */
import type net from 'node:net';
import { CommandLineTooLongError, ReadLineTimeoutError } from './errors.js';
import { MAX_COMMAND_LINE_BYTES } from './limits.js';
import { CR_BYTE, LF_BYTE } from './wire.js';

export class LineReader {
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
