// Proves the Dovecot test harness with raw sockets, independently of our POP3 client.
// If Dovecot cannot start, beforeAll throws and every test here fails (never skips).
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type Dovecot } from '../../testkit/pop3-servers/dovecot.js';

const LINE_TIMEOUT_MS = 5_000;
const FAILED_LOGIN_BUDGET_MS = 1_000;

/** Just enough POP3 to talk to the server: CRLF lines, multi-line blocks, STLS upgrade. */
class RawPop3 {
  private buf = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  private ended = false;
  private failure: Error | undefined;

  private constructor(private sock: Socket | TLSSocket) {
    this.listen(sock);
  }

  static plain(host: string, port: number): RawPop3 {
    return new RawPop3(netConnect({ host, port }));
  }

  static async tls(host: string, port: number, ca: string): Promise<RawPop3> {
    const sock = tlsConnect({ host, port, ca, servername: 'localhost' });
    const conn = new RawPop3(sock);
    await new Promise<void>((resolve, reject) => {
      sock.once('secureConnect', resolve);
      sock.once('error', reject);
    });
    return conn;
  }

  get socket(): Socket | TLSSocket {
    return this.sock;
  }

  private listen(sock: Socket | TLSSocket): void {
    sock.on('data', (chunk: Buffer) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      this.wake?.();
    });
    sock.on('error', (err) => {
      this.failure = err;
      this.wake?.();
    });
    sock.on('close', () => {
      this.ended = true;
      this.wake?.();
    });
  }

  async line(): Promise<string> {
    const deadline = Date.now() + LINE_TIMEOUT_MS;
    for (;;) {
      const eol = this.buf.indexOf('\r\n');
      if (eol >= 0) {
        const text = this.buf.subarray(0, eol).toString('latin1');
        this.buf = this.buf.subarray(eol + 2);
        return text;
      }
      if (this.failure) throw this.failure;
      if (this.ended) throw new Error('connection closed while waiting for a line');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a line');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          this.wake = undefined;
          resolve();
        };
      });
    }
  }

  async command(cmd: string): Promise<string> {
    this.sock.write(`${cmd}\r\n`);
    return this.line();
  }

  /** Reads the lines of a multi-line response up to the terminating ".". */
  async block(): Promise<string[]> {
    const lines: string[] = [];
    for (let l = await this.line(); l !== '.'; l = await this.line()) lines.push(l);
    return lines;
  }

  /** After "+OK" to STLS: wraps the same TCP connection in TLS. */
  async startTls(ca: string): Promise<void> {
    const plain = this.sock;
    plain.removeAllListeners('data');
    const secure = tlsConnect({ socket: plain, ca, servername: 'localhost' });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    this.sock = secure;
    this.listen(secure);
  }

  close(): void {
    this.sock.destroy();
  }
}

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

describe('Dovecot test harness', () => {
  let dovecot: Dovecot;
  const open: RawPop3[] = [];
  const track = <T extends RawPop3>(c: T): T => {
    open.push(c);
    return c;
  };

  beforeAll(async () => {
    dovecot = await startDovecot();
    await dovecot.addUser('alice', 'alice-secret');
    dovecot.addOAuthToken('alice', 'good-token-for-alice');
  });

  afterAll(async () => {
    for (const c of open) c.close();
    await dovecot?.stop();
  });

  it('greets over implicit TLS with a certificate that verifies against the test CA', async () => {
    const conn = track(await RawPop3.tls(dovecot.host, dovecot.ports.pop3s, dovecot.pki.caCertPem));
    const sock = conn.socket as TLSSocket;
    expect(sock.authorized).toBe(true);
    expect(sock.getPeerCertificate().subjectaltname).toContain('DNS:localhost');
    // APOP in auth_mechanisms makes Dovecot put a timestamp in the greeting.
    expect(await conn.line()).toMatch(/^\+OK .*<[^>]+@[^>]+>$/);

    // The same server must not verify against an unrelated CA.
    await expect(
      RawPop3.tls(dovecot.host, dovecot.ports.pop3s, dovecot.pki.untrustedCaCertPem),
    ).rejects.toThrow(/certificate/i);
  });

  it('logs in with USER/PASS and STAT counts the delivered messages in CRLF octets', async () => {
    await dovecot.addUser('stat-user', 'stat-pass');
    const messages = ['Subject: one\n\nfirst body\n', 'Subject: two\r\n\r\nsecond body\r\n'];
    for (const m of messages) await dovecot.deliver('stat-user', m);
    expect(await dovecot.listMaildir('stat-user')).toHaveLength(2);
    const crlfOctets = messages
      .map((m) => Buffer.byteLength(m.replace(/\r?\n/g, '\r\n')))
      .reduce((a, b) => a + b, 0);

    const conn = track(RawPop3.plain(dovecot.host, dovecot.ports.pop3));
    expect(await conn.line()).toMatch(/^\+OK/);
    expect(await conn.command('USER stat-user')).toMatch(/^\+OK/);
    expect(await conn.command('PASS stat-pass')).toMatch(/^\+OK/);
    expect(await conn.command('STAT')).toBe(`+OK 2 ${crlfOctets}`);
    expect(await conn.command('QUIT')).toMatch(/^\+OK/);
  });

  it('numbers deliverMany messages in array order', async () => {
    const count = 30;
    await dovecot.addUser('order-user', 'order-pass');
    await dovecot.deliverMany(
      'order-user',
      Array.from({ length: count }, (_, i) => Buffer.from(`Subject: message ${i + 1}\n\nbody\n`)),
    );
    const conn = track(RawPop3.plain(dovecot.host, dovecot.ports.pop3));
    await conn.line();
    await conn.command('USER order-user');
    expect(await conn.command('PASS order-pass')).toMatch(/^\+OK/);
    // Pipelined: Dovecot always advertises PIPELINING.
    conn.socket.write(Array.from({ length: count }, (_, i) => `TOP ${i + 1} 0\r\n`).join(''));
    for (let i = 1; i <= count; i++) {
      expect(await conn.line()).toMatch(/^\+OK/);
      expect(await conn.block()).toEqual([`Subject: message ${i}`, '']);
    }
    await conn.command('QUIT');
  });

  it('refuses a wrong password quickly', async () => {
    const conn = track(RawPop3.plain(dovecot.host, dovecot.ports.pop3));
    await conn.line();
    for (let attempt = 0; attempt < 2; attempt++) {
      expect(await conn.command('USER alice')).toMatch(/^\+OK/);
      const started = Date.now();
      expect(await conn.command('PASS not-the-password')).toMatch(/^-ERR/);
      expect(Date.now() - started).toBeLessThan(FAILED_LOGIN_BUDGET_MS);
    }
    // No penalty afterwards for the same IP either.
    expect(await conn.command('USER alice')).toMatch(/^\+OK/);
    const started = Date.now();
    expect(await conn.command('PASS alice-secret')).toMatch(/^\+OK/);
    expect(Date.now() - started).toBeLessThan(FAILED_LOGIN_BUDGET_MS);
  });

  it('refuses USER before STLS on the 127.0.0.2 listener and allows it after', async () => {
    const conn = track(RawPop3.plain(dovecot.altHost, dovecot.ports.pop3Alt));
    expect(await conn.line()).toMatch(/^\+OK/);
    expect(await conn.command('USER alice')).toMatch(/^-ERR/);
    expect(await conn.command('STLS')).toMatch(/^\+OK/);
    await conn.startTls(dovecot.pki.caCertPem);
    expect(await conn.command('USER alice')).toMatch(/^\+OK/);
    expect(await conn.command('PASS alice-secret')).toMatch(/^\+OK/);
  });

  it('accepts AUTH XOAUTH2 with a registered token and refuses an unknown one', async () => {
    const good = track(await RawPop3.tls(dovecot.host, dovecot.ports.pop3s, dovecot.pki.caCertPem));
    await good.line();
    const ok = await good.command(
      `AUTH XOAUTH2 ${b64('user=alice\x01auth=Bearer good-token-for-alice\x01\x01')}`,
    );
    expect(ok).toMatch(/^\+OK/);
    expect(await good.command('STAT')).toMatch(/^\+OK \d+ \d+$/);

    const bad = track(await RawPop3.tls(dovecot.host, dovecot.ports.pop3s, dovecot.pki.caCertPem));
    await bad.line();
    // XOAUTH2 failure: a JSON error challenge, answered with an empty line, then -ERR.
    const challenge = await bad.command(
      `AUTH XOAUTH2 ${b64('user=alice\x01auth=Bearer unknown-token\x01\x01')}`,
    );
    expect(challenge).toMatch(/^\+ /);
    expect(JSON.parse(Buffer.from(challenge.slice(2), 'base64').toString('utf8'))).toMatchObject({
      status: '401',
    });
    expect(await bad.command('')).toMatch(/^-ERR/);
  });
});
