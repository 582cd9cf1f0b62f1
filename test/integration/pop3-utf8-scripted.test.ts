// RFC 6856 UTF8 against the scriptable server: sent after CAPA (and after the CAPA that follows
// STLS), before login, only when advertised; a refusal leaves the session usable. The real-server
// proof is test/integration/pop3-courier.test.ts (Courier serves placeholders without it).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Pop3Client } from '../../lib/pop3/index.js';
import { makeTestPki, type TestPki } from '../../testkit/pki.js';
import { respondWith, startPop3Server, type Pop3ServerOptions, type Pop3TestServer } from '../support/script-server.js';

const PASSWORD = 'utf8 test password';
let pki: TestPki;
let pkiDir: string;
const servers: Pop3TestServer[] = [];

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

async function server(options: Pop3ServerOptions): Promise<Pop3TestServer> {
  const s = await startPop3Server({
    tls: { key: pki.serverKeyPem, cert: pki.serverCertPem },
    implicitTls: true,
    users: { jane: { password: PASSWORD } },
    mailboxes: { jane: [{ bytes: Buffer.from('Subject: caf\xc3\xa9\r\n\r\nbody\r\n', 'latin1'), uid: 'u1' }] },
    ...options,
  });
  servers.push(s);
  return s;
}

async function session(s: Pop3TestServer, tls: 'implicit' | 'starttls'): Promise<{ client: Pop3Client; received: readonly string[] }> {
  const client = await Pop3Client.connect({
    host: s.host,
    port: s.port,
    tls,
    tlsOptions: { ca: pki.caCertPem, servername: 'localhost' },
  });
  await client.login({ user: 'jane', password: PASSWORD }, { mechanism: 'USER' });
  expect((await client.stat()).count).toBe(1);
  await client.quit();
  await s.whenIdle();
  return { client, received: s.sessions.at(-1)!.received.map((l) => l.split(' ')[0]!) };
}

describe('UTF8 (RFC 6856)', () => {
  it('is sent after CAPA and before login when advertised', async () => {
    const s = await server({
      capabilities: ['USER', 'UIDL', 'UTF8 USER'],
      hooks: respondWith('UTF8', '+OK UTF8 enabled'),
    });
    const { client, received } = await session(s, 'implicit');
    expect(received.slice(0, 4)).toEqual(['CAPA', 'UTF8', 'USER', 'PASS']);
    expect(client.utf8).toBe(true);
  });

  it('is sent after the CAPA that follows STLS, not before it', async () => {
    const s = await server({
      implicitTls: false,
      capabilities: ['USER', 'UIDL', 'STLS', 'UTF8'],
      hooks: respondWith('UTF8', '+OK UTF8 enabled'),
    });
    const { client, received } = await session(s, 'starttls');
    expect(received.slice(0, 6)).toEqual(['CAPA', 'STLS', 'CAPA', 'UTF8', 'USER', 'PASS']);
    expect(client.utf8).toBe(true);
  });

  it('leaves the session usable when the server refuses it', async () => {
    const s = await server({ capabilities: ['USER', 'UIDL', 'UTF8'], hooks: respondWith('UTF8', '-ERR not today') });
    const { client, received } = await session(s, 'implicit');
    expect(received.slice(0, 4)).toEqual(['CAPA', 'UTF8', 'USER', 'PASS']);
    expect(client.utf8).toBe(false);
  });

  it('is not sent when not advertised', async () => {
    const s = await server({ capabilities: ['USER', 'UIDL'], hooks: respondWith('UTF8', '+OK UTF8 enabled') });
    const { client, received } = await session(s, 'implicit');
    expect(received).not.toContain('UTF8');
    expect(client.utf8).toBe(false);
  });
});
