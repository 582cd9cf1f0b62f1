// The scriptable POP3 server's default behaviour, exercised with raw sockets: bytes on the wire are
// what is checked.
import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { startPop3Server } from '../support/script-server.js';
import { b64, closeAfterEachTest, connect, loggedIn, MSG_DOTS, MSG_NO_FINAL_CRLF, MSG_TWO, start } from '../support/script-server-session.js';

closeAfterEachTest();

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
