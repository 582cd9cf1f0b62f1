/**
 * The shared set-up of the POP3 client tests against the scriptable server
 * (pop3-client-scripted*.test.ts): a test PKI for the file, servers started per test (jane with
 * three messages, implicit TLS unless asked otherwise) and closed after it, a check that no promise
 * rejection went unhandled, and client options that trust the test CA.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import type { Pop3ClientOptions } from '../../lib/pop3/index.js';
import { makeTestPki, type TestPki } from '../../testkit/pki.js';
import { startPop3Server, type MailboxMessage, type Pop3ServerOptions, type Pop3TestServer } from './script-server.js';

export const PASSWORD = 'correct horse battery staple';
export const TOKEN = 'ya29.secret-access-token-value';

// A live binding: it holds the file's PKI once beforeAll ran.
export let pki: TestPki;
let pkiDir: string;
/** The servers closed after the test; a test that closes one itself takes it out. */
export const servers: Pop3TestServer[] = [];
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};

/** Registers the hooks: the PKI for the file; after each test, no unhandled rejection and its servers closed. */
export function setUpScriptedServers(): void {
  beforeAll(async () => {
    pkiDir = await mkdtemp(join(tmpdir(), 'popdrain-pki-'));
    pki = await makeTestPki(pkiDir);
    process.on('unhandledRejection', onUnhandled);
  });

  afterAll(async () => {
    process.off('unhandledRejection', onUnhandled);
    await rm(pkiDir, { recursive: true, force: true });
  });

  afterEach(async () => {
    // Let pending socket events run, then check that no promise rejection went unhandled.
    await new Promise((r) => setTimeout(r, 20));
    const closing = servers.splice(0).map((s) => s.close());
    await Promise.all(closing);
    expect(unhandled).toEqual([]);
  });
}

/** Message `i` of jane's mailbox (uid-i), with a dot-stuffed line. */
export function message(i: number, extra = ''): MailboxMessage {
  return { bytes: Buffer.from(`Subject: m${i}\r\n\r\nbody ${i}\r\n.starts with a dot\r\n${extra}`), uid: `uid-${i}` };
}

/** A server started for this test and closed after it; implicit TLS unless `implicit: false`. */
export async function server(options: Pop3ServerOptions & { implicit?: boolean } = {}): Promise<Pop3TestServer> {
  const s = await startPop3Server({
    tls: { key: pki.serverKeyPem, cert: pki.serverCertPem },
    implicitTls: options.implicit ?? true,
    users: { jane: { password: PASSWORD, oauthTokens: [TOKEN] } },
    mailboxes: { jane: [message(1), message(2), message(3)] },
    ...options,
  });
  servers.push(s);
  return s;
}

/** Options to connect to `s`, trusting the test CA. */
export function clientOptions(s: Pop3TestServer, extra: Partial<Pop3ClientOptions> = {}): Pop3ClientOptions {
  return {
    host: s.host,
    port: s.port,
    tls: s.implicitTls ? 'implicit' : 'starttls',
    tlsOptions: { ca: pki.caCertPem, servername: 'localhost' },
    ...extra,
  };
}
