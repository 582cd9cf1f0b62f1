// Ways real POP3 servers differ, shown with the scriptable server (issue 12, item 4): a server
// that answers -ERR to CAPA, an APOP banner without CAPA, user@domain logins, and a server
// behind a TLS terminator that closes the connection instead of answering QUIT.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLocalAdapters, type LocalAdapters } from '../../lib/adapters/local/index.js';
import { drainMailbox } from '../../lib/drain/drain-mailbox.js';
import { DEFAULT_UIDL_RESET_GUARD, type MailboxConfig } from '../../lib/drain/mailbox.js';
import type { DrainPorts } from '../../lib/drain/ports.js';
import { Pop3Client, Pop3Error, type TlsMode } from '../../lib/pop3/index.js';
import { makeTestPki, type TestPki } from '../../testkit/pki.js';
import { staticCredentials } from '../../testkit/fixtures/drain-fixtures.js';
import { rejectLogin, startPop3Server, type MailboxMessage, type Pop3ServerOptions, type Pop3TestServer } from '../support/script-server.js';

const PASSWORD = 'variant p\u00e4ssword';
let pki: TestPki;
let pkiDir: string;
const servers: Pop3TestServer[] = [];
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  pkiDir = await mkdtemp(join(tmpdir(), 'popdrain-pki-'));
  pki = await makeTestPki(pkiDir);
});
afterAll(async () => {
  await rm(pkiDir, { recursive: true, force: true });
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  for (const c of cleanups.splice(0).reverse()) await c();
});

const message = (i: number): MailboxMessage => ({ bytes: Buffer.from(`Subject: variant ${i}\r\nMessage-ID: <v${i}@example.org>\r\n\r\nbody ${i}\r\n`), uid: `v${i}` });

/** Implicit TLS unless `tls: undefined` is passed; user jane with three messages. */
async function server(options: Pop3ServerOptions, user = 'jane'): Promise<Pop3TestServer> {
  const s = await startPop3Server({
    tls: { key: pki.serverKeyPem, cert: pki.serverCertPem },
    implicitTls: true,
    users: { [user]: { password: PASSWORD } },
    mailboxes: { [user]: [message(1), message(2), message(3)] },
    ...options,
  });
  servers.push(s);
  return s;
}

function connect(s: Pop3TestServer, tls: TlsMode): Promise<Pop3Client> {
  return Pop3Client.connect({ host: s.host, port: s.port, tls, ...(tls === 'insecure-plaintext' ? {} : { tlsOptions: { ca: pki.caCertPem, servername: 'localhost' } }) });
}

/** The command words the server received in its last session. */
async function commandsOf(s: Pop3TestServer): Promise<string[]> {
  await s.whenIdle();
  return s.sessions.at(-1)!.received.map((l) => l.split(' ')[0]!.toUpperCase());
}

/** A drain of the mailbox of jane on a scripted server into the local adapters; warnings collected. */
async function drainSetup(box: MailboxMessage[], hooks: Pop3ServerOptions['hooks'], deletePolicy: MailboxConfig['deletePolicy'], options: Pop3ServerOptions = {}) {
  const s = await server({ mailboxes: { jane: box }, hooks, ...options });
  const out = await mkdtemp(join(tmpdir(), 'popdrain-variants-'));
  const adapters: LocalAdapters = createLocalAdapters({ out });
  cleanups.push(async () => {
    await adapters.close();
    await rm(out, { recursive: true, force: true });
  });
  const mailbox: MailboxConfig = {
    id: 'terminated',
    host: s.host,
    port: s.port,
    tls: 'implicit',
    user: 'jane',
    secret: { type: 'env', variable: 'UNUSED' },
    mechanism: 'auto',
    tlsOptions: { caPem: pki.caCertPem, servername: 'localhost' },
    deletePolicy,
    uidlResetGuard: DEFAULT_UIDL_RESET_GUARD,
  };
  const warnings: string[] = [];
  const logger = { debug: () => {}, info: () => {}, error: () => {}, warn: (m: string) => warnings.push(m) };
  const ports: DrainPorts = { store: adapters.store, ledger: adapters.ledger, events: adapters.events, credentials: staticCredentials({ jane: PASSWORD }), logger };
  return { mailbox, ports, adapters, warnings, run: () => drainMailbox(mailbox, ports, {}, { leaseTtlMs: 10_000 }) };
}

describe('a server that answers -ERR to CAPA', () => {
  it('has no capabilities, so no pipelining; the default login (USER/PASS under TLS) works and every message comes back', async () => {
    const s = await server({ capabilities: null });
    const client = await connect(s, 'implicit');
    expect(client.capabilities.lines).toEqual([]);
    expect(client.capabilities.has('PIPELINING')).toBe(false);
    expect(client.pipelining).toBe(false);
    await client.login({ user: 'jane', password: PASSWORD });
    expect(client.authMethod).toBe('USER');
    const bodies: Buffer[] = [];
    for await (const m of client.retrieve([1, 2, 3].map((number) => ({ number })))) {
      const chunks: Buffer[] = [];
      for await (const chunk of m.stream) chunks.push(chunk as Buffer);
      bodies.push(Buffer.concat(chunks));
    }
    expect(bodies).toEqual([message(1).bytes, message(2).bytes, message(3).bytes]);
    await client.quit();
    expect(await commandsOf(s)).toEqual(['CAPA', 'USER', 'PASS', 'RETR', 'RETR', 'RETR', 'QUIT']);
  });
});

describe('an APOP banner and no CAPA', () => {
  it('without TLS (insecure-plaintext only) logs in with APOP: the password never crosses the wire', async () => {
    const s = await server({ capabilities: null, features: { apop: true }, tls: undefined, implicitTls: false });
    const client = await connect(s, 'insecure-plaintext');
    expect(client.greeting).toMatch(/<[^>]+@[^>]+>/);
    await client.login({ user: 'jane', password: PASSWORD });
    expect(client.authMethod).toBe('APOP');
    await client.quit();
    const received = s.sessions.at(-1)!.received;
    expect(await commandsOf(s)).toEqual(['CAPA', 'APOP', 'QUIT']);
    expect(received.join('\n')).not.toContain(PASSWORD);
  });

  it('under TLS logs in with USER/PASS (APOP needs a secret the server may not hold)', async () => {
    const s = await server({ capabilities: null, features: { apop: true } });
    const client = await connect(s, 'implicit');
    await client.login({ user: 'jane', password: PASSWORD });
    expect(client.authMethod).toBe('USER');
    expect((await client.stat()).count).toBe(3);
    await client.quit();
    expect(await commandsOf(s)).toEqual(['CAPA', 'USER', 'PASS', 'STAT', 'QUIT']);
  });

  it('over STLS there is nothing to upgrade with: the client refuses to go on', async () => {
    const s = await server({ capabilities: null, features: { apop: true, stls: true }, implicitTls: false });
    await expect(connect(s, 'starttls')).rejects.toMatchObject({ code: 'STLS_UNAVAILABLE' });
  });
});

describe('logins of the form user@domain', () => {
  const user = 'jane.doe@example.org';

  it('USER sends the whole address as the user name', async () => {
    const s = await server({}, user);
    const client = await connect(s, 'implicit');
    await client.login({ user, password: PASSWORD }, { mechanism: 'USER' });
    expect((await client.stat()).count).toBe(3);
    await client.quit();
    await s.whenIdle();
    expect(s.sessions.at(-1)!.received.slice(0, 3)).toEqual(['CAPA', `USER ${user}`, `PASS ${PASSWORD}`]);
  });

  it('SASL PLAIN (the default under TLS) encodes authzid NUL authcid NUL password as UTF-8 in base64', async () => {
    const s = await server({}, user);
    const client = await connect(s, 'implicit');
    await client.login({ user, password: PASSWORD });
    expect(client.authMethod).toBe('PLAIN');
    expect((await client.stat()).count).toBe(3);
    await client.quit();
    await s.whenIdle();
    const auth = s.sessions.at(-1)!.received.find((l) => l.startsWith('AUTH '))!;
    const [, mechanism, payload] = auth.split(' ');
    expect(mechanism).toBe('PLAIN');
    expect(Buffer.from(payload!, 'base64')).toEqual(Buffer.concat([Buffer.from([0]), Buffer.from(user), Buffer.from([0]), Buffer.from(PASSWORD, 'utf8')]));
  });
});

describe('a server behind a TLS terminator that closes the connection instead of answering QUIT', () => {
  /** After QUIT: optionally apply the deletions (the UPDATE state), then close without +OK. */
  function terminator(box: MailboxMessage[], options: { applyDeletions: boolean; enabled: () => boolean; close?: 'destroy' | 'end' }): Pop3ServerOptions['hooks'] {
    return {
      onCommand: (conn, line, state) => {
        if (line.toUpperCase() !== 'QUIT' || !options.enabled()) return false;
        if (options.applyDeletions && state.phase === 'TRANSACTION') {
          for (const m of state.messages) if (m.deleted) box.splice(box.indexOf(m.stored), 1);
        }
        if (options.close === 'end') conn.end(); // TLS close_notify, then FIN
        else conn.destroy();
        return true;
      },
    };
  }

  it.each(['destroy', 'end'] as const)('Pop3Client.quit() resolves when nothing was marked deleted, and says the deletions are unknown when some were (closed with %s)', async (close) => {
    const box = [message(1), message(2), message(3)];
    const s = await server({ mailboxes: { jane: box }, hooks: terminator(box, { applyDeletions: false, enabled: () => true, close }) });
    const reader = await connect(s, 'implicit');
    await reader.login({ user: 'jane', password: PASSWORD });
    await reader.stat();
    await expect(reader.quit()).resolves.toBeUndefined();
    expect(reader.isClosed).toBe(true);

    const deleter = await connect(s, 'implicit');
    await deleter.login({ user: 'jane', password: PASSWORD });
    await deleter.dele(1);
    const error: unknown = await deleter.quit().then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(Pop3Error);
    expect(error).toMatchObject({ code: 'CONNECTION_CLOSED', phase: 'quit' });
    expect((error as Error).message).toMatch(/whether the 1 message\(s\) marked for deletion were deleted is unknown/);
    expect(box).toHaveLength(3);
  });

  it('a drain that keeps mail is not a failure: everything was committed before QUIT', async () => {
    const box = [message(1), message(2), message(3)];
    const { run } = await drainSetup(box, terminator(box, { applyDeletions: false, enabled: () => true }), { mode: 'keep' });
    const report = await run();
    expect(report).toMatchObject({ stopReason: 'complete', ok: true, fetched: 3, deleted: 0, unconfirmedDeletes: 0, failures: [] });
  });

  it('deletions the server applied but did not confirm: reported as unconfirmed, recorded as deleted by the next run', async () => {
    const box = [message(1), message(2), message(3)];
    let dropGoodbye = true;
    const { run, adapters, mailbox } = await drainSetup(box, terminator(box, { applyDeletions: true, enabled: () => dropGoodbye }), { mode: 'delete' });
    const first = await run();
    expect(first).toMatchObject({ stopReason: 'complete', ok: true, fetched: 3, deleted: 0, unconfirmedDeletes: 3, failures: [] });
    expect(box).toHaveLength(0); // the server did delete them
    expect((await adapters.ledger.getMailboxState(mailbox.id)).pendingDeletes?.sort()).toEqual(['v1', 'v2', 'v3']);
    dropGoodbye = false;
    const second = await run();
    expect(second).toMatchObject({ stopReason: 'complete', ok: true, fetched: 0, serverMessages: 0, deleted: 0, unconfirmedDeletes: 0 });
    expect((await adapters.ledger.getMailboxState(mailbox.id)).pendingDeletes ?? []).toEqual([]);
    const entries = await adapters.ledger.lookup(mailbox.id, ['v1', 'v2', 'v3']);
    expect([...entries.values()].map((e) => e.deletedAt !== undefined)).toEqual([true, true, true]);
  });

  it('deletions the server did not apply (no UPDATE state): the next run deletes them again, confirmed', async () => {
    const box = [message(1), message(2), message(3)];
    let dropGoodbye = true;
    const { run, adapters, mailbox } = await drainSetup(box, terminator(box, { applyDeletions: false, enabled: () => dropGoodbye }), { mode: 'delete' });
    const first = await run();
    expect(first).toMatchObject({ stopReason: 'complete', ok: true, fetched: 3, deleted: 0, unconfirmedDeletes: 3 });
    expect(box).toHaveLength(3);
    dropGoodbye = false;
    const second = await run();
    expect(second).toMatchObject({ stopReason: 'complete', ok: true, fetched: 0, alreadyKnown: 3, deleted: 3, unconfirmedDeletes: 0 });
    expect(box).toHaveLength(0);
    const entries = await adapters.ledger.lookup(mailbox.id, ['v1', 'v2', 'v3']);
    expect([...entries.values()].every((e) => e.deletedAt !== undefined)).toBe(true);
  });
});

describe('capabilities the drain acts on', () => {
  it('EXPIRE 0 with a keep policy: warned before fetching and flagged in the report', async () => {
    const caps = ['USER', 'UIDL', 'TOP', 'EXPIRE 0', 'RESP-CODES'];
    const keep = await drainSetup([message(1), message(2)], undefined, { mode: 'keep' }, { capabilities: caps });
    expect(await keep.run()).toMatchObject({ stopReason: 'complete', fetched: 2, serverDeletesRetrieved: true });
    expect(keep.warnings).toContain('the server announces EXPIRE 0: it deletes every message once retrieved, so the keep policy cannot hold');
    const deleting = await drainSetup([message(3)], undefined, { mode: 'delete' }, { capabilities: caps });
    expect(await deleting.run()).toMatchObject({ fetched: 1, serverDeletesRetrieved: false });
    expect(deleting.warnings).toEqual([]);
    const never = await drainSetup([message(4)], undefined, { mode: 'keep' }, { capabilities: ['USER', 'UIDL', 'EXPIRE NEVER'] });
    expect(await never.run()).toMatchObject({ fetched: 1, serverDeletesRetrieved: false });
    expect(never.warnings).toEqual([]);
  });

  it('[LOGIN-DELAY] ends the run as retry-later with the delay CAPA announced', async () => {
    const { run } = await drainSetup([message(1)], rejectLogin('LOGIN-DELAY'), { mode: 'keep' }, { capabilities: ['USER', 'UIDL', 'LOGIN-DELAY 900'] });
    const report = await run();
    expect(report).toMatchObject({ stopReason: 'login-delay', retryLater: true, retryAfterSeconds: 900, fetched: 0 });
    expect(report.error).toBeUndefined();
  });
});
