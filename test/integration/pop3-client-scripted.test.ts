// The POP3 client against the scriptable server: what a real server won't do on demand.
import { createHash } from 'node:crypto';
import net from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Pop3Client, Pop3Error, type Pop3ClientOptions, type Pop3TraceEvent } from '../../lib/pop3/index.js';
import { MAX_LISTING_LINE_BYTES } from '../../lib/pop3/limits.js';
import { makeTestPki, type TestPki } from '../../testkit/pki.js';
import {
  MICROSOFT_CAPABILITIES,
  bodyWithoutTerminator,
  disconnectMidBody,
  microsoftXoauth2,
  rejectLogin,
  respondWith,
  silentAfter,
  silentGreeting,
  stallMidBody,
  startPop3Server,
  type MailboxMessage,
  type Pop3ServerOptions,
  type Pop3TestServer,
} from '../support/script-server.js';

const PASSWORD = 'correct horse battery staple';
const TOKEN = 'ya29.secret-access-token-value';

let pki: TestPki;
let pkiDir: string;
const servers: Pop3TestServer[] = [];
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};

beforeAll(async () => {
  pkiDir = await mkdtemp(join(tmpdir(), 'popdrain-pki-'));
  pki = await makeTestPki(pkiDir);
  process.on('unhandledRejection', onUnhandled);
});

afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  await rm(pkiDir, { recursive: true, force: true });
});

afterEach(async () => {
  // Let pending socket events run, then check that no promise rejection went unhandled.
  await new Promise((r) => setTimeout(r, 20));
  const closing = servers.splice(0).map((s) => s.close());
  await Promise.all(closing);
  expect(unhandled).toEqual([]);
});

function message(i: number, extra = ''): MailboxMessage {
  return { bytes: Buffer.from(`Subject: m${i}\r\n\r\nbody ${i}\r\n.starts with a dot\r\n${extra}`), uid: `uid-${i}` };
}

async function server(options: Pop3ServerOptions & { implicit?: boolean } = {}): Promise<Pop3TestServer> {
  const s = await startPop3Server({
    tls: { key: pki.serverKeyPem, cert: pki.serverCertPem },
    implicitTls: options.implicit ?? true,
    users: { jane: { password: PASSWORD, oauthTokens: [TOKEN] } },
    mailboxes: { jane: [message(1), message(2), message(3)] },
    ...options,
  });
  servers.push(s);
  return s;
}

function clientOptions(s: Pop3TestServer, extra: Partial<Pop3ClientOptions> = {}): Pop3ClientOptions {
  return {
    host: s.host,
    port: s.port,
    tls: s.implicitTls ? 'implicit' : 'starttls',
    tlsOptions: { ca: pki.caCertPem, servername: 'localhost' },
    ...extra,
  };
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

async function expectPop3Error(promise: Promise<unknown>, code: string): Promise<Pop3Error> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(Pop3Error);
  expect((error as Pop3Error).code).toBe(code);
  return error as Pop3Error;
}

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

describe('broken servers', () => {
  const fast = { greetingMs: 300, commandMs: 300, bodyIdleMs: 300, authMs: 300 };

  it('times out a silent greeting', async () => {
    const s = await server({ hooks: silentGreeting() });
    const error = await expectPop3Error(Pop3Client.connect(clientOptions(s, { timeouts: fast })), 'GREETING_TIMEOUT');
    expect(error.retryable).toBe(true);
  });

  it('times out a command that is never answered, and closes the socket', async () => {
    const s = await server({ hooks: silentAfter('STAT') });
    const client = await Pop3Client.connect(clientOptions(s, { timeouts: fast }));
    await client.login({ user: 'jane', password: PASSWORD });
    const error = await expectPop3Error(client.stat(), 'COMMAND_TIMEOUT');
    expect(error.command).toBe('STAT');
    expect(client.isClosed).toBe(true);
    await s.whenIdle();
    expect(s.activeConnections).toBe(0);
  });

  it('times out a body that stalls, and one that never ends', async () => {
    for (const hooks of [stallMidBody(10), bodyWithoutTerminator({ then: 'silence' })]) {
      const s = await server({ hooks });
      const client = await Pop3Client.connect(clientOptions(s, { timeouts: fast }));
      await client.login({ user: 'jane', password: PASSWORD });
      const m = await client.retr(1);
      const error = await expectPop3Error(readAll(m.stream), 'BODY_TIMEOUT');
      expect(error.message).toMatch(/RETR 1/);
    }
  });

  it('reports a disconnect in the middle of a body; pipelined RETRs behind it fail too', async () => {
    for (const how of ['end', 'destroy', 'reset'] as const) {
      const s = await server({ hooks: disconnectMidBody(12, { message: 2, how }) });
      const client = await Pop3Client.connect(clientOptions(s));
      await client.login({ user: 'jane', password: PASSWORD });
      const first = client.retr(1);
      const second = client.retr(2);
      const third = client.retr(3);
      expect((await readAll((await first).stream)).equals(s.mailboxes.jane![0]!.bytes)).toBe(true);
      const error = await expectPop3Error(readAll((await second).stream), 'CONNECTION_CLOSED');
      expect(error.retryable).toBe(true);
      await expectPop3Error(third, 'CONNECTION_CLOSED');
      // Later calls fail at once with the same error rather than hanging.
      await expectPop3Error(client.stat(), 'CONNECTION_CLOSED');
    }
  });

  it('reports a body without terminator followed by a close', async () => {
    const s = await server({ hooks: bodyWithoutTerminator({ then: 'end' }) });
    const client = await Pop3Client.connect(clientOptions(s));
    await client.login({ user: 'jane', password: PASSWORD });
    await expectPop3Error(readAll((await client.retr(1)).stream), 'CONNECTION_CLOSED');
  });

  it('refuses malformed and over-long status lines', async () => {
    const s1 = await server({ hooks: respondWith('STAT', 'OK 3 300') });
    const c1 = await Pop3Client.connect(clientOptions(s1));
    await c1.login({ user: 'jane', password: PASSWORD });
    const e1 = await expectPop3Error(c1.stat(), 'PROTOCOL_ERROR');
    expect(e1.message).toMatch(/malformed status line/);
    expect(c1.isClosed).toBe(true);

    const s2 = await server({ hooks: respondWith('STAT', `+OK ${'9'.repeat(100_000)}`) });
    const c2 = await Pop3Client.connect(clientOptions(s2));
    await c2.login({ user: 'jane', password: PASSWORD });
    await expectPop3Error(c2.stat(), 'LIMIT_EXCEEDED');

    const s3 = await server({ hooks: respondWith('STAT', '+OK three hundred') });
    const c3 = await Pop3Client.connect(clientOptions(s3));
    await c3.login({ user: 'jane', password: PASSWORD });
    await expectPop3Error(c3.stat(), 'PROTOCOL_ERROR');

    const s4 = await server({ hooks: respondWith('UIDL', ['+OK', '1 uid with spaces', '.']) });
    const c4 = await Pop3Client.connect(clientOptions(s4));
    await c4.login({ user: 'jane', password: PASSWORD });
    await expectPop3Error(c4.uidl(), 'PROTOCOL_ERROR');
  });

  it('refuses a listing line longer than MAX_LISTING_LINE_BYTES (CAPA, LIST, UIDL), and takes one at the limit', async () => {
    // A CAPA line at the limit (8,191 characters + CR, as a status line is counted) is fine.
    const atLimit = `X-LONG ${'a'.repeat(MAX_LISTING_LINE_BYTES - 'X-LONG '.length - 1)}`;
    const s0 = await server({ hooks: respondWith('CAPA', ['+OK', 'USER', atLimit, '.']) });
    const c0 = await Pop3Client.connect(clientOptions(s0));
    expect(c0.capabilities.has('X-LONG')).toBe(true);
    await c0.quit();

    const s1 = await server({ hooks: respondWith('CAPA', ['+OK', 'USER', `${atLimit}a`, '.']) });
    const e1 = await expectPop3Error(Pop3Client.connect(clientOptions(s1)), 'LIMIT_EXCEEDED');
    expect(e1.message).toBe(`server sent a listing line longer than ${MAX_LISTING_LINE_BYTES} bytes`);
    expect(e1.phase).toBe('capa');
    expect(e1.command).toBe('CAPA');

    // Without the limit these were a PROTOCOL_ERROR only once the whole listing had arrived.
    for (const command of ['LIST', 'UIDL'] as const) {
      const s = await server({ hooks: respondWith(command, ['+OK', '1 10', `2 ${'7'.repeat(20_000)}`, '3 30', '.']) });
      const c = await Pop3Client.connect(clientOptions(s));
      await c.login({ user: 'jane', password: PASSWORD });
      const error = await expectPop3Error(command === 'LIST' ? c.list() : c.uidl(), 'LIMIT_EXCEEDED');
      expect(error.command).toBe(command);
      expect(error.phase).toBe('transaction');
      expect(c.isClosed).toBe(true);
    }
  });

  it('refuses a listing with message number 0 or a number listed twice (which message would a number mean?)', async () => {
    const cases: Array<[string, string[], RegExp]> = [
      ['UIDL', ['+OK', '1 aaa', '1 bbb', '2 ccc', '.'], /UIDL listed message number 1 twice/],
      ['UIDL', ['+OK', '0 aaa', '1 bbb', '.'], /UIDL listed message number 0/],
      ['LIST', ['+OK', '1 10', '2 20', '2 30', '.'], /LIST listed message number 2 twice/],
    ];
    for (const [command, lines, message] of cases) {
      const s = await server({ hooks: respondWith(command, lines) });
      const c = await Pop3Client.connect(clientOptions(s));
      await c.login({ user: 'jane', password: PASSWORD });
      const error = await expectPop3Error(command === 'UIDL' ? c.uidl() : c.list(), 'PROTOCOL_ERROR');
      expect(error.message).toMatch(message);
      expect(c.isClosed).toBe(true);
    }
  });

  it('fails a greeting that is -ERR, with its response code', async () => {
    const s = await server({ greeting: '-ERR [SYS/TEMP] maintenance' });
    const error = await expectPop3Error(Pop3Client.connect(clientOptions(s)), 'SYS_TEMP');
    expect(error.phase).toBe('greeting');
  });

  it('reports a refused connection as CONNECT_FAILED', async () => {
    const s = await server();
    const port = s.port;
    await s.close();
    servers.splice(servers.indexOf(s), 1);
    const error = await expectPop3Error(Pop3Client.connect({ host: '127.0.0.1', port, tls: 'implicit' }), 'CONNECT_FAILED');
    expect(error.retryable).toBe(true);
  });

  it('aborts with an AbortSignal: everything pending fails with ABORTED and the socket closes', async () => {
    const s = await server({ hooks: stallMidBody(5) });
    const controller = new AbortController();
    const client = await Pop3Client.connect(clientOptions(s, { signal: controller.signal }));
    await client.login({ user: 'jane', password: PASSWORD });
    const m = await client.retr(1);
    const pending = client.stat();
    setTimeout(() => controller.abort(), 50);
    await expectPop3Error(readAll(m.stream), 'ABORTED');
    await expectPop3Error(pending, 'ABORTED');
    await s.whenIdle();
    expect(s.activeConnections).toBe(0);
  });

  it('an aborted signal before connecting fails at once', async () => {
    const s = await server();
    await expectPop3Error(Pop3Client.connect(clientOptions(s, { signal: AbortSignal.abort() })), 'ABORTED');
  });
});

describe('streaming', () => {
  it('applies backpressure: a consumer that does not read holds the socket, not memory', async () => {
    const big = Buffer.alloc(30 * 1000 * 1000, 'x');
    for (let i = 99; i < big.length; i += 100) big[i] = 0x0a;
    for (let i = 98; i < big.length; i += 100) big[i] = 0x0d;
    const s = await server({ mailboxes: { jane: [{ bytes: big, uid: 'big' }] } });
    const client = await Pop3Client.connect(clientOptions(s, { bodyHighWaterMark: 64 * 1024 }));
    await client.login({ user: 'jane', password: PASSWORD });
    const m = await client.retr(1);
    await new Promise((r) => setTimeout(r, 300));
    // Without backpressure the whole 30 MB would be buffered by now.
    expect(m.stream.readableLength).toBeLessThan(1024 * 1024);
    const hash = createHash('sha256');
    for await (const chunk of m.stream) hash.update(chunk as Buffer);
    expect(hash.digest('hex')).toBe(createHash('sha256').update(big).digest('hex'));
    await client.quit();
  });

  it('receives small messages whole when asked (collectUpTo), byte for byte, with a stream over them too', async () => {
    const s = await server();
    const client = await Pop3Client.connect(clientOptions(s));
    await client.login({ user: 'jane', password: PASSWORD });
    const list = await client.list();
    const got: Buffer[] = [];
    for await (const m of client.retrieve(list, { collectUpTo: 1024 })) {
      expect(m.body).toBeDefined();
      const whole = Buffer.concat(m.body!);
      expect(await readAll(m.stream)).toEqual(whole);
      got.push(whole);
    }
    expect(got).toEqual(s.mailboxes.jane!.map((m) => m.bytes));
    // Larger than collectUpTo: streamed as before.
    for await (const m of client.retrieve(list, { collectUpTo: 10 })) {
      expect(m.body).toBeUndefined();
      await readAll(m.stream);
    }
    await client.quit();
  });

  it('streams a message collected whole after all when it runs well past its listed size', async () => {
    const long = Buffer.from(`Subject: long\r\n\r\n${'0123456789abcdef\r\n'.repeat(2_000)}.a dot line\r\n`);
    const s = await server({ mailboxes: { jane: [message(1), { bytes: long, uid: 'long' }, message(3)] } });
    const client = await Pop3Client.connect(clientOptions(s));
    await client.login({ user: 'jane', password: PASSWORD });
    const list = await client.list();
    // The listing understates message 2 by far more than the slack: it must not be held whole.
    const items = list.map((e) => (e.number === 2 ? { number: 2, size: 100 } : e));
    const got: Array<{ whole: boolean; bytes: Buffer }> = [];
    for await (const m of client.retrieve(items, { collectUpTo: 64 * 1024 })) {
      got.push({ whole: m.body !== undefined, bytes: m.body === undefined ? await readAll(m.stream) : Buffer.concat(m.body) });
    }
    expect(got.map((g) => g.whole)).toEqual([true, false, true]);
    expect(got.map((g) => g.bytes)).toEqual([message(1).bytes, long, message(3).bytes]);
    // A listing that understates by less than the slack: still whole, every byte there.
    const slightly = list.map((e) => (e.number === 2 ? { number: 2, size: long.length - 1_000 } : e));
    const again: Buffer[] = [];
    for await (const m of client.retrieve(slightly, { collectUpTo: 64 * 1024 })) {
      expect(m.body).toBeDefined();
      again.push(Buffer.concat(m.body!));
    }
    expect(again).toEqual([message(1).bytes, long, message(3).bytes]);
    await client.quit();
  });

  it('ending a loop over messages collected whole drops the rest without unhandled rejections', async () => {
    const s = await server();
    const client = await Pop3Client.connect(clientOptions(s));
    await client.login({ user: 'jane', password: PASSWORD });
    const seen: number[] = [];
    for await (const m of client.retrieve(await client.list(), { collectUpTo: 1024 })) {
      seen.push(m.number);
      break;
    }
    expect(seen).toEqual([1]);
    expect((await client.stat()).count).toBe(3);
    await client.quit();
  });

  it('a consumer may destroy a stream and go on: the rest of that body is dropped', async () => {
    const s = await server();
    const client = await Pop3Client.connect(clientOptions(s));
    await client.login({ user: 'jane', password: PASSWORD });
    const items = await client.list();
    const seen: number[] = [];
    for await (const m of client.retrieve(items)) {
      seen.push(m.number);
      if (m.number === 1) m.stream.destroy();
      else await readAll(m.stream);
      if (m.number === 2) break; // ending early discards message 3, already requested
    }
    expect(seen).toEqual([1, 2]);
    expect((await client.stat()).count).toBe(3);
    await client.quit();
  });
});

describe('deadlines and errors a hostile server cannot stretch or break', () => {
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  const elapsed = (): (() => number) => {
    const start = performance.now();
    return () => performance.now() - start;
  };
  /** Settles with the outcome, or 'still pending' after `ms` (so a broken client fails the test instead of hanging it). */
  const within = <T>(promise: Promise<T>, ms: number): Promise<T | Error | 'still pending'> =>
    Promise.race([promise.catch((e: unknown) => e as Error), sleep(ms).then(() => 'still pending' as const)]);

  it('ends an AUTH exchange the server keeps going with challenges, without sending the password again', async () => {
    const answers: string[] = [];
    const s = await server({
      hooks: {
        async onAuth(conn, mechanism) {
          if (mechanism !== 'PLAIN') return undefined;
          void (async () => {
            for (;;) {
              const line = await conn.readLine().catch(() => null);
              if (line === null) return;
              answers.push(line);
            }
          })();
          // A `+ ` every 50 ms, whatever the client answers.
          while (!conn.isClosed) {
            await conn.writeLine('+ ').catch(() => undefined);
            await sleep(50);
          }
          return true;
        },
      },
    });
    const client = await Pop3Client.connect(clientOptions(s, { timeouts: { authMs: 1_000 } }));
    const took = elapsed();
    const error = await within(client.login({ user: 'jane', password: PASSWORD }, { mechanism: 'PLAIN' }), 3_000);
    expect(error).toBeInstanceOf(Pop3Error);
    expect((error as Pop3Error).code).toBe('PROTOCOL_ERROR');
    expect((error as Pop3Error).phase).toBe('auth');
    expect((error as Pop3Error).message).not.toContain(PASSWORD);
    expect(took()).toBeLessThan(1_000);
    expect(client.isClosed).toBe(true);
    await s.whenIdle();
    // The credentials went out once, with AUTH; challenges after that were cancelled, not answered.
    const payload = Buffer.from(`\0jane\0${PASSWORD}`).toString('base64');
    expect(answers).not.toContain(payload);
    expect(answers.every((l) => l === '*')).toBe(true);
  });

  it('caps the challenges of one AUTH exchange', async () => {
    const s = await server({
      features: { sasl: ['SCRAM-SHA-256'] },
      hooks: {
        async onAuth(conn, mechanism) {
          if (mechanism !== 'SCRAM-SHA-256') return undefined;
          // All at once: SCRAM answers asynchronously, so they arrive before it could cancel.
          await conn.write('+ \r\n'.repeat(20));
          await conn.silence();
          return true;
        },
      },
    });
    const client = await Pop3Client.connect(clientOptions(s, { timeouts: { authMs: 1_000 } }));
    const error = await within(client.login({ user: 'jane', password: PASSWORD }, { mechanism: 'SCRAM-SHA-256' }), 3_000);
    expect(error).toBeInstanceOf(Pop3Error);
    expect((error as Pop3Error).code).toBe('PROTOCOL_ERROR');
    expect((error as Pop3Error).message).toMatch(/more than 8 challenges/);
  });

  it('times the whole AUTH exchange from sending AUTH: slow challenges and a trickled +OK do not extend it', async () => {
    const s = await server({
      hooks: {
        async onAuth(conn, mechanism) {
          if (mechanism !== 'LOGIN') return undefined;
          try {
            await conn.writeLine('+ VXNlcm5hbWU6');
            await conn.readLine();
            await sleep(250);
            await conn.writeLine('+ UGFzc3dvcmQ6');
            await conn.readLine();
            await sleep(250);
            for (const byte of '+OK welcome\r\n') {
              await conn.write(byte);
              await sleep(100);
            }
          } catch {
            // the client gave up
          }
          return true;
        },
      },
    });
    const client = await Pop3Client.connect(clientOptions(s, { timeouts: { authMs: 600 } }));
    const took = elapsed();
    const error = await within(client.login({ user: 'jane', password: PASSWORD }, { mechanism: 'LOGIN' }), 3_000);
    expect(error).toBeInstanceOf(Pop3Error);
    expect((error as Pop3Error).code).toBe('COMMAND_TIMEOUT');
    expect((error as Pop3Error).phase).toBe('auth');
    expect(took()).toBeLessThan(1_200);
  });

  it('times a status line from sending the command, however slowly its bytes trickle in', async () => {
    const s = await server({
      hooks: {
        async onCommand(conn, line) {
          if (line !== 'STAT') return false;
          try {
            for (const byte of '+OK 3 300 and some more text\r\n') {
              await conn.write(byte);
              await sleep(100);
            }
          } catch {
            // the client gave up
          }
          return true;
        },
      },
    });
    const client = await Pop3Client.connect(clientOptions(s, { timeouts: { commandMs: 400 } }));
    await client.login({ user: 'jane', password: PASSWORD });
    const took = elapsed();
    const error = await within(client.stat(), 4_000);
    expect(error).toBeInstanceOf(Pop3Error);
    expect((error as Pop3Error).code).toBe('COMMAND_TIMEOUT');
    expect(took()).toBeLessThan(1_000);
  });

  it('times each pipelined command from the end of the response before it, not from when it was sent', async () => {
    const s = await server({
      hooks: {
        async onCommand(conn, line) {
          if (line !== 'NOOP') return false;
          await sleep(150);
          await conn.writeLine('+OK');
          return true;
        },
      },
    });
    const client = await Pop3Client.connect(clientOptions(s, { timeouts: { commandMs: 400 } }));
    await client.login({ user: 'jane', password: PASSWORD });
    expect(client.pipelining).toBe(true);
    // Six answers 150 ms apart: the last comes ~900 ms after all six were sent.
    await Promise.all(Array.from({ length: 6 }, () => client.noop()));
    await client.quit();
  });

  it('keeps timeouts suspended while a consumer holds the socket back', async () => {
    const big = (c: string): Buffer => Buffer.from(`Subject: big\r\n\r\n${`${c.repeat(98)}\r\n`.repeat(20_000)}`);
    const s = await server({ mailboxes: { jane: [{ bytes: big('a'), uid: 'a' }, { bytes: big('b'), uid: 'b' }] } });
    const client = await Pop3Client.connect(
      clientOptions(s, { bodyHighWaterMark: 16 * 1024, timeouts: { commandMs: 200, bodyIdleMs: 200 } }),
    );
    await client.login({ user: 'jane', password: PASSWORD });
    const got: number[] = [];
    for await (const m of client.retrieve(await client.list())) {
      await sleep(700);
      got.push((await readAll(m.stream)).length);
    }
    expect(got).toEqual([big('a').length, big('b').length]);
    await client.quit();
  });

  it('settles an abort during the TLS handshake of connect at once, and closes the socket', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.resume(); // read (and drop) the ClientHello, so the client's close is seen
      sockets.push(socket);
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const port = (silent.address() as net.AddressInfo).port;
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 100);
      const took = elapsed();
      const error = await within(
        Pop3Client.connect({ host: '127.0.0.1', port, tls: 'implicit', signal: controller.signal, timeouts: { connectMs: 10_000 } }),
        3_000,
      );
      expect(error).toBeInstanceOf(Pop3Error);
      expect((error as Pop3Error).code).toBe('ABORTED');
      expect(took()).toBeLessThan(1_000);
      expect(sockets).toHaveLength(1);
      const socket = sockets[0]!;
      if (!socket.destroyed) {
        expect(await within(new Promise((r) => socket.once('close', () => r('closed'))), 1_000)).toBe('closed');
      }
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  it('settles an abort during the STLS handshake at once, and closes the socket', async () => {
    const controller = new AbortController();
    const s = await server({
      implicit: false,
      hooks: respondWith(
        'STLS',
        () => {
          setTimeout(() => controller.abort(), 100);
          return '+OK begin TLS';
        },
        { then: 'silence' }, // and never start it
      ),
    });
    const took = elapsed();
    const error = await within(
      Pop3Client.connect(clientOptions(s, { signal: controller.signal, timeouts: { tlsUpgradeMs: 10_000 } })),
      3_000,
    );
    expect(error).toBeInstanceOf(Pop3Error);
    expect((error as Pop3Error).code).toBe('ABORTED');
    expect(took()).toBeLessThan(1_000);
    expect(await within(s.whenIdle().then(() => 'idle'), 1_000)).toBe('idle');
    expect(s.activeConnections).toBe(0);
  });

  it('reports credentials the client cannot send as a Pop3Error (AUTH_FAILED), without the password', async () => {
    const s = await server({ features: { sasl: ['PLAIN', 'SCRAM-SHA-256'] } });
    const cases = [
      [{ user: 'jane\r\nDELE 1', password: PASSWORD }, 'USER'],
      [{ user: 'jane', password: `${PASSWORD}\r\nDELE 1` }, 'USER'],
      [{ user: 'ja\u0007ne', password: PASSWORD }, 'SCRAM-SHA-256'],
    ] as const;
    for (const [creds, mechanism] of cases) {
      const client = await Pop3Client.connect(clientOptions(s));
      const error = await expectPop3Error(client.login(creds, { mechanism }), 'AUTH_FAILED');
      expect(error.phase).toBe('auth');
      expect(error.retryable).toBe(false);
      expect(error.message).not.toContain(PASSWORD);
      client.close();
    }
    await s.whenIdle();
    expect(s.sessions.flatMap((x) => x.received).some((l) => l.startsWith('DELE'))).toBe(false);
  });

  it('does not keep pipelining from the plaintext CAPA when the CAPA after STLS fails', async () => {
    const s = await server({
      implicit: false,
      hooks: respondWith((line, state) => line === 'CAPA' && state.tls, '-ERR not now'),
    });
    const client = await Pop3Client.connect(clientOptions(s));
    // Before TLS the server advertised PIPELINING (and STLS); none of it holds after.
    expect(s.sessions[0]!.received.filter((l) => l === 'CAPA')).toHaveLength(2);
    expect(client.pipelining).toBe(false);
    expect(client.capabilities.has('PIPELINING')).toBe(false);
    expect(client.capabilities.has('STLS')).toBe(false);
    await client.login({ user: 'jane', password: PASSWORD });
    expect(client.pipelining).toBe(false);
    expect((await client.stat()).count).toBe(3);
    await client.quit();
  });
});
