// The scriptable POP3 server, exercised with raw sockets: bytes on the wire are what is checked.
import { createHash, createHmac } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeTestPki, type TestPki } from '../../testkit/pki.js';
import {
  MICROSOFT_CAPABILITIES,
  bodyWithoutTerminator,
  disconnectMidBody,
  dotStuff,
  encodeMultilineBody,
  extractTop,
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

const READ_TIMEOUT_MS = 3_000;
const SILENCE_WINDOW_MS = 300;
const TERMINATOR = Buffer.from('\r\n.\r\n', 'latin1');

/** A POP3 peer that knows nothing: it sends what it is told and hands back raw bytes. */
class RawClient {
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

const MSG_DOTS = Buffer.from(
  'From: a@example.test\r\nSubject: dots\r\n\r\n.leading dot\r\n..two dots\r\nnormal\r\n.\r\nend\r\n',
  'latin1',
);
const MSG_TWO = Buffer.from('Subject: two\r\n\r\nbody two\r\n', 'latin1');
const MSG_NO_FINAL_CRLF = Buffer.from('Subject: three\r\n\r\nno final newline', 'latin1');

function freshMailbox(): MailboxMessage[] {
  return [{ bytes: MSG_DOTS }, { bytes: MSG_TWO, uid: 'uid-two' }, { bytes: MSG_NO_FINAL_CRLF }];
}

const servers: Pop3TestServer[] = [];
const clients: RawClient[] = [];

async function start(options: Pop3ServerOptions = {}): Promise<Pop3TestServer> {
  const server = await startPop3Server({
    users: { alice: { password: 'alice pw', oauthTokens: ['good-token'] } },
    mailboxes: { alice: freshMailbox() },
    ...options,
  });
  servers.push(server);
  return server;
}

async function connect(server: Pop3TestServer, tlsOptions?: tls.ConnectionOptions): Promise<RawClient> {
  const client = await RawClient.connect(server, tlsOptions);
  clients.push(client);
  return client;
}

/** Connected, greeted and logged in as alice. */
async function loggedIn(server: Pop3TestServer): Promise<RawClient> {
  const client = await connect(server);
  expect(await client.readLine()).toMatch(/^\+OK /);
  expect(await client.command('USER alice')).toBe('+OK');
  expect(await client.command('PASS alice pw')).toBe('+OK Logged in.');
  return client;
}

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  // close() rejects when a hook or the server itself threw: such a test fails here.
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

describe('default behaviour', () => {
  it('serves a full session; RETR is dot-stuffed on the wire and QUIT applies DELE', async () => {
    const server = await start();
    const mailbox = server.mailboxes.alice!;
    const client = await connect(server);

    expect(await client.readLine()).toBe('+OK popdrain test server ready');
    client.send('CAPA\r\n');
    expect(await client.readMultiline()).toEqual({
      status: '+OK Capability list follows',
      lines: [
        'TOP',
        'UIDL',
        'USER',
        'SASL PLAIN LOGIN',
        'PIPELINING',
        'RESP-CODES',
        'AUTH-RESP-CODE',
        'IMPLEMENTATION popdrain-test-server',
      ],
    });
    expect(await client.command('STAT')).toBe('-ERR Command not valid in this state');
    expect(await client.command('USER alice')).toBe('+OK');
    expect(await client.command('PASS alice pw')).toBe('+OK Logged in.');

    const total = MSG_DOTS.length + MSG_TWO.length + MSG_NO_FINAL_CRLF.length;
    expect(await client.command('STAT')).toBe(`+OK 3 ${total}`);
    client.send('LIST\r\n');
    expect(await client.readMultiline()).toEqual({
      status: `+OK 3 messages (${total} octets)`,
      lines: [`1 ${MSG_DOTS.length}`, `2 ${MSG_TWO.length}`, `3 ${MSG_NO_FINAL_CRLF.length}`],
    });
    expect(await client.command('LIST 2')).toBe(`+OK 2 ${MSG_TWO.length}`);
    expect(await client.command('LIST 4')).toBe('-ERR No such message');

    client.send('UIDL\r\n');
    const uidl = await client.readMultiline();
    const digestUid = createHash('sha256').update(MSG_DOTS).digest('hex').slice(0, 32);
    expect(uidl.lines).toEqual([`1 ${digestUid}`, '2 uid-two', expect.stringMatching(/^3 [0-9a-f]{32}$/)]);

    client.send('RETR 1\r\n');
    expect((await client.readMultilineRaw()).toString('latin1')).toBe(
      `+OK ${MSG_DOTS.length} octets\r\n` +
        'From: a@example.test\r\nSubject: dots\r\n\r\n' +
        '..leading dot\r\n...two dots\r\nnormal\r\n..\r\nend\r\n' +
        '.\r\n',
    );
    // A message without a final CRLF gets one before the terminator.
    client.send('RETR 3\r\n');
    expect((await client.readMultilineRaw()).toString('latin1')).toBe(
      `+OK ${MSG_NO_FINAL_CRLF.length} octets\r\nSubject: three\r\n\r\nno final newline\r\n.\r\n`,
    );
    client.send('TOP 1 1\r\n');
    expect((await client.readMultilineRaw()).toString('latin1')).toBe(
      '+OK\r\nFrom: a@example.test\r\nSubject: dots\r\n\r\n..leading dot\r\n.\r\n',
    );

    expect(await client.command('DELE 1')).toBe('+OK Message 1 deleted');
    expect(await client.command('DELE 1')).toBe('-ERR Message 1 already deleted');
    expect(await client.command('RETR 1')).toBe('-ERR No such message');
    expect(await client.command('STAT')).toBe(`+OK 2 ${total - MSG_DOTS.length}`);
    expect(await client.command('RSET')).toBe(`+OK maildrop has 3 messages (${total} octets)`);
    expect(await client.command('DELE 1')).toBe('+OK Message 1 deleted');
    expect(await client.command('DELE 3')).toBe('+OK Message 3 deleted');
    expect(await client.command('NOOP')).toBe('+OK');
    expect(mailbox).toHaveLength(3); // nothing applied before QUIT

    const first = mailbox[0]!;
    expect(await client.command('QUIT')).toBe('+OK Logging out, 2 messages deleted');
    expect((await client.readToEnd()).length).toBe(0);
    expect(mailbox.map((m) => m.bytes)).toEqual([MSG_TWO]);
    expect(first.deleted).toBe(true);

    await server.whenIdle();
    const [log] = server.sessions;
    expect(log?.quit).toBe(true);
    expect(log?.expunged).toEqual([digestUid, expect.stringMatching(/^[0-9a-f]{32}$/)]);
    expect(log?.received).toContain('PASS alice pw');
  });

  it('rolls back DELE marks when the client drops without QUIT, and releases the lock', async () => {
    const server = await start();
    const first = await loggedIn(server);
    expect(await first.command('DELE 2')).toBe('+OK Message 2 deleted');

    const second = await connect(server);
    await second.readLine();
    await second.command('USER alice');
    expect(await second.command('PASS alice pw')).toBe('-ERR [IN-USE] Mailbox is locked by another session');

    first.close();
    await server.sessions[0]?.finished;
    expect(await second.command('USER alice')).toBe('+OK');
    expect(await second.command('PASS alice pw')).toBe('+OK Logged in.');
    expect(await second.command('UIDL 2')).toBe('+OK 2 uid-two');
    expect(server.mailboxes.alice).toHaveLength(3);
    expect(server.sessions[0]?.quit).toBe(false);
    expect(server.sessions[0]?.expunged).toEqual([]);
  });

  it('answers a pipelined batch sent in one write strictly in order', async () => {
    const server = await start();
    const client = await connect(server);
    await client.readLine();
    client.send('USER alice\r\nPASS alice pw\r\nSTAT\r\nLIST\r\nUIDL 2\r\nRETR 2\r\nDELE 2\r\nNOOP\r\nQUIT\r\n');

    expect(await client.readLine()).toBe('+OK');
    expect(await client.readLine()).toBe('+OK Logged in.');
    expect(await client.readLine()).toMatch(/^\+OK 3 \d+$/);
    expect((await client.readMultiline()).lines).toHaveLength(3);
    expect(await client.readLine()).toBe('+OK 2 uid-two');
    expect((await client.readMultilineRaw()).toString('latin1')).toBe(
      `+OK ${MSG_TWO.length} octets\r\n${MSG_TWO.toString('latin1')}.\r\n`,
    );
    expect(await client.readLine()).toBe('+OK Message 2 deleted');
    expect(await client.readLine()).toBe('+OK');
    expect(await client.readLine()).toBe('+OK Logging out, 1 messages deleted');
    expect((await client.readToEnd()).length).toBe(0);
    expect(server.mailboxes.alice?.map((m) => m.bytes)).toEqual([MSG_DOTS, MSG_NO_FINAL_CRLF]);
  });

  it('rejects bad credentials with [AUTH] and forgets USER after a failed PASS', async () => {
    const server = await start();
    const client = await connect(server);
    await client.readLine();
    expect(await client.command('PASS alice pw')).toBe('-ERR No user name given (USER first)');
    await client.command('USER alice');
    expect(await client.command('PASS wrong')).toBe('-ERR [AUTH] Authentication failed');
    expect(await client.command('PASS alice pw')).toBe('-ERR No user name given (USER first)');
    await client.command('USER nobody');
    expect(await client.command('PASS alice pw')).toBe('-ERR [AUTH] Authentication failed');
    expect(await client.command('BOGUS')).toBe('-ERR Unknown command');
  });

  it('authenticates with SASL PLAIN (initial response and continuation), LOGIN and CRAM-MD5', async () => {
    const server = await start({ features: { sasl: ['PLAIN', 'LOGIN', 'CRAM-MD5'] } });

    const plainIr = await connect(server);
    await plainIr.readLine();
    expect(await plainIr.command(`AUTH PLAIN ${b64('\0alice\0wrong')}`)).toBe('-ERR [AUTH] Authentication failed');
    expect(await plainIr.command('AUTH PLAIN not*base64')).toBe('-ERR Malformed SASL response');
    expect(await plainIr.command(`AUTH PLAIN ${b64('alice\0alice\0alice pw')}`)).toBe('+OK Logged in.');
    plainIr.close();
    await server.whenIdle();

    const plain = await connect(server);
    await plain.readLine();
    expect(await plain.command('AUTH PLAIN')).toBe('+ ');
    expect(await plain.command(b64('\0alice\0alice pw'))).toBe('+OK Logged in.');
    plain.close();
    await server.whenIdle();

    const login = await connect(server);
    await login.readLine();
    expect(await login.command('AUTH LOGIN')).toBe(`+ ${b64('Username:')}`);
    expect(await login.command(b64('alice'))).toBe(`+ ${b64('Password:')}`);
    expect(await login.command(b64('alice pw'))).toBe('+OK Logged in.');
    login.close();
    await server.whenIdle();

    const cram = await connect(server);
    await cram.readLine();
    const challengeLine = await cram.command('AUTH CRAM-MD5');
    expect(challengeLine).toMatch(/^\+ [A-Za-z0-9+/=]+$/);
    const challenge = Buffer.from(challengeLine.slice(2), 'base64').toString('latin1');
    expect(challenge).toMatch(/^<[^>]+>$/);
    const digest = createHmac('md5', 'alice pw').update(challenge).digest('hex');
    expect(await cram.command(b64(`alice ${digest}`))).toBe('+OK Logged in.');
  });

  it('cancels AUTH on "*" and refuses mechanisms it does not offer', async () => {
    const server = await start();
    const client = await connect(server);
    await client.readLine();
    expect(await client.command('AUTH XOAUTH2')).toBe('-ERR Unsupported authentication mechanism');
    expect(await client.command('AUTH LOGIN')).toBe(`+ ${b64('Username:')}`);
    expect(await client.command('*')).toBe('-ERR Authentication cancelled');
    client.send('AUTH\r\n');
    expect(await client.readMultiline()).toEqual({ status: '+OK Supported mechanisms follow', lines: ['PLAIN', 'LOGIN'] });
  });

  it('supports APOP with the timestamp of its greeting', async () => {
    const server = await start({ features: { apop: true } });
    const client = await connect(server);
    const greeting = await client.readLine();
    const timestamp = /<[^>]+>/.exec(greeting)?.[0];
    expect(timestamp).toBeDefined();
    expect(await client.command('APOP alice 0123456789abcdef0123456789abcdef')).toBe(
      '-ERR [AUTH] Authentication failed',
    );
    const digest = createHash('md5').update(`${timestamp}alice pw`).digest('hex');
    expect(await client.command(`APOP alice ${digest}`)).toBe('+OK Logged in.');
  });

  it('runs the XOAUTH2 failure exchange: JSON error challenge, empty line, -ERR [AUTH]', async () => {
    const logLines: string[] = [];
    const server = await start({ features: { sasl: ['XOAUTH2', 'OAUTHBEARER'] }, log: (l) => logLines.push(l) });
    const client = await connect(server);
    await client.readLine();

    const badPayload = b64('user=alice\x01auth=Bearer expired-token\x01\x01');
    const challenge = await client.command(`AUTH XOAUTH2 ${badPayload}`);
    expect(challenge).toMatch(/^\+ /);
    const error = JSON.parse(Buffer.from(challenge.slice(2), 'base64').toString('utf8')) as Record<string, string>;
    expect(error.status).toBe('401');
    expect(await client.command('')).toBe('-ERR [AUTH] Authentication failed');

    // Two-step form, good token.
    expect(await client.command('AUTH XOAUTH2')).toBe('+ ');
    expect(await client.command(b64('user=alice\x01auth=Bearer good-token\x01\x01'))).toBe('+OK Logged in.');

    // The session keeps the payloads for assertions; the log never shows them.
    expect(server.sessions[0]?.received).toEqual([`AUTH XOAUTH2 ${badPayload}`, '', 'AUTH XOAUTH2', expect.any(String)]);
    const log = logLines.join('\n');
    expect(log).toContain('AUTH XOAUTH2 <redacted>');
    expect(log).not.toContain(badPayload);
    expect(log).not.toContain(b64('user=alice\x01auth=Bearer good-token\x01\x01'));
  });

  it('accepts OAUTHBEARER (RFC 7628) with an initial response and fails a bad token with a challenge', async () => {
    const server = await start({ features: { sasl: ['OAUTHBEARER'] } });
    const client = await connect(server);
    await client.readLine();
    const bad = await client.command(`AUTH OAUTHBEARER ${b64('n,a=alice,\x01auth=Bearer nope\x01\x01')}`);
    expect(JSON.parse(Buffer.from(bad.slice(2), 'base64').toString('utf8'))).toMatchObject({ status: 'invalid_token' });
    expect(await client.command(b64('\x01'))).toBe('-ERR [AUTH] Authentication failed');
    const good = b64('n,a=alice,\x01host=127.0.0.1\x01port=110\x01auth=Bearer good-token\x01\x01');
    expect(await client.command(`AUTH OAUTHBEARER ${good}`)).toBe('+OK Logged in.');
  });

  it('can be a server without CAPA, or without UIDL', async () => {
    const noCapa = await start({ capabilities: null });
    const a = await connect(noCapa);
    await a.readLine();
    expect(await a.command('CAPA')).toBe('-ERR Unknown command');

    const noUidl = await start({ features: { uidl: false } });
    const b = await loggedIn(noUidl);
    b.send('CAPA\r\n');
    expect((await b.readMultiline()).lines).not.toContain('UIDL');
    expect(await b.command('UIDL')).toBe('-ERR Unknown command');
  });

  it('rejects over-long command lines', async () => {
    const server = await start();
    const client = await connect(server);
    await client.readLine();
    client.send(`NOOP ${'x'.repeat(70 * 1024)}`);
    expect((await client.readToEnd()).toString('latin1')).toBe('-ERR Line too long\r\n');
  });

  it('listens on loopback only', async () => {
    await expect(startPop3Server({ host: '0.0.0.0' })).rejects.toThrow(/loopback/);
  });
});

describe('TLS', () => {
  let dir: string;
  let pki: TestPki;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'script-server-pki-'));
    pki = await makeTestPki(dir);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const tlsOption = (): Pop3ServerOptions['tls'] => ({ key: pki.serverKeyPem, cert: pki.serverCertPem });

  it('upgrades with STLS (RFC 2595) and stops advertising it', async () => {
    const server = await start({ tls: tlsOption() });
    const client = await connect(server);
    await client.readLine();
    client.send('CAPA\r\n');
    expect((await client.readMultiline()).lines).toContain('STLS');
    expect(await client.command('STLS')).toBe('+OK Begin TLS negotiation');
    await client.upgrade(pki.caCertPem);

    client.send('CAPA\r\n');
    expect((await client.readMultiline()).lines).not.toContain('STLS');
    expect(await client.command('STLS')).toBe('-ERR Command not permitted when TLS active');
    expect(await client.command('USER alice')).toBe('+OK');
    expect(await client.command('PASS alice pw')).toBe('+OK Logged in.');
    expect(server.sessions[0]?.tls).toBe(true);
  });

  it('drops plaintext pipelined after STLS instead of running it inside TLS', async () => {
    const server = await start({ tls: tlsOption() });
    const client = await connect(server);
    await client.readLine();
    client.send('STLS\r\nUSER alice\r\nPASS alice pw\r\n');
    expect(await client.readLine()).toBe('+OK Begin TLS negotiation');
    await client.upgrade(pki.caCertPem);
    expect(await client.command('STAT')).toBe('-ERR Command not valid in this state');
  });

  it('treats a client that rejects the certificate as a closed connection, not a server error', async () => {
    const server = await start({ tls: tlsOption() });
    const client = await connect(server);
    await client.readLine();
    expect(await client.command('STLS')).toBe('+OK Begin TLS negotiation');
    await expect(client.upgrade(pki.untrustedCaCertPem)).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
    await server.sessions[0]?.finished;
    expect(server.errors).toEqual([]);

    const implicit = await start({ tls: tlsOption(), implicitTls: true });
    await expect(RawClient.connect(implicit, { ca: pki.untrustedCaCertPem })).rejects.toThrow(/certificate/i);
    expect(implicit.errors).toEqual([]);
  });

  it('does not offer STLS when told not to', async () => {
    const server = await start({ tls: tlsOption(), features: { stls: false } });
    const client = await connect(server);
    await client.readLine();
    client.send('CAPA\r\n');
    expect((await client.readMultiline()).lines).not.toContain('STLS');
    expect(await client.command('STLS')).toBe('-ERR STLS not available');
  });

  it('serves implicit TLS', async () => {
    const server = await start({ tls: tlsOption(), implicitTls: true });
    expect(server.url('alice', 'alice pw')).toBe(`pop3s://alice:alice%20pw@127.0.0.1:${server.port}`);
    const client = await connect(server, { ca: pki.caCertPem });
    expect(await client.readLine()).toBe('+OK popdrain test server ready');
    expect(await client.command('USER alice')).toBe('+OK');
    expect(await client.command('PASS alice pw')).toBe('+OK Logged in.');
    expect(await client.command('QUIT')).toBe('+OK Logging out, 0 messages deleted');
    await server.whenIdle();
    expect(server.sessions[0]?.tls).toBe(true);
  });
});

describe('scripted misbehaviour', () => {
  it('disconnectMidBody can reset the connection (RST) in the middle of a TOP answer', async () => {
    const server = await start({ hooks: disconnectMidBody(3, { command: 'TOP', how: 'reset' }) });
    const client = await loggedIn(server);
    client.send('TOP 1 0\r\n');
    // Whether the client then sees ECONNRESET or a plain EOF depends on when it reads; the
    // bytes before the reset are there either way.
    expect((await client.readToEnd()).toString('latin1')).toBe('+OK\r\nFro');
  });

  it('disconnectMidBody: status line, the first bytes of the body, then the connection drops', async () => {
    const server = await start({ hooks: disconnectMidBody(10) });
    const client = await loggedIn(server);
    client.send('RETR 1\r\n');
    const received = (await client.readToEnd()).toString('latin1');
    expect(received).toBe(`+OK ${MSG_DOTS.length} octets\r\n${MSG_DOTS.subarray(0, 10).toString('latin1')}`);
    await server.whenIdle();
    expect(server.mailboxes.alice).toHaveLength(3);
  });

  it('stallMidBody and silentAfter stay connected and silent; bodyWithoutTerminator ends without "."', async () => {
    const stall = await start({ hooks: stallMidBody(5, { message: 2 }) });
    const a = await loggedIn(stall);
    a.send('RETR 2\r\n');
    expect(await a.readLine()).toBe(`+OK ${MSG_TWO.length} octets`);
    await new Promise((resolve) => setTimeout(resolve, SILENCE_WINDOW_MS));
    expect(a.unread).toBe('Subje');
    expect(a.isEnded).toBe(false);

    const silent = await start({ hooks: silentAfter('STAT') });
    const b = await loggedIn(silent);
    b.send('STAT\r\nNOOP\r\n');
    await b.expectSilence();
    expect(silent.sessions[0]?.received.slice(-2)).toEqual(['STAT', 'NOOP']);

    const noTerminator = await start({ hooks: bodyWithoutTerminator() });
    const c = await loggedIn(noTerminator);
    c.send('RETR 3\r\n');
    expect((await c.readToEnd()).toString('latin1')).toBe(
      `+OK ${MSG_NO_FINAL_CRLF.length} octets\r\n${MSG_NO_FINAL_CRLF.toString('latin1')}\r\n`,
    );
  });

  it('silentGreeting sends nothing at all', async () => {
    const server = await start({ hooks: silentGreeting() });
    const client = await connect(server);
    await client.expectSilence();
  });

  it('respondWith sends exactly the scripted bytes, then continues or closes', async () => {
    const longLine = `+OK ${'9'.repeat(10_000)}`;
    const server = await start({
      hooks: [
        respondWith('STAT', longLine, { times: 1 }),
        respondWith('LIST 1', Buffer.from('+OK 1 100\n'), { times: 1 }),
        respondWith('NOOP', '* OK not pop3', { then: 'end' }),
      ],
    });
    const client = await loggedIn(server);
    expect(await client.command('STAT')).toBe(longLine);
    expect(await client.command('STAT')).toMatch(/^\+OK 3 \d+$/); // times: 1
    client.send('LIST 1\r\nNOOP\r\n');
    expect((await client.readToEnd()).toString('latin1')).toBe('+OK 1 100\n* OK not pop3\r\n');
  });

  it('rejectLogin answers good credentials with a response code, a given number of times', async () => {
    const server = await start({
      hooks: [rejectLogin('LOGIN-DELAY', { times: 1 }), rejectLogin('SYS/PERM', { user: 'bob' })],
      users: { alice: { password: 'alice pw' }, bob: { password: 'bob pw' } },
    });
    const client = await connect(server);
    await client.readLine();
    await client.command('USER alice');
    expect(await client.command('PASS alice pw')).toBe('-ERR [LOGIN-DELAY] Logged in too recently');
    await client.command('USER alice');
    expect(await client.command('PASS wrong')).toBe('-ERR [AUTH] Authentication failed');
    await client.command('USER bob');
    expect(await client.command('PASS bob pw')).toBe('-ERR [SYS/PERM] Permanent system failure');
    await client.command('USER alice');
    expect(await client.command('PASS alice pw')).toBe('+OK Logged in.');
  });

  it('microsoftXoauth2: the initial response is a protocol error; two steps with a bare "+" work', async () => {
    const server = await start({ capabilities: MICROSOFT_CAPABILITIES, hooks: microsoftXoauth2() });
    const payload = b64('user=alice\x01auth=Bearer good-token\x01\x01');

    const oneLine = await connect(server);
    await oneLine.readLine();
    oneLine.send('CAPA\r\n');
    expect((await oneLine.readMultiline()).lines).toEqual([...MICROSOFT_CAPABILITIES]);
    oneLine.send(`AUTH XOAUTH2 ${payload}\r\n`);
    expect((await oneLine.readToEnd()).toString('latin1')).toBe('-ERR Protocol error. Connection is closed. 10\r\n');

    const twoSteps = await connect(server);
    await twoSteps.readLine();
    expect(await twoSteps.command('AUTH XOAUTH2')).toBe('+');
    expect(await twoSteps.command(b64('user=alice\x01auth=Bearer stale\x01\x01'))).toBe(
      '-ERR Authentication failure: unknown user name or bad password.',
    );
    expect(await twoSteps.command('auth xoauth2')).toBe('+');
    expect(await twoSteps.command(payload)).toBe('+OK User successfully authenticated.');
    expect(await twoSteps.command('STAT')).toMatch(/^\+OK 3 \d+$/);
  });

  it('onCommand and onConnect hooks get raw control of the connection', async () => {
    const server = await start({
      hooks: {
        async onConnect(conn) {
          await conn.write('+OK hello');
          await conn.write(' in two writes\r\n');
          return false; // then the normal session runs (its greeting follows)
        },
        async onCommand(conn, line) {
          if (line !== 'ECHO') return false;
          const next = await conn.readLine(1_000);
          await conn.writeLine(`+OK you said ${next ?? '<eof>'}`);
          return true;
        },
      },
    });
    const client = await connect(server);
    expect(await client.readLine()).toBe('+OK hello in two writes');
    expect(await client.readLine()).toBe('+OK popdrain test server ready');
    client.send('ECHO\r\nsomething\r\nNOOP\r\n');
    expect(await client.readLine()).toBe('+OK you said something');
    expect(await client.readLine()).toBe('-ERR Command not valid in this state');
  });

  it('close() fails when a hook threw, so a broken script cannot pass silently', async () => {
    const server = await startPop3Server({
      hooks: {
        onCommand() {
          throw new Error('bug in the script');
        },
      },
    });
    const client = await RawClient.connect(server);
    await client.readLine();
    client.send('NOOP\r\n');
    await client.readToEnd();
    await expect(server.close()).rejects.toThrow(/1 unexpected error/);
    expect(server.errors[0]?.message).toBe('bug in the script');
  });
});

describe('wire helpers', () => {
  it('dot-stuffs every line that starts with a dot, including the first', () => {
    expect(dotStuff(Buffer.from('.a\r\nb\r\n.\r\n..c')).toString()).toBe('..a\r\nb\r\n..\r\n...c');
    const plain = Buffer.from('no dots\r\n');
    expect(dotStuff(plain)).toBe(plain);
  });

  it('terminates bodies, adding the missing final CRLF', () => {
    expect(encodeMultilineBody(Buffer.alloc(0)).toString()).toBe('.\r\n');
    expect(encodeMultilineBody(Buffer.from('x\r\n')).toString()).toBe('x\r\n.\r\n');
    expect(encodeMultilineBody(Buffer.from('x')).toString()).toBe('x\r\n.\r\n');
  });

  it('extracts TOP: the header block with its blank line plus n body lines', () => {
    const msg = Buffer.from('A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3');
    expect(extractTop(msg, 0).toString()).toBe('A: 1\r\nB: 2\r\n\r\n');
    expect(extractTop(msg, 2).toString()).toBe('A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n');
    expect(extractTop(msg, 9).toString()).toBe(msg.toString());
    expect(extractTop(Buffer.from('A: 1\r\nB: 2'), 3).toString()).toBe('A: 1\r\nB: 2');
  });
});
