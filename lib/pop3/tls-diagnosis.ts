/**
 * TLS failures a person can act on: the error for a handshake that failed and for a certificate
 * that was not verified, each with the likely fix (`Pop3Error.hint`) and, for a certificate,
 * what was presented (`peerCertificate`, with its SHA-256 fingerprint). Pure: facts in, error out.
 */
import { Pop3Error, type PeerCertificate, type Pop3Phase } from './errors.js';

/** OpenSSL's verdicts that mean "no trusted issuer": trusting the right CA fixes them. */
const UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
]);

/** A handshake that failed before any certificate was judged (e.g. TLS to a plaintext port). */
export function handshakeError(err: Error & { code?: string }, host: string, port: number, phase: Pop3Phase): Pop3Error {
  const code = err.code ?? '';
  const tlsPhase = phase === 'stls' ? 'stls' : 'tls';
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number/i.test(err.message)) {
    return new Pop3Error('TLS_FAILED', `TLS with ${host}:${port} failed: the server answered in plaintext, not TLS (wrong version number)`, {
      phase: tlsPhase,
      cause: err,
      hint:
        tlsPhase === 'tls'
          ? `port ${port} speaks plain POP3: use pop3://${host}:${port} (STLS), or the implicit-TLS port (usually 995) with pop3s://`
          : undefined,
    });
  }
  return new Pop3Error('TLS_FAILED', `TLS with ${host}:${port} failed: ${err.message}${code ? ` (${code})` : ''}`, { phase: tlsPhase, cause: err });
}

/**
 * The server's certificate was not verified (`reason`: OpenSSL's or Node's code); `name`: the
 * name it was checked against (the servername option, else the host).
 */
export function unverifiedCertificateError(
  reason: string,
  endpoint: { host: string; port: number; name: string },
  phase: Pop3Phase,
  peer: PeerCertificate | undefined,
): Pop3Error {
  const { host, port, name } = endpoint;
  const fingerprint = peer?.fingerprint256 === undefined ? '' : ` SHA-256 fingerprint ${peer.fingerprint256}`;
  const what = `${peer?.subject === undefined ? 'certificate' : `certificate "${peer.subject}"`}${fingerprint}`;
  let hint: string | undefined;
  if (UNTRUSTED.has(reason)) {
    hint = `if you trust it, pass the CA that signed it as --ca FILE (PEM; for a self-signed certificate, the certificate itself)`;
  } else if (reason === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    hint = `the certificate is not for "${name}": connect by a name it holds, or give that name with --servername NAME`;
  } else if (reason === 'CERT_HAS_EXPIRED') {
    hint = `it expired${peer?.validTo === undefined ? '' : ` on ${peer.validTo}`}: the server must renew it`;
  }
  return new Pop3Error('TLS_FAILED', `TLS with ${host}:${port} failed: the server's ${what} is not verified for "${name}" (${reason})`, {
    phase: phase === 'stls' ? 'stls' : 'tls',
    hint,
    ...(peer === undefined ? {} : { peerCertificate: peer }),
  });
}
