// popdrain against a real Cyrus IMAP 3.6 POP3 server (testkit/pop3-servers/cyrus.ts), on loopback only.
// Cyrus's lmtpd adds headers to what it delivers, so the reference is what the server serves
// (read by an independent plain POP3 session), not the seed. If Cyrus cannot start, beforeAll
// throws and every test here fails.
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pop3Client, type Pop3ClientOptions } from '../../lib/pop3/index.js';
import { startCyrus, type Cyrus } from '../../testkit/pop3-servers/cyrus.js';
import { CORPUS, OVER_LIMITS } from '../../testkit/fixtures/mail-corpus.js';
import { cli, storedMessages } from '../support/real-server-cli.js';

const PASSWORD = 'cyrus-Pw-4711';
/**
 * lmtpd refuses these with 554 (random bytes: "Message has no header/body separator", random
 * lines: "Message contains NUL characters"): Cyrus never holds them, so there is nothing to drain.
 */
const REFUSED_BY_LMTPD = new Set(['not MIME at all: random bytes', 'not MIME at all: random lines with boundary-like dashes']);
const SEEDS = [...CORPUS, ...OVER_LIMITS].filter((c) => !REFUSED_BY_LMTPD.has(c.name)).map((c) => c.message);
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let cyrus: Cyrus;
let scratch: string;
let counter = 0;

beforeAll(async () => {
  cyrus = await startCyrus();
  scratch = await mkdtemp(join(tmpdir(), 'popdrain-cyrus-'));
}, 90_000);
afterAll(async () => {
  await cyrus?.stop();
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
});

async function newUser(messages: readonly Buffer[], domain?: string): Promise<{ user: string; served: Buffer[] }> {
  counter += 1;
  const user = domain === undefined ? `cy${counter}` : `cy${counter}@${domain}`;
  await cyrus.addUser(user, PASSWORD);
  await cyrus.deliver(user, messages);
  const served = await cyrus.served(user);
  expect(served).toHaveLength(messages.length);
  return { user, served };
}

function options(tls: 'implicit' | 'starttls'): Pop3ClientOptions {
  return {
    host: cyrus.host,
    port: tls === 'implicit' ? cyrus.ports.pop3s : cyrus.ports.pop3,
    tls,
    tlsOptions: { ca: cyrus.pki.caCertPem, servername: 'localhost' },
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
    ? `pop3s://${encodeURIComponent(user)}@${cyrus.host}:${cyrus.ports.pop3s}`
    : `pop3://${encodeURIComponent(user)}@${cyrus.host}:${cyrus.ports.pop3}`;
const tlsArgs = (): string[] => ['--ca', cyrus.pki.caCertPath, '--servername', 'localhost'];

describe('Cyrus POP3', () => {
  it.each(['implicit', 'starttls'] as const)('serves the edge-case corpus byte for byte over %s TLS, with the default login', async (tls) => {
    const { user, served } = await newUser(SEEDS);
    const client = await Pop3Client.connect(options(tls));
    expect(client.capabilities.has('IMPLEMENTATION')).toBe(true);
    await client.login({ user, password: PASSWORD });
    // Under TLS the default sends the password (PLAIN), which works wherever the password does.
    expect(client.authMethod).toBe('PLAIN');
    expect(await retrieveAll(client)).toEqual(served);
    await client.quit();
  });

  it('logs in as user@domain (virtual domains) with the default choice', async () => {
    const { user, served } = await newUser(SEEDS.slice(0, 2), 'example.org');
    const client = await Pop3Client.connect(options('implicit'));
    await client.login({ user, password: PASSWORD });
    expect(await retrieveAll(client)).toEqual(served);
    await client.quit();
  });

  it.each(['SCRAM-SHA-256', 'SCRAM-SHA-1', 'CRAM-MD5', 'APOP', 'USER', 'LOGIN'] as const)('logs in with --auth %s when forced', async (mechanism) => {
    const { user } = await newUser(SEEDS.slice(0, 1));
    const client = await Pop3Client.connect(options('implicit'));
    await client.login({ user, password: PASSWORD }, { mechanism });
    expect(client.authMethod).toBe(mechanism);
    expect((await client.stat()).count).toBe(1);
    await client.quit();
  });

  it('drain --delete stores the corpus as served and deletes exactly what it stored', async () => {
    const { user, served } = await newUser(SEEDS);
    const out = join(scratch, `out-${counter}`);
    const r = await cli(['drain', url(user, 'implicit'), ...tlsArgs(), '--id', `mbx-${counter}`, '--out', out, '--delete', '--json'], { POPDRAIN_PASSWORD: PASSWORD }, scratch);
    expect(r.code, r.stderr).toBe(0);
    const stored = await storedMessages(out, `mbx-${counter}`);
    expect(stored.map(sha).sort()).toEqual(served.map(sha).sort());
    expect(await cyrus.served(user)).toEqual([]);
  });

  it('drain without --delete over STLS keeps everything on the server', async () => {
    const { user, served } = await newUser(SEEDS.slice(0, 5));
    const out = join(scratch, `out-${counter}`);
    const r = await cli(['drain', url(user, 'starttls'), ...tlsArgs(), '--id', `mbx-${counter}`, '--out', out, '--json'], { POPDRAIN_PASSWORD: PASSWORD }, scratch);
    expect(r.code, r.stderr).toBe(0);
    expect((await storedMessages(out, `mbx-${counter}`)).map(sha).sort()).toEqual(served.map(sha).sort());
    expect(await cyrus.served(user)).toEqual(served);
  });

  it('check logs in with the default method, says why, and shows the server\'s IMPLEMENTATION, LOGIN-DELAY and EXPIRE', async () => {
    const { user } = await newUser(SEEDS.slice(0, 3));
    const r = await cli(['check', url(user, 'implicit'), ...tlsArgs()], { POPDRAIN_PASSWORD: PASSWORD }, scratch);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/logged in with PLAIN: 3 messages/);
    expect(r.stdout).toMatch(/capabilities: .*IMPLEMENTATION/);
    expect(r.stdout).toMatch(/^  implementation: Cyrus/m);
    expect(r.stdout).toContain('  expire: never (retrieved messages stay until deleted)');
    expect(r.stdout).toContain('  login method: PLAIN: under TLS, the first method that needs no server-side secret');
    const json = await cli(['check', url(user, 'implicit'), ...tlsArgs(), '--json'], { POPDRAIN_PASSWORD: PASSWORD }, scratch);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ expire: { kind: 'never' }, loginChoice: { method: 'PLAIN' }, authMethod: 'PLAIN' });
    expect(await cyrus.served(user)).toHaveLength(3);
  });
});

describe("Cyrus POP3 with Debian's popminpoll: 1", () => {
  let slow: Cyrus | undefined;
  afterAll(async () => {
    await slow?.stop();
  });

  it('announces LOGIN-DELAY 60 and answers a second login within a minute with [LOGIN-DELAY]: retry later, after 60 s', async () => {
    slow = await startCyrus({ extraConfig: 'popminpoll: 1' });
    await slow.addUser('delayed', PASSWORD);
    await slow.deliver('delayed', SEEDS.slice(0, 2));
    const at = `pop3s://delayed@${slow.host}:${slow.ports.pop3s}`;
    const args = ['--ca', slow.pki.caCertPath, '--servername', 'localhost'];
    const check = await cli(['check', at, ...args, '--json'], { POPDRAIN_PASSWORD: PASSWORD }, scratch);
    expect(check.code, check.stderr).toBe(0);
    expect(JSON.parse(check.stdout)).toMatchObject({ loginDelaySeconds: 60, messages: 2 });
    const out = join(scratch, 'out-delayed');
    const second = await cli(['drain', at, ...args, '--id', 'mbx-delayed', '--out', out], { POPDRAIN_PASSWORD: PASSWORD }, scratch);
    expect(second.code, second.stderr).toBe(6);
    expect(second.stdout).toContain('mbx-delayed: stopped: login-delay (retry later: the server allows one login per 60 s)');
    expect(await storedMessages(out, 'mbx-delayed')).toEqual([]);
  }, 60_000);
});
