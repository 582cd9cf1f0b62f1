// The POP3 client against the scriptable server: what a real server won't do on demand. Here:
// broken servers (silence, stalls, disconnects, malformed and over-long lines, aborts) and
// streaming (backpressure, messages collected whole, streams dropped early).
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Pop3Client } from '../../lib/pop3/index.js';
import { MAX_LISTING_LINE_BYTES } from '../../lib/pop3/limits.js';
import { expectPop3Error } from '../support/expect-pop3-error.js';
import {
  clientOptions,
  message,
  PASSWORD,
  server,
  servers,
  setUpScriptedServers,
} from '../support/pop3-client-scripted-world.js';
import { readAll } from '../support/read-all.js';
import {
  bodyWithoutTerminator,
  disconnectMidBody,
  respondWith,
  silentAfter,
  silentGreeting,
  stallMidBody,
} from '../support/script-server.js';

setUpScriptedServers();

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
