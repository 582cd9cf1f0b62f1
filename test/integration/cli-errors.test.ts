// Errors that say what to do: the CLI as a subprocess against Dovecot on the wrong port or
// scheme, and without the CA that signed its certificate.
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type Dovecot } from '../../testkit/pop3-servers/dovecot.js';
import { testMessage } from '../../testkit/fixtures/drain-fixtures.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = join(ROOT, 'dist/cli/main.js');

let dovecot: Dovecot;
let scratch: string;
let fingerprint: string;
const USER = 'erruser';
const PASSWORD = 'pw-err-Jk2';

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'popdrain-errors-'));
  dovecot = await startDovecot();
  await dovecot.addUser(USER, PASSWORD);
  await dovecot.deliverMany(USER, [testMessage(1, 'err', 400)]);
  fingerprint = new X509Certificate(await readFile(dovecot.pki.serverCertPath)).fingerprint256;
});
afterAll(async () => {
  await dovecot?.stop();
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
});

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function cli(args: string[]): Promise<Result> {
  const started = performance.now();
  const child = spawn(process.execPath, [MAIN, ...args], {
    cwd: scratch,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: scratch, POPDRAIN_PASSWORD: PASSWORD },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), ms: performance.now() - started });
    });
  });
}

const both = (r: Result): string => `${r.stdout}\n${r.stderr}`;
const count = (text: string, part: string): number => text.split(part).length - 1;
const out = (): string[] => ['--out', join(scratch, 'out')];

describe('errors that say what to do', () => {
  it('pop3s:// on a plain port: one line naming the cause, one with the fix; no raw OpenSSL text', async () => {
    const r = await cli(['drain', `pop3s://${USER}@127.0.0.1:${dovecot.ports.pop3}`, ...out()]);
    expect(r.code, both(r)).toBe(4);
    expect(count(both(r), 'the server answered in plaintext, not TLS')).toBe(1);
    expect(count(both(r), `use pop3://127.0.0.1:${dovecot.ports.pop3} (STLS)`)).toBe(1);
    expect(both(r)).not.toContain('ssl3_get_record');
  });

  it('an unverified certificate: its SHA-256 fingerprint and the option that accepts it, once', async () => {
    const r = await cli(['drain', `pop3s://${USER}@127.0.0.1:${dovecot.ports.pop3s}`, '--servername', 'localhost', ...out()]);
    expect(r.code, both(r)).toBe(4);
    expect(count(both(r), fingerprint)).toBe(1);
    expect(count(both(r), '--ca FILE')).toBe(1);
    // Over STLS too.
    const s = await cli(['drain', `pop3://${USER}@127.0.0.1:${dovecot.ports.pop3}`, '--servername', 'localhost', ...out()]);
    expect(s.code, both(s)).toBe(4);
    expect(both(s)).toContain(fingerprint);
  });

  it('pop3:// on an implicit-TLS port: within a few seconds, a hint to use pop3s://', async () => {
    const r = await cli(['drain', `pop3://${USER}@127.0.0.1:${dovecot.ports.pop3s}`, ...out()]);
    expect(r.code, both(r)).toBe(5);
    expect(r.ms).toBeLessThan(10_000);
    expect(count(both(r), `try pop3s://127.0.0.1:${dovecot.ports.pop3s}`)).toBe(1);
  });

  it('check shows the presented certificate and its fingerprint when verification fails', async () => {
    const r = await cli(['check', `pop3s://${USER}@127.0.0.1:${dovecot.ports.pop3s}`, '--servername', 'localhost']);
    expect(r.code, both(r)).toBe(4);
    expect(r.stdout).toContain('certificate presented (NOT verified)');
    expect(r.stdout).toContain(`fingerprint (SHA-256): ${fingerprint}`);
    const j = await cli(['check', `pop3s://${USER}@127.0.0.1:${dovecot.ports.pop3s}`, '--servername', 'localhost', '--json']);
    expect(JSON.parse(j.stdout)).toMatchObject({ presentedCertificate: { fingerprint256: fingerprint }, error: { code: 'TLS_FAILED' } });
  });
});
