// The scriptable POP3 server's scripted misbehaviour, exercised with raw sockets, and its wire
// helpers.
import { describe, expect, it } from 'vitest';
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
} from '../support/script-server.js';
import { RawClient, SILENCE_WINDOW_MS } from '../support/raw-pop3-client.js';
import { b64, closeAfterEachTest, connect, loggedIn, MSG_DOTS, MSG_NO_FINAL_CRLF, MSG_TWO, start } from '../support/script-server-session.js';

closeAfterEachTest();

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
