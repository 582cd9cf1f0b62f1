// The POP3 client against a real Dovecot (testkit/pop3-servers/dovecot.ts), on loopback only:
// the transports (implicit TLS, STLS, certificate checks) and every authentication method.
// One Dovecot for the file (test/support/pop3-dovecot-session.ts); each test has its own users.
// If Dovecot cannot start, beforeAll throws and every test here fails (never skips).
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { AuthMethod, Pop3Credentials } from '../../lib/pop3/index.js';
import { servedBytes } from '../support/dovecot-served-form.js';
import { expectPop3Error } from '../support/expect-pop3-error.js';
import {
  connect,
  dovecot,
  implicitTls,
  newUser,
  setUpDovecotSessions,
  startTls,
} from '../support/pop3-dovecot-session.js';

const SASL_MECHANISMS = ['CRAM-MD5', 'LOGIN', 'OAUTHBEARER', 'PLAIN', 'SCRAM-SHA-1', 'SCRAM-SHA-256', 'XOAUTH2'];

setUpDovecotSessions();

// ---------------------------------------------------------------------------------------------

describe('transports', () => {
  const PASSWORD = 'tls-user-password';
  const MESSAGE = 'Subject: tls\n\nover TLS\n';
  const tlsUser = (): Promise<string> => newUser('tls', PASSWORD, [MESSAGE]);

  it('implicit TLS (pop3s) verifies the certificate and negotiates TLS 1.2 or later', async () => {
    const user = await tlsUser();
    const client = await connect(implicitTls());
    const info = client.tlsInfo();
    expect(info?.protocol).toMatch(/^TLSv1\.[23]$/);
    expect(info?.authorized).toBe(true);
    expect(info?.authorizationError).toBeUndefined();
    expect(info?.peerSubject).toBe('CN=localhost');
    expect(info?.peerIssuer).toBe('CN=popdrain test CA');
    await client.login({ user, password: PASSWORD });
    expect(await client.stat()).toEqual({ count: 1, size: servedBytes(Buffer.from(MESSAGE)).length });
    await client.quit();
  });

  it('STLS on the plain port upgrades before login and re-reads CAPA afterwards', async () => {
    const user = await tlsUser();
    const client = await connect(startTls());
    const info = client.tlsInfo();
    expect(info?.protocol).toMatch(/^TLSv1\.[23]$/);
    expect(info?.authorized).toBe(true);
    // Dovecot no longer lists STLS once TLS is on: the capabilities are the post-STLS ones.
    expect(client.capabilities.has('STLS')).toBe(false);
    expect(client.capabilities.has('PIPELINING')).toBe(true);
    await client.login({ user, password: PASSWORD });
    expect((await client.stat()).count).toBe(1);
    await client.quit();
  });

  it('refuses a certificate from an untrusted CA, over implicit TLS and STLS alike', async () => {
    const ca = dovecot.pki.untrustedCaCertPem;
    const implicit = await expectPop3Error(
      connect(implicitTls({ tlsOptions: { ca, servername: 'localhost' } })),
      'TLS_FAILED',
    );
    expect(implicit.phase).toBe('tls');
    expect(implicit.retryable).toBe(false);
    const stls = await expectPop3Error(connect(startTls({ tlsOptions: { ca, servername: 'localhost' } })), 'TLS_FAILED');
    expect(stls.phase).toBe('stls');
    // Node's bundled roots alone (no `ca`) do not trust the private CA either.
    await expectPop3Error(connect({ host: dovecot.host, port: dovecot.ports.pop3s, tls: 'implicit' }), 'TLS_FAILED');
  });

  it('refuses a certificate that does not name the host, over implicit TLS and STLS alike', async () => {
    const tlsOptions = { ca: dovecot.pki.caCertPem, servername: 'wrong.example' };
    const implicit = await expectPop3Error(connect(implicitTls({ tlsOptions })), 'TLS_FAILED');
    expect(implicit.phase).toBe('tls');
    expect(implicit.message).toMatch(/wrong\.example/);
    const stls = await expectPop3Error(connect(startTls({ tlsOptions })), 'TLS_FAILED');
    expect(stls.phase).toBe('stls');
  });

  it('STLS works on the 127.0.0.2 listener, verifying the IP address in the certificate', async () => {
    const user = await tlsUser();
    // No servername: the certificate is checked against the IP address 127.0.0.2.
    const client = await connect({
      host: dovecot.altHost,
      port: dovecot.ports.pop3Alt,
      tls: 'starttls',
      tlsOptions: { ca: dovecot.pki.caCertPem },
    });
    expect(client.tlsInfo()?.protocol).toMatch(/^TLSv1\.[23]$/);
    expect(client.tlsInfo()?.authorized).toBe(true);
    // After STLS Dovecot offers the plaintext methods it withheld before.
    expect(client.capabilities.has('USER')).toBe(true);
    await client.login({ user, password: PASSWORD }, { mechanism: 'USER' });
    expect((await client.stat()).count).toBe(1);
    await client.quit();
  });

  it('Dovecot itself refuses USER/PASS in plaintext on the 127.0.0.2 listener', async () => {
    const user = await tlsUser();
    const client = await connect({ host: dovecot.altHost, port: dovecot.ports.pop3Alt, tls: 'insecure-plaintext' });
    expect(client.tlsInfo()).toBeUndefined();
    // Before STLS, Dovecot hides USER and the plaintext SASL mechanisms here.
    expect(client.capabilities.has('USER')).toBe(false);
    expect(client.capabilities.sasl).not.toContain('PLAIN');
    expect(client.capabilities.has('STLS')).toBe(true);
    const error = await expectPop3Error(
      client.login({ user, password: PASSWORD }, { mechanism: 'USER' }),
      'AUTH_FAILED',
    );
    // The refusal is the server's answer, not the client's.
    expect(error.phase).toBe('auth');
    expect(error.responseCode).toBe('AUTH');
    expect(error.serverText).toMatch(/plaintext authentication disallowed/i);
    expect(error.message).not.toContain(PASSWORD);
  });
});

// ---------------------------------------------------------------------------------------------

describe('authentication', () => {
  // Non-ASCII and a space: every mechanism must encode the password the same way Dovecot does.
  const PASSWORD = 'Sésame, ouvre-toi 7';
  const MESSAGE = 'Subject: auth\n\nhello\n';
  /** A user with the password, an OAuth2 token of its own and one message. */
  const authUser = async (): Promise<{ user: string; token: string }> => {
    const user = await newUser('auth', PASSWORD, [MESSAGE]);
    const token = `${user}-token-${randomBytes(12).toString('hex')}`;
    dovecot.addOAuthToken(user, token);
    return { user, token };
  };

  it('Dovecot offers exactly the methods tested here', async () => {
    const client = await connect(implicitTls());
    expect([...client.capabilities.sasl].sort()).toEqual(SASL_MECHANISMS);
    expect(client.capabilities.has('USER')).toBe(true);
    expect(client.greeting).toMatch(/<[^<>@\s]+@[^<>\s]+>$/); // APOP timestamp
  });

  const methods: Array<[AuthMethod, 'password' | 'token']> = [
    ['PLAIN', 'password'],
    ['LOGIN', 'password'],
    ['CRAM-MD5', 'password'],
    ['SCRAM-SHA-1', 'password'],
    ['SCRAM-SHA-256', 'password'],
    ['APOP', 'password'],
    ['USER', 'password'],
    ['XOAUTH2', 'token'],
    ['OAUTHBEARER', 'token'],
  ];
  for (const [mechanism, kind] of methods) {
    it(`logs in with ${mechanism}`, async () => {
      const { user, token } = await authUser();
      const client = await connect(implicitTls());
      const credentials: Pop3Credentials =
        kind === 'password' ? { user, password: PASSWORD } : { user, accessToken: token };
      await client.login(credentials, { mechanism });
      expect(client.authMethod).toBe(mechanism);
      expect(await client.stat()).toEqual({ count: 1, size: servedBytes(Buffer.from(MESSAGE)).length });
      await client.quit();
    });
  }

  it("'auto' picks PLAIN for a password under TLS and OAUTHBEARER for a token", async () => {
    const { user, token } = await authUser();
    const withPassword = await connect(implicitTls());
    await withPassword.login({ user, password: PASSWORD }, { mechanism: 'auto' });
    expect(withPassword.authMethod).toBe('PLAIN');
    expect((await withPassword.stat()).count).toBe(1);
    await withPassword.quit();

    const withToken = await connect(implicitTls());
    await withToken.login({ user, accessToken: token });
    expect(withToken.authMethod).toBe('OAUTHBEARER');
    expect((await withToken.stat()).count).toBe(1);
    await withToken.quit();
  });

  for (const mechanism of ['PLAIN', 'SCRAM-SHA-256', 'USER'] as const) {
    it(`a wrong password with ${mechanism} is AUTH_FAILED (phase auth, not retryable)`, async () => {
      const { user } = await authUser();
      const wrong = 'not-the-password';
      const client = await connect(implicitTls());
      const error = await expectPop3Error(client.login({ user, password: wrong }, { mechanism }), 'AUTH_FAILED');
      expect(error.phase).toBe('auth');
      expect(error.retryable).toBe(false);
      expect(error.message).not.toContain(wrong);
      // The connection stays in the authorization state: the right password still works.
      await client.login({ user, password: PASSWORD }, { mechanism });
      expect((await client.stat()).count).toBe(1);
      await client.quit();
    });
  }

  // Dovecot words the JSON error differently per mechanism: XOAUTH2 gets Google's HTTP-like
  // "401", OAUTHBEARER RFC 6750's "invalid_token".
  for (const [mechanism, status] of [
    ['XOAUTH2', '401'],
    ['OAUTHBEARER', 'invalid_token'],
  ] as const) {
    it(`an unregistered token with ${mechanism} is AUTH_FAILED`, async () => {
      const { user } = await authUser();
      const client = await connect(implicitTls());
      const error = await expectPop3Error(
        client.login({ user, accessToken: 'never-registered-token' }, { mechanism }),
        'AUTH_FAILED',
      );
      expect(error.phase).toBe('auth');
      expect(error.retryable).toBe(false);
      // Dovecot answers with a JSON error challenge first; the client reports its status.
      expect(error.message).toContain(`(status ${status})`);
      expect(error.message).not.toContain('never-registered-token');
    });
  }
});
