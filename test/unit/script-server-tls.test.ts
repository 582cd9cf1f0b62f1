// The scriptable POP3 server over TLS (STLS and implicit), exercised with raw sockets.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestPki, type TestPki } from '../../testkit/pki.js';
import type { Pop3ServerOptions } from '../support/script-server.js';
import { RawClient } from '../support/raw-pop3-client.js';
import { closeAfterEachTest, connect, start } from '../support/script-server-session.js';

closeAfterEachTest();

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
