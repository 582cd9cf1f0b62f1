// The POP3 client against a real Dovecot (testkit/pop3-servers/dovecot.ts), on loopback only:
// a connection dropped in the middle of a message leaves the mailbox untouched, and the trace
// of every login shows the commands but never a secret.
// One Dovecot for the file (test/support/pop3-dovecot-session.ts); each test has its own users.
// If Dovecot cannot start, beforeAll throws and every test here fails (never skips).
import { createHash, randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { describe, expect, it } from 'vitest';
import type { Pop3TraceEvent } from '../../lib/pop3/index.js';
import { ServedDigest, servedBytes } from '../support/dovecot-served-form.js';
import { expectPop3Error } from '../support/expect-pop3-error.js';
import { largeMessage } from '../support/large-dotted-message.js';
import {
  connect,
  dovecot,
  implicitTls,
  maildirNames,
  MiB,
  session,
  sessionsEnded,
  setUpDovecotSessions,
} from '../support/pop3-dovecot-session.js';
import { readAll } from '../support/read-all.js';

/** The message that is cut off in the middle. */
const DROPPED_MESSAGE_BYTES = 12 * MiB;

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

setUpDovecotSessions();

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
