// The POP3 client against the scriptable server: what a real server won't do on demand. Here: a
// normal session, TLS that is never silently dropped, and authentication. Broken servers and
// streaming: pop3-client-scripted-broken-and-streaming.test.ts; deadlines and errors a hostile
// server cannot stretch: pop3-client-scripted-hostile.test.ts.
import { describe, expect, it } from 'vitest';
import { Pop3Client, type Pop3TraceEvent } from '../../lib/pop3/index.js';
import { expectPop3Error } from '../support/expect-pop3-error.js';
import {
  clientOptions,
  message,
  PASSWORD,
  pki,
  server,
  servers,
  setUpScriptedServers,
  TOKEN,
} from '../support/pop3-client-scripted-world.js';
import { readAll } from '../support/read-all.js';
import {
  MICROSOFT_CAPABILITIES,
  microsoftXoauth2,
  rejectLogin,
  respondWith,
  startPop3Server,
} from '../support/script-server.js';

setUpScriptedServers();

describe('a normal session', () => {
  it('lists and retrieves byte for byte over implicit TLS, pipelined and lock-step alike', async () => {
    const s = await server();
    for (const pipelining of [true, false]) {
      const client = await Pop3Client.connect(clientOptions(s, { pipelining }));
      await client.login({ user: 'jane', password: PASSWORD });
      expect(client.pipelining).toBe(pipelining);
      expect(await client.stat()).toEqual({ count: 3, size: s.mailboxes.jane!.reduce((n, m) => n + m.bytes.length, 0) });
      const list = await client.list();
      expect(list.map((e) => e.number)).toEqual([1, 2, 3]);
      expect((await client.uidl()).map((e) => e.uid)).toEqual(['uid-1', 'uid-2', 'uid-3']);
      expect(await client.uidlOne(2)).toEqual({ number: 2, uid: 'uid-2' });
      const got: Buffer[] = [];
      for await (const m of client.retrieve(list)) got.push(await readAll(m.stream));
      expect(got).toEqual(s.mailboxes.jane!.map((m) => m.bytes));
      const top = await client.top(1, 0);
      expect((await readAll(top.stream)).toString()).toBe('Subject: m1\r\n\r\n');
      await client.noop();
      await client.quit();
      expect(client.isClosed).toBe(true);
    }
  });

  it('upgrades with STLS before authenticating', async () => {
    const s = await server({ implicit: false });
    const client = await Pop3Client.connect(clientOptions(s));
    expect(client.tlsInfo()?.protocol).toMatch(/TLSv1\.[23]/);
    await client.login({ user: 'jane', password: PASSWORD });
    await client.quit();
    const received = s.sessions[0]!.received;
    expect(received.indexOf('STLS')).toBeLessThan(received.findIndex((l) => l.startsWith('AUTH') || l.startsWith('USER')));
  });

  it('DELE takes effect at QUIT, and a connection closed without QUIT rolls it back', async () => {
    const s = await server();
    const a = await Pop3Client.connect(clientOptions(s));
    await a.login({ user: 'jane', password: PASSWORD });
    await a.dele(1);
    a.close();
    await s.whenIdle();
    expect(s.mailboxes.jane).toHaveLength(3);
    const b = await Pop3Client.connect(clientOptions(s));
    await b.login({ user: 'jane', password: PASSWORD });
    await b.dele(1);
    await b.rset();
    await b.dele(2);
    await b.quit();
    await s.whenIdle();
    expect(s.mailboxes.jane!.map((m) => m.uid)).toEqual(['uid-1', 'uid-3']);
  });

  it('uses USER/PASS against a server without CAPA, and reports a missing UIDL as a command failure', async () => {
    const s = await server({ capabilities: null, features: { uidl: false } });
    const client = await Pop3Client.connect(clientOptions(s));
    await client.login({ user: 'jane', password: PASSWORD });
    expect(client.authMethod).toBe('USER');
    const error = await expectPop3Error(client.uidl(), 'COMMAND_FAILED');
    expect(error.retryable).toBe(false);
    // The session is still usable.
    expect((await client.stat()).count).toBe(3);
    await client.quit();
  });
});

describe('TLS is never silently dropped', () => {
  it('refuses to go on when the server does not offer STLS', async () => {
    const s = await server({ implicit: false, features: { stls: false } });
    const error = await expectPop3Error(Pop3Client.connect(clientOptions(s)), 'STLS_UNAVAILABLE');
    expect(error.phase).toBe('stls');
    await s.whenIdle();
    expect(s.sessions[0]!.received.some((l) => /^(USER|PASS|AUTH|APOP)/.test(l))).toBe(false);
  });

  it('refuses when the server answers STLS with -ERR', async () => {
    const s = await server({ implicit: false, hooks: respondWith('STLS', '-ERR not now') });
    await expectPop3Error(Pop3Client.connect(clientOptions(s)), 'STLS_UNAVAILABLE');
  });

  it('refuses bytes injected after +OK to STLS (before the handshake)', async () => {
    const s = await server({ implicit: false, hooks: respondWith('STLS', Buffer.from('+OK go ahead\r\n+OK injected\r\n')) });
    const error = await expectPop3Error(Pop3Client.connect(clientOptions(s)), 'PROTOCOL_ERROR');
    expect(error.message).toMatch(/after \+OK to STLS/);
  });

  it('refuses a certificate from an unknown CA and a wrong host name', async () => {
    const s = await server();
    const untrusted = await expectPop3Error(
      Pop3Client.connect(clientOptions(s, { tlsOptions: { ca: pki.untrustedCaCertPem, servername: 'localhost' } })),
      'TLS_FAILED',
    );
    expect(untrusted.retryable).toBe(false);
    await expectPop3Error(
      Pop3Client.connect(clientOptions(s, { tlsOptions: { ca: pki.caCertPem, servername: 'mail.example.org' } })),
      'TLS_FAILED',
    );
    // With the system roots only (the default), a private CA is not trusted either.
    await expectPop3Error(Pop3Client.connect({ host: s.host, port: s.port, tls: 'implicit' }), 'TLS_FAILED');
  });

  it('needs the explicit insecure-plaintext mode to talk without TLS', async () => {
    const s = await startPop3Server({ users: { jane: { password: PASSWORD } }, mailboxes: { jane: [message(1)] } });
    servers.push(s);
    // STLS mode against a server without TLS fails before any credential is sent.
    await expectPop3Error(Pop3Client.connect({ host: s.host, port: s.port, tls: 'starttls' }), 'STLS_UNAVAILABLE');
    const client = await Pop3Client.connect({ host: s.host, port: s.port, tls: 'insecure-plaintext' });
    await client.login({ user: 'jane', password: PASSWORD });
    expect((await client.stat()).count).toBe(1);
    await client.quit();
  });
});

describe('authentication', () => {
  const codes = [
    ['IN-USE', 'IN_USE', true],
    ['LOGIN-DELAY', 'LOGIN_DELAY', true],
    ['SYS/TEMP', 'SYS_TEMP', true],
    ['SYS/PERM', 'SYS_PERM', false],
    ['AUTH', 'AUTH_FAILED', false],
  ] as const;
  for (const [wire, code, retryable] of codes) {
    it(`surfaces [${wire}] as ${code} (retryable: ${retryable})`, async () => {
      const s = await server({ hooks: rejectLogin(wire) });
      const client = await Pop3Client.connect(clientOptions(s));
      const error = await expectPop3Error(client.login({ user: 'jane', password: PASSWORD }), code);
      expect(error.phase).toBe('auth');
      expect(error.retryable).toBe(retryable);
      expect(error.responseCode).toBe(wire);
      expect(error.message).not.toContain(PASSWORD);
      client.close();
    });
  }

  it('reports a wrong password as AUTH_FAILED without the password in the error', async () => {
    const s = await server();
    const client = await Pop3Client.connect(clientOptions(s));
    const error = await expectPop3Error(client.login({ user: 'jane', password: 'wrong-password' }), 'AUTH_FAILED');
    expect(JSON.stringify({ ...error, message: error.message })).not.toContain('wrong-password');
    client.close();
  });

  it('logs in to a Microsoft-style server with the two-step XOAUTH2 exchange', async () => {
    const s = await server({ capabilities: MICROSOFT_CAPABILITIES, hooks: microsoftXoauth2() });
    const client = await Pop3Client.connect(clientOptions(s));
    await client.login({ user: 'jane', accessToken: TOKEN });
    expect(client.authMethod).toBe('XOAUTH2');
    expect((await client.stat()).count).toBe(3);
    await client.quit();
    const bad = await Pop3Client.connect(clientOptions(s));
    await expectPop3Error(bad.login({ user: 'jane', accessToken: 'expired' }), 'AUTH_FAILED');
    bad.close();
  });

  it('answers an XOAUTH2 error challenge and reports its status', async () => {
    const s = await server({ features: { sasl: ['PLAIN', 'XOAUTH2'] } });
    const client = await Pop3Client.connect(clientOptions(s));
    const error = await expectPop3Error(client.login({ user: 'jane', accessToken: 'expired' }), 'AUTH_FAILED');
    expect(error.message).toMatch(/status 401/);
    client.close();
  });

  it('logs in with OAUTHBEARER, LOGIN, PLAIN and APOP when asked for them', async () => {
    const s = await server({ features: { sasl: ['PLAIN', 'LOGIN', 'OAUTHBEARER'], apop: true } });
    for (const mechanism of ['OAUTHBEARER', 'LOGIN', 'PLAIN', 'APOP', 'USER'] as const) {
      const client = await Pop3Client.connect(clientOptions(s));
      const creds = mechanism === 'OAUTHBEARER' ? { user: 'jane', accessToken: TOKEN } : { user: 'jane', password: PASSWORD };
      await client.login(creds, { mechanism });
      expect(client.authMethod).toBe(mechanism);
      await client.quit();
    }
  });

  it('never puts the password, the token or a SASL payload into the trace', async () => {
    const s = await server({ features: { sasl: ['PLAIN', 'LOGIN', 'XOAUTH2', 'OAUTHBEARER'], apop: true } });
    const events: Pop3TraceEvent[] = [];
    const trace = (e: Pop3TraceEvent): void => {
      events.push(e);
    };
    for (const [mechanism, creds] of [
      ['PLAIN', { user: 'jane', password: PASSWORD }],
      ['LOGIN', { user: 'jane', password: PASSWORD }],
      ['USER', { user: 'jane', password: PASSWORD }],
      ['APOP', { user: 'jane', password: PASSWORD }],
      ['XOAUTH2', { user: 'jane', accessToken: TOKEN }],
      ['OAUTHBEARER', { user: 'jane', accessToken: TOKEN }],
    ] as const) {
      const client = await Pop3Client.connect(clientOptions(s, { trace }));
      await client.login(creds, { mechanism });
      for await (const m of client.retrieve(await client.list())) await readAll(m.stream);
      await client.quit();
    }
    const text = events.map((e) => e.line).join('\n');
    expect(text).toContain('AUTH PLAIN ****');
    expect(text).toContain('PASS ****');
    // Everything the client sent, as the server recorded it: none of its secrets may show.
    const secretsOnWire = s.sessions
      .flatMap((x) => x.received)
      .flatMap((l) => {
        const m = /^(?:PASS|APOP \S+|AUTH \S+) (\S+)$/.exec(l);
        if (m !== null) return [m[1]!];
        // A SASL answer line (base64), not a bare command keyword such as CAPA or QUIT.
        return /^[A-Za-z0-9+/]{4,}=*$/.test(l) && !/^[A-Z]{3,4}$/.test(l) ? [l] : [];
      });
    expect(secretsOnWire.length).toBeGreaterThan(5);
    for (const secret of [PASSWORD, TOKEN, ...secretsOnWire]) expect(text).not.toContain(secret);
  });
});
