// The POP3 client against a real Dovecot (testkit/pop3-servers/dovecot.ts), on loopback only.
// One Dovecot for the file; each test has its own users, except the read-only tests of the
// byte-exact corpus, which share it (it holds a 64 MiB message).
// If Dovecot cannot start, beforeAll throws and every test here fails (never skips).
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { basename } from 'node:path';
import type { Readable } from 'node:stream';
import { connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  Pop3Client,
  Pop3Error,
  type AuthMethod,
  type Pop3ClientOptions,
  type Pop3Credentials,
  type Pop3TraceEvent,
} from '../../lib/pop3/index.js';
import { startDovecot, type Dovecot } from '../../testkit/pop3-servers/dovecot.js';

const MiB = 1024 * 1024;
/** The large message of the corpus (served as ~65 MiB with CRLF). */
const LARGE_MESSAGE_BYTES = 64 * MiB;
/**
 * Process RSS may grow by at most this much while the large message streams. A streaming client
 * measured ~10-25 MiB here (socket chunks the collector has not freed yet); one that held the
 * message ~60 MiB. Hence a message twice this size: with 30 MiB the two overlap.
 */
const MAX_RSS_GROWTH_BYTES = 40 * MiB;
/**
 * Most bytes the large message's stream may hold unread (its high-water mark is 256 KiB). Without
 * backpressure it held ~2.5 MiB with the consumer below.
 */
const MAX_BUFFERED_BYTES = MiB;
/** The message that is cut off in the middle. */
const DROPPED_MESSAGE_BYTES = 12 * MiB;
/** How long Dovecot may take to log the end of a session (the wait ends as soon as it does; 5 s was too short with two test files on two busy cores). */
const LOG_WAIT_MS = 20_000;
const LOG_POLL_MS = 20;

const SASL_MECHANISMS = ['CRAM-MD5', 'LOGIN', 'OAUTHBEARER', 'PLAIN', 'SCRAM-SHA-1', 'SCRAM-SHA-256', 'XOAUTH2'];

let dovecot: Dovecot;
const clients: Pop3Client[] = [];
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  dovecot = await startDovecot();
});

afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  await dovecot?.stop();
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  // Let pending socket events run, then check that no promise rejection went unhandled.
  await new Promise((r) => setTimeout(r, 20));
  expect(unhandled.splice(0)).toEqual([]);
});

// ---------------------------------------------------------------------------------------------
// Helpers

/** Implicit TLS to the pop3s listener, verified against the test CA. */
function implicitTls(extra: Partial<Pop3ClientOptions> = {}): Pop3ClientOptions {
  return {
    host: dovecot.host,
    port: dovecot.ports.pop3s,
    tls: 'implicit',
    tlsOptions: { ca: dovecot.pki.caCertPem, servername: 'localhost' },
    ...extra,
  };
}

/** STLS on the plain listener of 127.0.0.1. */
function startTls(extra: Partial<Pop3ClientOptions> = {}): Pop3ClientOptions {
  return implicitTls({ port: dovecot.ports.pop3, tls: 'starttls', ...extra });
}

let userSeq = 0;
/** A user of its own for one test: a unique name, a password, and optionally messages. */
async function newUser(prefix: string, password: string, messages: readonly string[] = []): Promise<string> {
  userSeq += 1;
  const user = `${prefix}-${userSeq}`;
  await dovecot.addUser(user, password);
  if (messages.length > 0) await dovecot.deliverMany(user, messages.map((m) => Buffer.from(m, 'utf8')));
  return user;
}

async function connect(options: Pop3ClientOptions): Promise<Pop3Client> {
  const client = await Pop3Client.connect(options);
  clients.push(client);
  return client;
}

async function session(user: string, password: string, extra: Partial<Pop3ClientOptions> = {}): Promise<Pop3Client> {
  const client = await connect(implicitTls(extra));
  await client.login({ user, password });
  return client;
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

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

/** The maildir file name without the `:2,<flags>` info that Dovecot adds when it moves mail to cur/. */
const uniqueName = (path: string): string => basename(path).split(':')[0]!;

async function maildirNames(user: string): Promise<string[]> {
  return (await dovecot.listMaildir(user)).map(uniqueName);
}

/**
 * Waits until Dovecot has logged the end of `count` mail sessions of `user`, so what we then see
 * in the maildir is what the server left after the session, not a race with it.
 */
async function sessionsEnded(user: string, count: number): Promise<void> {
  const re = new RegExp(`pop3\\(${user}\\)<[^>]*><[^>]*>: Info: Disconnected`, 'g');
  const deadline = Date.now() + LOG_WAIT_MS;
  for (;;) {
    const log = await readFile(dovecot.logPath, 'utf8');
    const seen = log.match(re)?.length ?? 0;
    if (seen >= count) return;
    if (Date.now() > deadline) {
      throw new Error(`Dovecot logged ${seen} of ${count} ended sessions of ${user}\n${await dovecot.logTail(15)}`);
    }
    await new Promise((r) => setTimeout(r, LOG_POLL_MS));
  }
}

const CR = 0x0d;
const LF = 0x0a;
const CRLF = Buffer.from('\r\n', 'latin1');

/**
 * What Dovecot serves for a maildir file, computed without the client: every LF that has no CR
 * before it becomes CRLF (a lone CR stays), and a file that does not end in LF gets a CRLF
 * before the terminator. `listSize` is the size of the CRLF form alone, which LIST reports.
 */
class ServedDigest {
  private readonly hash = createHash('sha256');
  private last = -1;
  private crlfBytes = 0;

  update(chunk: Buffer): this {
    let start = 0;
    for (let lf = chunk.indexOf(LF); lf !== -1; lf = chunk.indexOf(LF, lf + 1)) {
      const before = lf > 0 ? chunk[lf - 1] : this.last;
      if (before !== CR) {
        this.add(chunk.subarray(start, lf));
        this.add(CRLF);
        start = lf + 1;
      }
    }
    this.add(chunk.subarray(start));
    if (chunk.length > 0) this.last = chunk[chunk.length - 1]!;
    return this;
  }

  finish(): { sha256: string; listSize: number; servedSize: number; endsWithNewline: boolean } {
    const listSize = this.crlfBytes;
    const endsWithNewline = this.last === LF;
    if (!endsWithNewline) this.add(CRLF);
    return { sha256: this.hash.digest('hex'), listSize, servedSize: this.crlfBytes, endsWithNewline };
  }

  private add(part: Buffer): void {
    this.hash.update(part);
    this.crlfBytes += part.length;
  }
}

/** The served form of a small message, as bytes (LF → CRLF, plus CRLF when no final LF). */
function servedBytes(file: Buffer): Buffer {
  const parts: Buffer[] = [];
  let start = 0;
  for (let lf = file.indexOf(LF); lf !== -1; lf = file.indexOf(LF, lf + 1)) {
    if (lf === 0 || file[lf - 1] !== CR) {
      parts.push(file.subarray(start, lf), CRLF);
      start = lf + 1;
    }
  }
  parts.push(file.subarray(start));
  if (file.length === 0 || file[file.length - 1] !== LF) parts.push(CRLF);
  return Buffer.concat(parts);
}

/**
 * A message of exactly `size` bytes of LF-terminated lines: numbered lines of varying length,
 * with lines that are just ".", lines starting with "." and "..", and a last line ending in ".".
 * Written straight into one Buffer so that generating it leaves little garbage behind.
 */
function largeMessage(size: number, id: string): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let off = buf.write(
    `From: Large Sender <large@popdrain.test>\nTo: drain@popdrain.test\nSubject: ${id}\n` +
      `Message-ID: <${id}@popdrain.test>\nContent-Type: text/plain; charset=us-ascii\n\n`,
    0,
    'latin1',
  );
  const filler = randomBytes(3 * 1024).toString('base64');
  for (let n = 0; ; n++) {
    let line: string;
    if (n % 1000 === 7) line = '.\n';
    else if (n % 1000 === 500) line = `..two dots ${n}\n`;
    else if (n % 1000 === 900) line = `.one dot ${n}\n`;
    else {
      const from = (n * 7) % 2048;
      line = `${n} ${filler.slice(from, from + 40 + (n % 53))}\n`;
    }
    if (off + line.length + 64 > size) break;
    off += buf.write(line, off, 'latin1');
  }
  // Pad to the exact size; the last line ends in a dot.
  const tail = size - off;
  buf.fill('z', off, off + tail - 2, 'latin1');
  buf.write('.\n', size - 2, 'latin1');
  return buf;
}

function rss(): number {
  return process.memoryUsage().rss;
}

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

// ---------------------------------------------------------------------------------------------

describe('byte-exact retrieval', () => {
  const USER = 'corpus-user';
  const PASSWORD = 'corpus-password';
  const header = (subject: string, extra = ''): string =>
    `From: Corpus <corpus@popdrain.test>\nTo: drain@popdrain.test\nSubject: ${subject}\n` +
    `Message-ID: <${subject.replace(/\W+/g, '-')}@popdrain.test>\n${extra}`;
  const pseudoText = (length: number, first: string): string => {
    const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?-_=+';
    let s = first;
    for (let i = 0; s.length < length; i++) s += alphabet[(i * 31 + length) % alphabet.length];
    return s.slice(0, length);
  };
  const attachment = randomBytes(150_000);
  const attachmentBase64 = attachment.toString('base64').replace(/.{76}/g, '$&\n');

  /** name → bytes as delivered (LF line ends, as a maildir stores them). */
  const corpus: Array<[string, Buffer]> = [
    [
      'dots',
      Buffer.from(
        `${header('dots')}\n.\n..\n...\n.leading dot\n..two leading dots\n.\rdot then CR\n` +
          ` .space first\n.\ntext between\n.\n`,
        'latin1',
      ),
    ],
    ['ends-in-dot', Buffer.from(`${header('ends in dot')}\nfirst line\nfoo.\n`, 'latin1')],
    [
      '8bit',
      Buffer.concat([
        Buffer.from(
          `${header('8bit Grüße 日本', 'Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n')}\n` +
            'Grüße aus Köln, 日本語のテキスト, emoji 😀\n',
          'utf8',
        ),
        Buffer.from([0xff, 0xfe, 0x80, 0xc0, 0xc1, 0xf5, 0xe2, 0x82, 0x0a]), // invalid UTF-8
        Buffer.from([0x2e, 0xbf, 0x00, 0x01, 0x7f, 0x0d, 0x41, 0x0a]), // ".", continuation, NUL, lone CR
        Buffer.from('last line\n', 'utf8'),
      ]),
    ],
    ...[998, 1_000, 8_192, 65_536, 200_000].map((length): [string, Buffer] => [
      `line-${length}`,
      Buffer.from(
        `${header(`line of ${length}`)}\nbefore\n${pseudoText(length, 'L')}\n${pseudoText(length, '.')}\nafter\n`,
        'latin1',
      ),
    ]),
    [
      'attachment',
      Buffer.from(
        `${header('attachment', 'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b1"\n')}\n` +
          `This is a multi-part message in MIME format.\n--b1\nContent-Type: text/plain; charset=us-ascii\n\n` +
          `See the attachment.\n.\n--b1\nContent-Type: application/octet-stream; name="blob.bin"\n` +
          `Content-Transfer-Encoding: base64\nContent-Disposition: attachment; filename="blob.bin"\n\n` +
          `${attachmentBase64}\n--b1--\n`,
        'latin1',
      ),
    ],
    ['headers-only', Buffer.from(header('headers only'), 'latin1')],
    ['no-final-newline', Buffer.from(`${header('no final newline')}\nline one\nthe end.`, 'latin1')],
    ['no-final-newline-dot', Buffer.from(`${header('no final newline, dot')}\nline one\n.`, 'latin1')],
    ['large', largeMessage(LARGE_MESSAGE_BYTES, 'large')],
  ];
  type Expected = ReturnType<ServedDigest['finish']> & { name: string };
  let expected: Expected[];

  beforeAll(async () => {
    await dovecot.addUser(USER, PASSWORD);
    await dovecot.deliverMany(
      USER,
      corpus.map(([, bytes]) => bytes),
    );
    // What the server holds: the files must be what we delivered; Dovecot serves them as CRLF.
    const files = await dovecot.listMaildir(USER);
    expect(files).toHaveLength(corpus.length);
    expected = [];
    for (const [i, path] of files.entries()) {
      const [name, delivered] = corpus[i]!;
      // Streamed, so that no copy of the large message becomes garbage that the collector
      // would free in the middle of the RSS measurement below (and so hide a growth).
      const raw = createHash('sha256');
      const served = new ServedDigest();
      for await (const chunk of createReadStream(path)) {
        raw.update(chunk as Buffer);
        served.update(chunk as Buffer);
      }
      expect(raw.digest('hex'), `${name} is stored as delivered`).toBe(sha256(delivered));
      expected.push({ name, ...served.finish() });
    }
    const large = expected.at(-1)!;
    expect(large.listSize).toBeGreaterThan(25 * 1000 * 1000);
  }, 60_000);

  interface Run {
    digests: string[];
    sizes: number[];
    /** Most bytes the large message's stream held unread at once. */
    maxBuffered: number;
    /** Largest process RSS growth while the large message streamed. */
    rssGrowth: number;
  }

  async function retrieveAll(pipelining: boolean): Promise<Run> {
    const client = await session(USER, PASSWORD, { pipelining });
    expect(client.pipelining).toBe(pipelining);
    const list = await client.list();
    expect(list).toHaveLength(corpus.length);
    const run: Run = { digests: [], sizes: [], maxBuffered: 0, rssGrowth: 0 };
    for await (const message of client.retrieve(list)) {
      const isLarge = message.number === corpus.length;
      const hash = createHash('sha256');
      let bytes = 0;
      const baseline = rss();
      let peak = baseline;
      let nextSample = 0;
      for await (const chunk of message.stream) {
        hash.update(chunk as Buffer);
        bytes += (chunk as Buffer).length;
        if (!isLarge) continue;
        // The iterator takes everything the stream holds at once: a chunk's size is what was
        // buffered.
        run.maxBuffered = Math.max(run.maxBuffered, (chunk as Buffer).length);
        if (bytes >= nextSample) {
          peak = Math.max(peak, rss());
          nextSample += MiB;
          // A consumer slower than the server: without backpressure the body piles up.
          await new Promise((r) => setTimeout(r, 5));
        }
      }
      if (isLarge) run.rssGrowth = Math.max(peak, rss()) - baseline;
      run.digests.push(hash.digest('hex'));
      run.sizes.push(bytes);
    }
    await client.quit();
    return run;
  }

  it('RETR serves every message byte for byte as the CRLF form of the maildir file, pipelined and lock-step alike', async () => {
    const pipelined = await retrieveAll(true);
    const lockStep = await retrieveAll(false);
    for (const [i, e] of expected.entries()) {
      expect(pipelined.sizes[i], `${e.name}: served size`).toBe(e.servedSize);
      expect(pipelined.digests[i], `${e.name}: sha256 (pipelined)`).toBe(e.sha256);
    }
    expect(lockStep.digests).toEqual(pipelined.digests);
    expect(lockStep.sizes).toEqual(pipelined.sizes);
    // Streaming ~65 MiB must not hold it: the growth stays well below the message size, and the
    // stream never holds more than its high-water mark and a chunk (backpressure).
    for (const run of [pipelined, lockStep]) {
      expect(run.rssGrowth).toBeLessThan(MAX_RSS_GROWTH_BYTES);
      expect(run.maxBuffered).toBeLessThan(MAX_BUFFERED_BYTES);
    }
  });

  it('LIST sizes are the CRLF sizes (a message without final newline is served 2 bytes longer), STAT agrees, UIDLs are unique', async () => {
    const client = await session(USER, PASSWORD);
    const list = await client.list();
    expect(list.map((e) => e.number)).toEqual(corpus.map((_, i) => i + 1));
    expect(list.map((e) => e.size)).toEqual(expected.map((e) => e.listSize));
    for (const e of expected) expect(e.servedSize - e.listSize).toBe(e.endsWithNewline ? 0 : 2);
    expect(await client.listOne(3)).toEqual(list[2]);
    expect(await client.stat()).toEqual({ count: corpus.length, size: expected.reduce((n, e) => n + e.listSize, 0) });

    const uidl = await client.uidl();
    expect(uidl.map((e) => e.number)).toEqual(list.map((e) => e.number));
    expect(new Set(uidl.map((e) => e.uid)).size).toBe(corpus.length);
    expect(await client.uidlOne(5)).toEqual(uidl[4]);
    await client.quit();

    // Stable across sessions.
    const again = await session(USER, PASSWORD);
    expect(await again.uidl()).toEqual(uidl);
    await again.quit();
  });

  it('TOP n 0 is the header block and the blank line; TOP n k adds k body lines', async () => {
    const client = await session(USER, PASSWORD);
    const top = async (n: number, lines: number): Promise<Buffer> => readAll((await client.top(n, lines)).stream);
    for (const [i, [name, bytes]] of corpus.entries()) {
      if (name === 'headers-only' || name === 'large') continue;
      const headerEnd = bytes.indexOf('\n\n');
      expect(headerEnd, name).toBeGreaterThan(0);
      expect((await top(i + 1, 0)).equals(servedBytes(bytes.subarray(0, headerEnd + 2))), `${name}: TOP 0`).toBe(true);
    }
    // The dot-stuffed lines come back unstuffed.
    const dots = corpus[0]![1];
    const bodyStart = dots.indexOf('\n\n') + 2;
    expect((await top(1, 3)).toString('latin1')).toBe(
      servedBytes(dots.subarray(0, bodyStart)).toString('latin1') + '.\r\n..\r\n...\r\n',
    );
    // A message without a blank line: TOP gives just the headers (Dovecot adds no blank line).
    const headersOnly = corpus.findIndex(([name]) => name === 'headers-only');
    expect((await top(headersOnly + 1, 0)).equals(servedBytes(corpus[headersOnly]![1]))).toBe(true);
    // The large message: its headers, without reading the 64 MiB.
    const largeBytes = corpus.at(-1)![1];
    const largeHeaderEnd = largeBytes.indexOf('\n\n') + 2;
    expect((await top(corpus.length, 0)).equals(servedBytes(largeBytes.subarray(0, largeHeaderEnd)))).toBe(true);
    await client.quit();
  });
});

// ---------------------------------------------------------------------------------------------

describe('deletion', () => {
  const PASSWORD = 'dele-password';
  const messages = [1, 2, 3, 4].map((i) => Buffer.from(`Subject: dele ${i}\n\nmessage ${i}\n`));

  it('DELE takes effect only at QUIT: closing without QUIT keeps the message, QUIT removes exactly it', async () => {
    const user = 'dele-user';
    await dovecot.addUser(user, PASSWORD);
    await dovecot.deliverMany(user, messages);
    const files = await maildirNames(user);
    expect(files).toHaveLength(4);

    const first = await session(user, PASSWORD);
    const uidlBefore = await first.uidl();
    await first.dele(2);
    // Within the session the message is gone...
    expect((await first.stat()).count).toBe(3);
    await expectPop3Error(first.listOne(2), 'COMMAND_FAILED');
    // ...but the connection ends without QUIT.
    first.close();
    expect(first.isClosed).toBe(true);
    await sessionsEnded(user, 1);

    const second = await session(user, PASSWORD);
    expect((await second.stat()).count).toBe(4);
    expect(await second.uidl()).toEqual(uidlBefore);
    expect(await maildirNames(user)).toEqual(files);

    await second.dele(2);
    await second.quit();
    await sessionsEnded(user, 2);
    expect(await maildirNames(user)).toEqual(files.filter((_, i) => i !== 1));

    const third = await session(user, PASSWORD);
    const uidlAfter = await third.uidl();
    expect(uidlAfter.map((e) => e.uid)).toEqual(uidlBefore.filter((e) => e.number !== 2).map((e) => e.uid));
    expect(uidlAfter.map((e) => e.number)).toEqual([1, 2, 3]);
    expect((await readAll((await third.retr(2)).stream)).equals(servedBytes(messages[2]!))).toBe(true);
    await third.quit();
  });

  it('RSET undoes DELE', async () => {
    const user = 'rset-user';
    await dovecot.addUser(user, PASSWORD);
    await dovecot.deliverMany(user, messages);
    const files = await maildirNames(user);

    const first = await session(user, PASSWORD);
    const uidlBefore = await first.uidl();
    await first.dele(1);
    await first.dele(3);
    expect((await first.stat()).count).toBe(2);
    await first.rset();
    expect((await first.stat()).count).toBe(4);
    await first.quit();
    await sessionsEnded(user, 1);

    expect(await maildirNames(user)).toEqual(files);
    const second = await session(user, PASSWORD);
    expect(await second.uidl()).toEqual(uidlBefore);
    await second.quit();
  });
});

// ---------------------------------------------------------------------------------------------

describe('a connection dropped in the middle of a message', () => {
  const PASSWORD = 'drop-password';

  /** A small message, a large one, a small one; returns what Dovecot will serve. */
  async function fillMailbox(user: string): Promise<{ first: Buffer; large: ReturnType<ServedDigest['finish']> }> {
    await dovecot.addUser(user, PASSWORD);
    const first = Buffer.from('Subject: first\n\nfirst\n');
    const large = largeMessage(DROPPED_MESSAGE_BYTES, `dropped-${user}`);
    await dovecot.deliverMany(user, [first, large, Buffer.from('Subject: third\n\nthird\n')]);
    return { first: servedBytes(first), large: new ServedDigest().update(large).finish() };
  }

  /**
   * As a drain would: RETR 1 and DELE 1, then RETR 2 with a STAT queued behind it, and the
   * connection destroyed with close() once 1 MiB of message 2 has arrived.
   */
  async function dropMidMessage(user: string, pipelining: boolean, served: { first: Buffer; large: { servedSize: number } }) {
    const sent: string[] = [];
    const client = await session(user, PASSWORD, {
      pipelining,
      trace: (e) => {
        if (e.direction === 'client') sent.push(e.line);
      },
    });
    const uidl = await client.uidl();
    expect((await readAll((await client.retr(1)).stream)).equals(served.first)).toBe(true);
    await client.dele(1);
    const message = await client.retr(2);
    const queued = client.stat(); // not awaited before the drop
    let received = 0;
    const reading = (async () => {
      for await (const chunk of message.stream) {
        received += (chunk as Buffer).length;
        if (received >= MiB) client.close();
      }
    })();
    const streamError = await expectPop3Error(reading, 'INVALID_STATE');
    expect(streamError.message).toMatch(/closed by the client/);
    expect(received).toBeGreaterThanOrEqual(MiB);
    expect(received).toBeLessThan(served.large.servedSize);
    expect(message.stream.destroyed).toBe(true);
    await expectPop3Error(queued, 'INVALID_STATE');
    expect(client.isClosed).toBe(true);
    await expectPop3Error(client.noop(), 'INVALID_STATE');
    expect(sent).not.toContain('QUIT');
    return { uidl, statSent: sent.includes('STAT') };
  }

  it('lock-step: the stream and the queued command fail; once Dovecot ends the session the mailbox is untouched', async () => {
    const user = 'drop-lockstep-user';
    const served = await fillMailbox(user);
    const files = await maildirNames(user);
    const { uidl, statSent } = await dropMidMessage(user, false, served);
    expect(statSent).toBe(false); // lock-step: STAT was still in the client's queue

    // Dovecot has ended the session (and run its clean-up) before we look.
    await sessionsEnded(user, 1);
    expect(await maildirNames(user)).toEqual(files);
    const after = await session(user, PASSWORD);
    expect((await after.stat()).count).toBe(3);
    expect(await after.uidl()).toEqual(uidl);
    // The message that was retrieved and marked deleted is still served, and so is the large one.
    expect((await readAll((await after.retr(1)).stream)).equals(served.first)).toBe(true);
    const hash = createHash('sha256');
    for await (const chunk of (await after.retr(2)).stream) hash.update(chunk as Buffer);
    expect(hash.digest('hex')).toBe(served.large.sha256);
    await after.quit();
  });

  it('pipelined: a command already sent behind the cut-off RETR fails too, and the mailbox is untouched', async () => {
    const user = 'drop-pipelined-user';
    const served = await fillMailbox(user);
    const files = await maildirNames(user);
    const { uidl, statSent } = await dropMidMessage(user, true, served);
    expect(statSent).toBe(true); // pipelined: STAT was on the wire behind RETR 2
    // Not waiting for Dovecot's log here: with a command pipelined behind an unfinished RETR,
    // Dovecot 2.3.19 sometimes (about 1 run in 5) does not notice the disconnect: its pop3
    // process idles in epoll_wait with "STAT" unread for minutes (its idle timeout is 10), and
    // the session still counts against mail_max_userip_connections. It applies DELE only at
    // QUIT, so the mailbox is already what it will stay.
    expect(await maildirNames(user)).toEqual(files);
    const after = await session(user, PASSWORD);
    expect((await after.stat()).count).toBe(3);
    expect(await after.uidl()).toEqual(uidl);
    await after.quit();
  });
});

// ---------------------------------------------------------------------------------------------

/**
 * A TLS relay between the client and Dovecot's pop3s listener that records what the client
 * sends: it terminates the client's TLS with the test server certificate (which the client
 * trusts through the test CA) and opens its own TLS connection to Dovecot.
 */
async function startRecordingRelay(): Promise<{ port: number; sent: () => string[]; close: () => Promise<void> }> {
  const recorded: Buffer[][] = [];
  const sockets = new Set<Socket>();
  const server = createTlsServer({ key: dovecot.pki.serverKeyPem, cert: dovecot.pki.serverCertPem }, (down: TLSSocket) => {
    const chunks: Buffer[] = [];
    recorded.push(chunks);
    const up = tlsConnect({
      host: dovecot.host,
      port: dovecot.ports.pop3s,
      ca: dovecot.pki.caCertPem,
      servername: 'localhost',
    });
    for (const s of [down, up]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        sockets.delete(s);
        down.destroy();
        up.destroy();
      });
    }
    down.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      up.write(chunk);
    });
    up.on('data', (chunk: Buffer) => down.write(chunk));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('relay has no port');
  return {
    port: address.port,
    sent: () => recorded.flatMap((chunks) => Buffer.concat(chunks).toString('utf8').split('\r\n')),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('tracing', () => {
  it('shows the commands of SCRAM-SHA-256, PLAIN, USER and XOAUTH2 logins but never a secret', async () => {
    const user = 'trace-user';
    const password = 'trace-Pässword-42';
    const token = `trace-token-${randomBytes(16).toString('hex')}`;
    await dovecot.addUser(user, password);
    dovecot.addOAuthToken(user, token);
    await dovecot.deliver(user, 'Subject: traced\n\ntraced body\n');

    const relay = await startRecordingRelay();
    const events: Pop3TraceEvent[] = [];
    try {
      for (const [mechanism, credentials] of [
        ['SCRAM-SHA-256', { user, password }],
        ['PLAIN', { user, password }],
        ['USER', { user, password }],
        ['XOAUTH2', { user, accessToken: token }],
      ] as const) {
        const client = await connect(implicitTls({ port: relay.port, trace: (e) => events.push(e) }));
        await client.login(credentials, { mechanism });
        expect(client.authMethod).toBe(mechanism);
        expect((await readAll((await client.retr(1)).stream)).toString()).toContain('traced body');
        await client.quit();
      }
    } finally {
      await relay.close();
    }

    const trace = events.map((e) => `${e.direction} ${e.line}`).join('\n');
    for (const line of [
      'client AUTH SCRAM-SHA-256 ****',
      'client AUTH PLAIN ****',
      `client USER ${user}`,
      'client PASS ****',
      'client AUTH XOAUTH2',
      'server +OK Logged in.',
      'info authenticated with XOAUTH2',
      'client RETR 1',
      'client QUIT',
    ]) {
      expect(trace).toContain(line);
    }

    // The secrets as the client put them on the wire, recorded by the relay, not by the client.
    const sent = relay.sent();
    const plainPayload = b64(`\0${user}\0${password}`);
    const xoauth2Payload = b64(`user=${user}\x01auth=Bearer ${token}\x01\x01`);
    expect(sent).toContain(`AUTH PLAIN ${plainPayload}`);
    expect(sent).toContain(`PASS ${password}`);
    expect(sent).toContain(xoauth2Payload);
    const COMMAND = /^(CAPA|STLS|USER|PASS|APOP|AUTH|STAT|LIST|UIDL|RETR|TOP|DELE|RSET|NOOP|QUIT)\b/;
    const onWire = sent.flatMap((line) => {
      const arg = /^(?:PASS|AUTH \S+) (.+)$/.exec(line)?.[1];
      if (arg !== undefined) return [arg];
      return COMMAND.test(line) || line === '' ? [] : [line]; // SASL answers
    });
    // SCRAM client-first and client-final, PLAIN, PASS and the XOAUTH2 answer.
    expect(onWire.length).toBeGreaterThanOrEqual(5);
    const secrets = [password, token, b64(password), b64(token), plainPayload, xoauth2Payload, ...onWire];
    for (const secret of secrets) expect(trace).not.toContain(secret);
  });
});
