// Certificate pinning through the CLI against Dovecot, whose certificate is signed by a test CA
// the system does not trust: without --ca the pin alone lets the run through; a wrong pin is
// refused (exit 4, TLS) naming the fingerprint the server presented; of two pins (a rotation)
// one right is enough. Both implicit TLS and STLS.
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type Dovecot } from '../../testkit/pop3-servers/dovecot.js';
import { servedForm, sha256, testMessage } from '../../testkit/fixtures/drain-fixtures.js';
import { cli, storedMessages } from '../support/real-server-cli.js';

let dovecot: Dovecot;
let scratch: string;
let right: string;
const WRONG = Array.from({ length: 32 }, () => 'AB').join(':');

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'popdrain-pin-'));
  dovecot = await startDovecot();
  right = new X509Certificate(await readFile(dovecot.pki.serverCertPath)).fingerprint256;
}, 120_000);
afterAll(async () => {
  await dovecot?.stop();
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
});

let n = 0;
async function user(messages: Buffer[]): Promise<{ user: string; password: string }> {
  n += 1;
  const u = { user: `pin${n}`, password: `pw-pin-${n}-Xy` };
  await dovecot.addUser(u.user, u.password);
  await dovecot.deliverMany(u.user, messages);
  return u;
}

const url = (u: string, starttls = false): string =>
  starttls ? `pop3://${u}@${dovecot.host}:${dovecot.ports.pop3}` : `pop3s://${u}@${dovecot.host}:${dovecot.ports.pop3s}`;

describe('--fingerprint', () => {
  it('without a pin or --ca the test CA is not trusted (exit 4)', async () => {
    const u = await user([testMessage(1, 'pin')]);
    const r = await cli(['drain', url(u.user), '--out', join(scratch, 'none'), '--quiet'], { POPDRAIN_PASSWORD: u.password }, scratch);
    expect(r.code).toBe(4);
  });

  for (const starttls of [false, true]) {
    const how = starttls ? 'STLS' : 'implicit TLS';
    it(`${how}: the right pin is accepted without --ca and the messages are stored byte for byte`, async () => {
      const messages = [testMessage(1, 'pin'), testMessage(2, 'pin')];
      const u = await user(messages);
      const out = join(scratch, `right-${n}`);
      const r = await cli(['drain', url(u.user, starttls), '--fingerprint', right, '--out', out, '--id', `pin-${n}`, '--json'], { POPDRAIN_PASSWORD: u.password }, scratch);
      expect(r.code, r.stderr).toBe(0);
      expect((JSON.parse(r.stdout) as { fetched: number }).fetched).toBe(2);
      const stored = (await storedMessages(out, `pin-${n}`)).map(sha256).sort();
      expect(stored).toEqual(messages.map((m) => sha256(servedForm(m))).sort());
    });

    it(`${how}: a wrong pin is refused (exit 4) naming the presented fingerprint, even with --ca`, async () => {
      const u = await user([testMessage(1, 'pin')]);
      const out = join(scratch, `wrong-${n}`);
      const r = await cli(
        ['drain', url(u.user, starttls), '--ca', dovecot.pki.caCertPath, '--servername', 'localhost', '--fingerprint', WRONG, '--out', out, '--id', `pin-${n}`],
        { POPDRAIN_PASSWORD: u.password },
        scratch,
      );
      expect(r.code).toBe(4);
      expect(r.stdout + r.stderr).toContain(right);
      expect(r.stdout + r.stderr).toMatch(/matches no pinned fingerprint/);
      expect(await storedMessages(out, `pin-${n}`).catch(() => [])).toEqual([]);
    });
  }

  it('two pins, one of them right (a rotation), is accepted; the forms without colons and in lower case work', async () => {
    const u = await user([testMessage(1, 'pin')]);
    const out = join(scratch, `two-${n}`);
    const plain = right.replace(/:/g, '').toLowerCase();
    const r = await cli(['drain', url(u.user), '--fingerprint', WRONG, '--fingerprint', plain, '--out', out, '--id', `pin-${n}`, '--quiet'], { POPDRAIN_PASSWORD: u.password }, scratch);
    expect(r.code, r.stderr).toBe(0);
    expect(await storedMessages(out, `pin-${n}`)).toHaveLength(1);
  });

  it('check prints the fingerprint that --fingerprint takes, and says the pin matched', async () => {
    const u = await user([]);
    const r = await cli(['check', url(u.user), '--fingerprint', right], { POPDRAIN_PASSWORD: u.password }, scratch);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`fingerprint (SHA-256): ${right}`);
    expect(r.stdout).toContain('matches a pinned fingerprint');
  });

  it('a malformed pin is a usage error (exit 2)', async () => {
    const r = await cli(['drain', url('nobody'), '--fingerprint', 'AB:CD', '--out', join(scratch, 'bad')], { POPDRAIN_PASSWORD: 'x' }, scratch);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--fingerprint "AB:CD"');
  });
});
