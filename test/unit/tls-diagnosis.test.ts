import { describe, expect, it } from 'vitest';
import { handshakeError, unverifiedCertificateError } from '../../lib/pop3/tls-diagnosis.js';

const peer = { subject: 'CN=mail.example.com', issuer: 'CN=Private CA', validTo: 'Jan  1 00:00:00 2030 GMT', fingerprint256: 'AB:CD' };
const at = { host: '10.0.0.5', port: 995, name: 'mail.example.com' };

describe('TLS errors with the likely fix', () => {
  it('TLS to a plaintext port: says so in words, and suggests pop3:// or the TLS port', () => {
    const raw = Object.assign(new Error('C0:1E:error:0A00010B:SSL routines:ssl3_get_record:wrong version number'), { code: 'ERR_SSL_WRONG_VERSION_NUMBER' });
    const e = handshakeError(raw, 'mail.example.com', 110, 'tls');
    expect(e).toMatchObject({ code: 'TLS_FAILED', phase: 'tls' });
    expect(e.message).toContain('answered in plaintext');
    expect(e.message).not.toContain('ssl3_get_record');
    expect(e.hint).toBe('port 110 speaks plain POP3: use pop3://mail.example.com:110 (STLS), or the implicit-TLS port (usually 995) with pop3s://');
    // Any other handshake failure keeps its text and has no hint it cannot back.
    const other = handshakeError(Object.assign(new Error('handshake failure'), { code: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE' }), 'h', 995, 'stls');
    expect(other).toMatchObject({ phase: 'stls', hint: undefined });
    expect(other.message).toContain('handshake failure');
  });

  it('an untrusted certificate: its fingerprint in the message and --ca in the hint', () => {
    for (const reason of ['DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN']) {
      const e = unverifiedCertificateError(reason, at, 'tls', peer);
      expect(e.message).toContain('SHA-256 fingerprint AB:CD');
      expect(e.hint).toContain('--ca FILE');
      expect(e.peerCertificate).toEqual(peer);
    }
  });

  it('a certificate for another name, and an expired one, each get their own fix', () => {
    const name = unverifiedCertificateError('ERR_TLS_CERT_ALTNAME_INVALID', { ...at, name: 'wrong.example' }, 'stls', peer);
    expect(name).toMatchObject({ phase: 'stls' });
    expect(name.hint).toContain('--servername');
    expect(name.message).toContain('"wrong.example"');
    expect(unverifiedCertificateError('CERT_HAS_EXPIRED', at, 'tls', peer).hint).toBe('it expired on Jan  1 00:00:00 2030 GMT: the server must renew it');
    expect(unverifiedCertificateError('SOMETHING_ELSE', at, 'tls', undefined).hint).toBeUndefined();
  });
});
