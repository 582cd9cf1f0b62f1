/**
 * The socket under the session: dialling (plain TCP or implicit TLS), the TLS options, the STLS
 * upgrade of a connected socket and the check that nothing was injected before it, the details
 * of a TLS session, and socket errors mapped to typed errors.
 */
import net from 'node:net';
import tls from 'node:tls';
import { matchesPin, parseFingerprint } from './certificate-pin.js';
import { Pop3Error, type Pop3Phase } from './errors.js';
import { handshakeError, unverifiedCertificateError } from './tls-diagnosis.js';

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
  /**
   * SHA-256 fingerprints of the server's certificate (the form `popdrain check` prints; several
   * for a rotation). When given, the leaf certificate must match one of them, and this pin
   * replaces verification by CA (a self-signed certificate is then accepted): the check runs
   * right after the handshake, before a byte of the session is read or sent.
   */
  fingerprints?: readonly string[];
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
  /** The certificate matched a pinned fingerprint (`Pop3TlsOptions.fingerprints`). */
  pinned?: boolean;
}

/** Sockets whose certificate matched a pin: `describeTls` reports them as pinned. */
const pinnedSockets = new WeakSet<net.Socket>();

/** The pins as bytes; a pin that is not a SHA-256 fingerprint is refused before dialling. */
function pinsOf(t: Pop3TlsOptions | undefined, phase: Pop3Phase): Buffer[] | undefined {
  if (t?.fingerprints === undefined || t.fingerprints.length === 0) return undefined;
  return t.fingerprints.map((f) => {
    const pin = parseFingerprint(f);
    if (pin === undefined) {
      throw new Pop3Error('TLS_FAILED', `"${f}" is not a SHA-256 certificate fingerprint (64 hex digits, colons optional)`, { phase });
    }
    return pin;
  });
}

/** After the handshake: the pinned certificate check, or undefined when the session may go on. */
function pinFailure(socket: tls.TLSSocket, pins: Buffer[] | undefined, phase: Pop3Phase, host: string, port: number): Pop3Error | undefined {
  if (pins === undefined) return undefined;
  const presented = socket.getPeerCertificate().fingerprint256;
  if (matchesPin(presented, pins)) {
    pinnedSockets.add(socket);
    return undefined;
  }
  return new Pop3Error(
    'TLS_FAILED',
    `TLS with ${host}:${port} failed: the certificate's SHA-256 fingerprint ${presented ?? '(none)'} matches no pinned fingerprint`,
    { phase },
  );
}

export interface Endpoint {
  host: string;
  port: number;
  tlsOptions: Pop3TlsOptions | undefined;
  /** The session's failure, when it failed (an abort): reported instead of a bare close. */
  failure(): Pop3Error | undefined;
}

export function tlsConnectOptions(host: string, t: Pop3TlsOptions = {}): tls.ConnectionOptions {
  const servername = t.servername ?? (net.isIP(host) === 0 ? host : undefined);
  const pinned = t.fingerprints !== undefined && t.fingerprints.length > 0;
  const opts: tls.ConnectionOptions = {
    minVersion: t.minVersion ?? 'TLSv1.2',
    // A pin replaces verification by CA: the handshake goes on and pinFailure decides.
    rejectUnauthorized: pinned ? false : (t.rejectUnauthorized ?? true),
  };
  if (servername !== undefined) opts.servername = servername;
  if (t.ca !== undefined) opts.ca = t.ca;
  return opts;
}

/**
 * Node verifies the certificate (chain and host name) either way; with `rejectUnauthorized`
 * it destroys the socket first, and what was presented is lost. So the handshake runs without
 * it and this check refuses an unverified session before anything is read or written on it,
 * with the certificate in the error. Undefined when the session may be used.
 */
function refuseUnverified(socket: tls.TLSSocket, endpoint: Endpoint, phase: Pop3Phase): Pop3Error | undefined {
  if (socket.authorized || endpoint.tlsOptions?.rejectUnauthorized === false) return undefined;
  const info = describeTls(socket);
  const peer =
    info?.fingerprint256 === undefined
      ? undefined
      : { subject: info.peerSubject, issuer: info.peerIssuer, validFrom: info.validFrom, validTo: info.validTo, fingerprint256: info.fingerprint256 };
  const endpointName = { host: endpoint.host, port: endpoint.port, name: endpoint.tlsOptions?.servername ?? endpoint.host };
  return unverifiedCertificateError(String(socket.authorizationError ?? 'UNKNOWN'), endpointName, phase, peer);
}

/**
 * After the handshake, before a byte is read or written: a pinned fingerprint replaces
 * verification by CA (as fetchmail's sslfingerprint and mpop's tls_fingerprint do); without pins,
 * the chain and host name must verify.
 */
function verifyPeer(socket: tls.TLSSocket, endpoint: Endpoint, pins: Buffer[] | undefined, phase: Pop3Phase): Pop3Error | undefined {
  if (pins !== undefined) return pinFailure(socket, pins, phase, endpoint.host, endpoint.port);
  return refuseUnverified(socket, endpoint, phase);
}

/** The options of `tls.connect`: verification is verifyPeer's (see there). */
function handshakeOptions(endpoint: Endpoint): tls.ConnectionOptions {
  return { ...tlsConnectOptions(endpoint.host, endpoint.tlsOptions), rejectUnauthorized: false };
}

/**
 * Connect (and, for implicit TLS, complete the handshake) within `timeoutMs`. `onSocket` gets
 * the socket at once, so a failure of the session while connecting can destroy it.
 */
export function dial(
  endpoint: Endpoint,
  implicit: boolean,
  timeoutMs: number,
  onSocket: (socket: net.Socket) => void,
): Promise<net.Socket | tls.TLSSocket> {
  const { host, port } = endpoint;
  const pins = implicit ? pinsOf(endpoint.tlsOptions, 'tls') : undefined;
  return new Promise((resolve, reject) => {
    let settled = false;
    const socket = implicit ? tls.connect({ host, port, ...handshakeOptions(endpoint) }) : net.connect({ host, port });
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
    const onConnect = (): void => done(implicit ? verifyPeer(socket as tls.TLSSocket, endpoint, pins, 'tls') : undefined);
    // fail() (an abort) destroys the socket without an error: it emits 'close' only.
    const onClose = (): void =>
      done(
        endpoint.failure() ??
          new Pop3Error('CONNECTION_CLOSED', `connection to ${host}:${port} closed while connecting`, { phase: 'connect' }),
      );
    const timer = setTimeout(
      () =>
        done(
          new Pop3Error('CONNECT_TIMEOUT', `connecting to ${host}:${port} took longer than ${timeoutMs} ms`, {
            phase: 'connect',
          }),
        ),
      timeoutMs,
    );
    socket.once('error', onError);
    socket.once('close', onClose);
    socket.once(implicit ? 'secureConnect' : 'connect', onConnect);
    onSocket(socket);
  });
}

/**
 * After +OK to STLS and before the handshake, anything the server sent would be injected into
 * the TLS session's stream (CVE-2011-0411 style): refuse it.
 */
export function refuseBytesBeforeHandshake(bufferedBytes: number): void {
  if (bufferedBytes > 0) {
    throw new Pop3Error('PROTOCOL_ERROR', 'server sent data after +OK to STLS, before the TLS handshake', {
      phase: 'stls',
    });
  }
}

/**
 * The STLS handshake on a connected plain socket, within `timeoutMs`. `isCurrent` says whether
 * the plain socket is still the session's: when it closes while it is, the handshake ends.
 */
export function upgradeToTls(
  plain: net.Socket,
  endpoint: Endpoint,
  timeoutMs: number,
  isCurrent: (socket: net.Socket) => boolean,
): Promise<tls.TLSSocket> {
  const { host, port } = endpoint;
  const pins = pinsOf(endpoint.tlsOptions, 'stls');
  return new Promise<tls.TLSSocket>((resolve, reject) => {
    const secureSocket = tls.connect({ socket: plain, ...handshakeOptions(endpoint) });
    const timer = setTimeout(() => {
      secureSocket.destroy();
      reject(
        new Pop3Error('CONNECT_TIMEOUT', `STLS handshake took longer than ${timeoutMs} ms`, {
          phase: 'stls',
        }),
      );
    }, timeoutMs);
    // fail() (an abort) destroys the plain socket without an error: the TLS socket then
    // emits 'close' only. Settle on it rather than waiting for the timer.
    const onClose = (): void => {
      clearTimeout(timer);
      reject(
        endpoint.failure() ??
          new Pop3Error('CONNECTION_CLOSED', `${host}:${port} closed the connection during the STLS handshake`, {
            phase: 'stls',
          }),
      );
    };
    secureSocket.once('secureConnect', () => {
      clearTimeout(timer);
      secureSocket.removeAllListeners('error');
      secureSocket.removeListener('close', onClose);
      const refusal = verifyPeer(secureSocket, endpoint, pins, 'stls');
      if (refusal === undefined) {
        resolve(secureSocket);
        return;
      }
      secureSocket.on('error', () => undefined);
      secureSocket.destroy();
      reject(refusal);
    });
    secureSocket.once('error', (err) => {
      clearTimeout(timer);
      secureSocket.destroy();
      reject(mapSocketError(err, 'stls', host, port));
    });
    secureSocket.once('close', onClose);
    plain.once('close', () => isCurrent(plain) && secureSocket.destroy());
  });
}

/** Details of the TLS session, or undefined on a plaintext connection. */
export function describeTls(s: net.Socket | undefined): TlsInfo | undefined {
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
  if (pinnedSockets.has(s)) info.pinned = true;
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

export function mapSocketError(err: Error & { code?: string }, phase: Pop3Phase, host: string, port: number): Pop3Error {
  const code = err.code ?? '';
  if (code.startsWith('ERR_TLS') || code.includes('CERT') || code.startsWith('ERR_SSL') || /SSL|TLS|certificate/i.test(err.message)) {
    return handshakeError(err, host, port, phase);
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
