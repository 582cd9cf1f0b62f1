// The CLI with an OAuth2 refresh token (the cron-job set-up) against the scripted POP3 server and
// a loopback token endpoint that rotates refresh tokens: the run drains, and says - on stderr,
// even with --quiet - that a rotated refresh token from a variable must be saved, without
// printing any token or the client secret. Runs the CLI from its TypeScript sources (tsx), so
// it does not depend on the build of dist/ (test/global-build.ts).
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTokenServer, type OAuth2TokenServer } from '../../testkit/oauth2/token-server.js';
import { startPop3Server, type Pop3TestServer } from '../support/script-server.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLIENT_ID = 'popdrain-cli-test';
const CLIENT_SECRET = 'cli~client/secret+value=1';
const REFRESH_TOKEN = 'RT-original.cli-test-refresh-token';

let tokens: OAuth2TokenServer;
let server: Pop3TestServer;
let scratch: string;

beforeAll(async () => {
  tokens = await startTokenServer({ clients: [{ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET }], refreshTokens: [REFRESH_TOKEN], rotate: true, revokeOnRotate: true });
  // Accepts exactly the access tokens the token endpoint has issued.
  const issued = { includes: (token: string) => tokens.issued.includes(token) } as unknown as string[];
  server = await startPop3Server({
    users: { 'jane@example.com': { password: 'unused-password', oauthTokens: issued } },
    features: { sasl: ['XOAUTH2', 'OAUTHBEARER'] },
    mailboxes: { 'jane@example.com': [{ bytes: Buffer.from('Subject: one\r\n\r\nbody one\r\n'), uid: 'u1' }, { bytes: Buffer.from('Subject: two\r\n\r\nbody two\r\n'), uid: 'u2' }] },
  });
  scratch = await mkdtemp(join(tmpdir(), 'popdrain-cli-oauth2-'));
});
afterAll(async () => {
  await server?.close();
  await tokens?.close();
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
});

function cli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'cli/main.ts'), ...args], {
    // tsx resolves from the project (everything the run writes goes under --out).
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...env },
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
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

describe('popdrain drain with an OAuth2 refresh token', () => {
  it('drains, and warns (with --quiet too) that the rotated refresh token from a variable must be saved, printing no secret', async () => {
    const out = join(scratch, 'out');
    const r = await cli(
      [
        'drain',
        `pop3://${encodeURIComponent('jane@example.com')}@${server.host}:${server.port}`,
        '--insecure-plaintext',
        '--id', 'oauth2-cli',
        '--out', out,
        '--oauth2-token-endpoint', tokens.url,
        '--oauth2-client-id', CLIENT_ID,
        '--oauth2-client-secret-env', 'TEST_CLIENT_SECRET',
        '--oauth2-refresh-token-env', 'TEST_REFRESH_TOKEN',
        '--quiet',
      ],
      { TEST_CLIENT_SECRET: CLIENT_SECRET, TEST_REFRESH_TOKEN: REFRESH_TOKEN },
    );
    expect(r.code, r.stderr).toBe(0);
    expect((await readdir(join(out, 'oauth2-cli'))).filter((n) => n.endsWith('.eml'))).toHaveLength(2);
    // The endpoint rotated the token (and revoked the old one): the new one is only in that process.
    const rotated = tokens.validRefreshTokens();
    expect(rotated).toHaveLength(1);
    expect(rotated[0]).not.toBe(REFRESH_TOKEN);
    expect(r.stderr).toMatch(/rotated the refresh token, which came from an environment variable/);
    expect(r.stderr).toContain('TEST_REFRESH_TOKEN');
    const text = r.stdout + r.stderr;
    for (const secret of [REFRESH_TOKEN, rotated[0]!, CLIENT_SECRET, encodeURIComponent(CLIENT_SECRET), ...tokens.issued]) {
      expect(text).not.toContain(secret);
    }
  });
});
