// Total deadlines of the POP3 client against servers that trickle: a multi-line response (CAPA,
// LIST, RETR) that sends a little just often enough to beat the inactivity limit still ends, and
// the session's hard deadline (Pop3ClientOptions.deadline) ends whatever is under way.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Pop3Client, Pop3Error, type Pop3ClientOptions } from '../../lib/pop3/index.js';
import { makeTestPki, type TestPki } from '../../testkit/pki.js';
import { startPop3Server, type MailboxMessage, type Pop3ServerOptions, type Pop3TestServer, type ScriptedConnection } from '../support/script-server.js';

const PASSWORD = 'correct horse battery staple';
let pki: TestPki;
let pkiDir: string;
const servers: Pop3TestServer[] = [];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  pkiDir = await mkdtemp(join(tmpdir(), 'popdrain-pki-'));
  pki = await makeTestPki(pkiDir);
});
afterAll(async () => {
  await rm(pkiDir, { recursive: true, force: true });
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

function message(i: number): MailboxMessage {
  return { bytes: Buffer.from(`Subject: m${i}\r\n\r\n${'x'.repeat(2_000)}\r\n`), uid: `uid-${i}` };
}

async function server(options: Pop3ServerOptions = {}): Promise<Pop3TestServer> {
  const s = await startPop3Server({
    tls: { key: pki.serverKeyPem, cert: pki.serverCertPem },
    implicitTls: true,
    users: { jane: { password: PASSWORD } },
    mailboxes: { jane: [message(1), message(2)] },
    ...options,
  });
  servers.push(s);
  return s;
}

function clientOptions(s: Pop3TestServer, extra: Partial<Pop3ClientOptions> = {}): Pop3ClientOptions {
  return { host: s.host, port: s.port, tls: 'implicit', tlsOptions: { ca: pki.caCertPem, servername: 'localhost' }, ...extra };
}

/** Writes `status`, then `lines` one every `everyMs` (never finishing before the client gives up). */
async function trickle(conn: ScriptedConnection, status: string, lines: string[], everyMs: number): Promise<void> {
  try {
    await conn.writeLine(status);
    for (const line of lines) {
      await sleep(everyMs);
      await conn.writeLine(line);
    }
    await conn.writeLine('.');
  } catch {
    // the client gave up
  }
}

async function failure(promise: Promise<unknown>): Promise<Pop3Error> {
  const outcome = await promise.then(
    () => new Error('expected a failure'),
    (e: unknown) => e,
  );
  if (!(outcome instanceof Pop3Error)) throw outcome;
  return outcome;
}

describe('a whole multi-line response has a deadline, not only its silences', () => {
  it('ends a LIST that trickles one line just within the inactivity limit', async () => {
    const s = await server({
      hooks: {
        async onCommand(conn, line) {
          if (line !== 'LIST') return false;
          await trickle(conn, '+OK', Array.from({ length: 100 }, (_, i) => `${i + 1} 100`), 100);
          return true;
        },
      },
    });
    const client = await Pop3Client.connect(clientOptions(s, { timeouts: { bodyIdleMs: 300, listingMs: 800 } }));
    await client.login({ user: 'jane', password: PASSWORD });
    const started = performance.now();
    const error = await failure(client.list());
    expect(error.code).toBe('BODY_TIMEOUT');
    expect(error.message).toMatch(/response to LIST did not complete within 800 ms/);
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(client.isClosed).toBe(true);
  });

  it('ends a CAPA before login that trickles (the status line time bounds the whole of it)', async () => {
    const s = await server({
      hooks: {
        async onCommand(conn, line) {
          if (line !== 'CAPA') return false;
          await trickle(conn, '+OK', Array.from({ length: 100 }, () => 'X-FILLER'), 100);
          return true;
        },
      },
    });
    const started = performance.now();
    const error = await failure(Pop3Client.connect(clientOptions(s, { timeouts: { bodyIdleMs: 300, commandMs: 700 } })));
    expect(error.code).toBe('BODY_TIMEOUT');
    expect(error.phase).toBe('capa');
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it('ends a RETR of listed size whose body trickles, at its size-derived limit', async () => {
    const s = await server({
      hooks: {
        async onCommand(conn, line) {
          if (!line.startsWith('RETR')) return false;
          await trickle(conn, '+OK', Array.from({ length: 100 }, () => 'y'), 100);
          return true;
        },
      },
    });
    const client = await Pop3Client.connect(clientOptions(s, { timeouts: { bodyIdleMs: 300, commandMs: 600 } }));
    await client.login({ user: 'jane', password: PASSWORD });
    const started = performance.now();
    // 2 kB at 16 KiB/s adds ~130 ms to the 600 ms.
    const error = await failure(
      (async () => {
        for await (const m of client.retrieve([{ number: 1, size: 2_020 }])) for await (const _ of m.stream) void _;
      })(),
    );
    expect(error.code).toBe('BODY_TIMEOUT');
    expect(error.message).toMatch(/response to RETR 1 did not complete within 7\d\d ms/);
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});

describe('the session deadline', () => {
  it('closes the connection when it passes, whatever is under way, with ABORTED', async () => {
    const s = await server({
      hooks: {
        async onCommand(conn, line) {
          if (line !== 'UIDL') return false;
          await trickle(conn, '+OK', Array.from({ length: 100 }, (_, i) => `${i + 1} u${i}`), 100);
          return true;
        },
      },
    });
    const client = await Pop3Client.connect(clientOptions(s, { deadline: Date.now() + 1_000 }));
    await client.login({ user: 'jane', password: PASSWORD });
    const started = performance.now();
    const error = await failure(client.uidl());
    expect(error.code).toBe('ABORTED');
    expect(error.message).toMatch(/deadline passed/);
    expect(performance.now() - started).toBeLessThan(1_500);
    expect(client.isClosed).toBe(true);
  });

  it('refuses to connect once it has passed, and bounds a greeting that never comes', async () => {
    const late = await failure(Pop3Client.connect({ host: '127.0.0.1', port: 9, deadline: Date.now() - 1 }));
    expect(late.code).toBe('ABORTED');
    const s = await server({ hooks: { onConnect: () => true } });
    const started = performance.now();
    const error = await failure(Pop3Client.connect(clientOptions(s, { deadline: Date.now() + 500 })));
    expect(error.code).toBe('ABORTED');
    expect(performance.now() - started).toBeLessThan(1_200);
  });
});
