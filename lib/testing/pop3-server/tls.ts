/**
 * TLS: implicit TLS from the first byte (port 995 style) and the server side of STLS (RFC 2595).
 */
import type net from 'node:net';
import tls from 'node:tls';
import { ConnectionClosedError } from './errors.js';
import type { ScriptedConnection } from './hooks.js';
import type { Pop3ServerFeatures, Pop3ServerOptions } from './options.js';

type TlsOption = NonNullable<Pop3ServerOptions['tls']>;

export function createSecureContext(options: TlsOption): tls.SecureContext {
  return tls.createSecureContext({ key: options.key, cert: options.cert });
}

/**
 * A server that speaks TLS from the first byte; `onSession` gets the TLS socket and the TCP
 * socket under it once the handshake is done.
 */
export function createImplicitTlsListener(
  options: TlsOption,
  onSession: (socket: tls.TLSSocket, raw: net.Socket) => void,
  log: ((line: string) => void) | undefined,
): tls.Server {
  const tlsServer = tls.createServer({ key: options.key, cert: options.cert });
  tlsServer.on('secureConnection', (socket: tls.TLSSocket) => {
    const raw = (socket as unknown as { _parent?: net.Socket })._parent ?? socket;
    onSession(socket, raw);
  });
  tlsServer.on('tlsClientError', (err) => log?.(`TLS handshake failed: ${err.message}`));
  return tlsServer;
}

/** The server side of a TLS session over an open plaintext socket (after `+OK` to STLS). */
export function wrapServerTls(raw: net.Socket, secureContext: tls.SecureContext): tls.TLSSocket {
  return new tls.TLSSocket(raw, { isServer: true, secureContext });
}

/** Resolves when the handshake is done; rejects on a TLS error, a close, or after `timeoutMs`. */
export function awaitTlsHandshake(secure: tls.TLSSocket, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      done();
      secure.destroy();
      reject(new Error(`TLS handshake not finished within ${timeoutMs} ms`));
    }, timeoutMs);
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
}

/** What STLS needs of the connection besides what scripts see. */
interface StlsConnection extends ScriptedConnection {
  discardPendingInput(): number;
  log(text: string): void;
}

/**
 * The STLS command: refused when TLS is active or not offered; otherwise pipelined input is
 * dropped, `+OK` sent and the handshake run. Returns true once the connection uses TLS.
 */
export async function answerStls(
  conn: StlsConnection,
  features: Required<Pop3ServerFeatures>,
  secureContext: tls.SecureContext | undefined,
): Promise<boolean> {
  if (conn.tls) {
    await conn.writeLine('-ERR Command not permitted when TLS active');
    return false;
  }
  if (!features.stls || secureContext === undefined) {
    await conn.writeLine('-ERR STLS not available');
    return false;
  }
  // RFC 2595 section 4: the client must wait for +OK, so anything already received is dropped.
  const dropped = conn.discardPendingInput();
  if (dropped > 0) conn.log(`dropped ${dropped} bytes pipelined after STLS`);
  await conn.writeLine('+OK Begin TLS negotiation');
  await conn.startTls();
  return true;
}
