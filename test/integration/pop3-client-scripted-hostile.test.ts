// The POP3 client against the scriptable server: deadlines and errors a hostile server cannot
// stretch or break (endless AUTH challenges, trickled replies, aborts during TLS handshakes,
// credentials that cannot be sent, a CAPA that fails after STLS).
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { Pop3Client, Pop3Error } from '../../lib/pop3/index.js';
import { expectPop3Error } from '../support/expect-pop3-error.js';
import { clientOptions, PASSWORD, server, setUpScriptedServers } from '../support/pop3-client-scripted-world.js';
import { readAll } from '../support/read-all.js';
import { respondWith } from '../support/script-server.js';

setUpScriptedServers();

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
