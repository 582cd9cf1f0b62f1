// popdrain against a real Courier POP3 server (testkit/pop3-servers/courier.ts), on loopback only.
// Courier reads the Maildir files the harness writes, so the reference is the original message
// (in its CRLF form, as Courier serves LF files). Without UTF8 (RFC 6856) Courier would serve a
// "Cannot display Unicode content" placeholder for every message with 8-bit bytes in its header.
// Courier advertises CRAM-MD5 but its userdb here holds no CRAM secret (as on many real
// installations): the default login must not depend on it. If Courier cannot start, beforeAll
// throws and every test here fails.
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pop3Client, Pop3Error, type Pop3ClientOptions } from '../../lib/pop3/index.js';
import { startCourier, type Courier } from '../../testkit/pop3-servers/courier.js';
import { servedForm } from '../../testkit/fixtures/drain-fixtures.js';
import { CORPUS, OVER_LIMITS, invalidUtf8 } from '../../testkit/fixtures/mail-corpus.js';
import { cli, storedMessages } from '../support/real-server-cli.js';

const PASSWORD = 'courier-Pw-4711';
const SEEDS = [...CORPUS, ...OVER_LIMITS].map((c) => c.message);
/** What Courier serves for each seed: the original with CRLF line ends. */
const EXPECTED = SEEDS.map((m) => servedForm(Buffer.from(m.toString('latin1').replace(/\r\n/g, '\n'), 'latin1')));
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let courier: Courier;
let scratch: string;
let counter = 0;

beforeAll(async () => {
  courier = await startCourier();
  scratch = await mkdtemp(join(tmpdir(), 'popdrain-courier-'));
}, 90_000);
afterAll(async () => {
  await courier?.stop();
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
});

async function newUser(messages: readonly Buffer[], domain?: string): Promise<string> {
  counter += 1;
  const user = domain === undefined ? `co${counter}` : `co${counter}@${domain}`;
  await courier.addUser(user, PASSWORD);
  await courier.deliver(user, messages);
  return user;
}

function options(tls: 'implicit' | 'starttls'): Pop3ClientOptions {
  return {
    host: courier.host,
    port: tls === 'implicit' ? courier.ports.pop3s : courier.ports.pop3,
    tls,
    tlsOptions: { ca: courier.pki.caCertPem, servername: 'localhost' },
  };
}

async function retrieveAll(client: Pop3Client): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const entry of await client.list()) {
    const { stream } = await client.retr(entry.number);
    const parts: Buffer[] = [];
    for await (const chunk of stream) parts.push(chunk as Buffer);
    out.push(Buffer.concat(parts));
  }
  return out;
}

const url = (user: string, tls: 'implicit' | 'starttls'): string =>
  tls === 'implicit'
    ? `pop3s://${encodeURIComponent(user)}@${courier.host}:${courier.ports.pop3s}`
    : `pop3://${encodeURIComponent(user)}@${courier.host}:${courier.ports.pop3}`;
const tlsArgs = (): string[] => ['--ca', courier.pki.caCertPath, '--servername', 'localhost'];

describe('Courier POP3', () => {
  it('serves a placeholder for 8-bit headers to a client that has not sent UTF8 (why the client sends it)', async () => {
    const user = await newUser([invalidUtf8.message]);
    const [served] = await courier.served(user);
    expect(served!.toString('latin1')).toContain('Subject: Cannot display Unicode content');
  });

  it.each(['implicit', 'starttls'] as const)('serves the original corpus byte for byte over %s TLS, with UTF8 and the default login', async (tls) => {
    const user = await newUser(SEEDS);
    const client = await Pop3Client.connect(options(tls));
    expect(client.utf8).toBe(true);
    await client.login({ user, password: PASSWORD });
    // CRAM-MD5 is offered but would fail (no secret); the default sends the password under TLS.
    expect(client.authMethod).toBe('PLAIN');
    const got = await retrieveAll(client);
    expect(got.map(sha)).toEqual(EXPECTED.map(sha));
    await client.quit();
  });

  it('refuses the offered CRAM-MD5 for want of a secret, which is why the default does not pick it', async () => {
    const user = await newUser(SEEDS.slice(0, 1));
    const client = await Pop3Client.connect(options('implicit'));
    const error = await client.login({ user, password: PASSWORD }, { mechanism: 'CRAM-MD5' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Pop3Error);
    expect((error as Pop3Error).code).toBe('AUTH_FAILED');
    client.close();
  });

  it('logs in as user@domain with the default choice', async () => {
    const user = await newUser(SEEDS.slice(0, 2), 'example.org');
    const client = await Pop3Client.connect(options('starttls'));
    await client.login({ user, password: PASSWORD });
    expect((await retrieveAll(client)).map(sha)).toEqual(EXPECTED.slice(0, 2).map(sha));
    await client.quit();
  });

  it('drain --delete stores the original corpus and deletes exactly what it stored', async () => {
    const user = await newUser(SEEDS);
    const out = join(scratch, `out-${counter}`);
    const r = await cli(['drain', url(user, 'implicit'), ...tlsArgs(), '--id', `mbx-${counter}`, '--out', out, '--delete', '--json'], { POPDRAIN_PASSWORD: PASSWORD }, scratch);
    expect(r.code, r.stderr).toBe(0);
    const stored = await storedMessages(out, `mbx-${counter}`);
    expect(stored.map(sha).sort()).toEqual(EXPECTED.map(sha).sort());
    expect(await courier.maildir(user)).toEqual([]);
  });

  it('drain without --delete over STLS keeps every file in the Maildir', async () => {
    const user = await newUser(SEEDS.slice(0, 6));
    const out = join(scratch, `out-${counter}`);
    const r = await cli(['drain', url(user, 'starttls'), ...tlsArgs(), '--id', `mbx-${counter}`, '--out', out, '--json'], { POPDRAIN_PASSWORD: PASSWORD }, scratch);
    expect(r.code, r.stderr).toBe(0);
    expect((await storedMessages(out, `mbx-${counter}`)).map(sha).sort()).toEqual(EXPECTED.slice(0, 6).map(sha).sort());
    expect(await courier.maildir(user)).toHaveLength(6);
  });

  it('check logs in with the default method, says why, and shows the server\'s IMPLEMENTATION, LOGIN-DELAY and EXPIRE', async () => {
    const user = await newUser(SEEDS.slice(0, 3));
    const r = await cli(['check', url(user, 'implicit'), ...tlsArgs()], { POPDRAIN_PASSWORD: PASSWORD }, scratch);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/logged in with PLAIN: 3 messages/);
    expect(r.stdout).toMatch(/capabilities: .*IMPLEMENTATION/);
    expect(r.stdout).toMatch(/^  implementation: Courier/m);
    expect(r.stdout).toContain('  login delay: at least 10 s between logins');
    expect(r.stdout).toContain('  login method: PLAIN: under TLS, the first method that needs no server-side secret');
    const json = await cli(['check', url(user, 'implicit'), ...tlsArgs(), '--json'], { POPDRAIN_PASSWORD: PASSWORD }, scratch);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ loginDelaySeconds: 10, expire: null, loginChoice: { method: 'PLAIN' }, authMethod: 'PLAIN' });
    expect(await courier.maildir(user)).toHaveLength(3);
  });
});
