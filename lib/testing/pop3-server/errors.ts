/** The errors of a scripted connection, and which errors only mean "the connection is gone". */
import { MAX_COMMAND_LINE_BYTES } from './limits.js';

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

/** True for errors that end a session quietly; anything else is recorded as unexpected. */
export function isConnectionError(err: unknown): boolean {
  if (err instanceof ConnectionClosedError || err instanceof ReadLineTimeoutError) return true;
  if (err instanceof CommandLineTooLongError) return true;
  // Socket, stream and TLS errors: ECONNRESET, EPIPE, ERR_STREAM_DESTROYED, ERR_SSL_..., ...
  // (not ERR_ASSERTION and the like: a failing assertion in a hook is a real error).
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(?:E[A-Z]+$|ERR_(?:STREAM|SSL|TLS|SOCKET)_)/.test(code);
}
