// The command-line tool as a user runs it: `node dist/cli/main.js ...` in a child process, against
// a real Dovecot (implicit TLS, and STLS on the pop3 port) and, for what Dovecot will not do on
// demand, the scripted POP3 server. Each test checks what lands on disk, what the server still
// holds, the events, the report and the exit code. This file: `popdrain check` and `status`, the
// exit codes, and the AWS adapter options.
// The set-up is test/support/cli-world.ts.
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileLedger, LEDGER_SUBDIR } from '../../lib/adapters/local/index.js';
import { testMessage } from '../../testkit/fixtures/drain-fixtures.js';
import { rejectLogin } from '../support/script-server.js';
import {
  cli,
  closedPort,
  counter,
  dovecot,
  drain,
  newUser,
  oneLine,
  onServer,
  outDir,
  parseReport,
  pop3sUrl,
  pop3Url,
  scratch,
  scripted,
  setUpCliWorld,
  tlsArgs,
} from '../support/cli-world.js';

setUpCliWorld();

describe('popdrain check and status', () => {
  it('check shows TLS, capabilities and the count, and downloads nothing', async () => {
    const u = await newUser(Array.from({ length: 3 }, (_, i) => testMessage(i, 'check')));
    const cwd = await mkdtemp(join(scratch, 'cwd-'));
    const r = await cli(['check', pop3sUrl(u.user), ...tlsArgs(), '-v'], { cwd, env: { POPDRAIN_PASSWORD: u.password } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/TLS: TLSv1\.[23] \S+, certificate verified/);
    expect(r.stdout).toContain('certificate: CN=localhost');
    expect(r.stdout).toMatch(/fingerprint \(SHA-256\): [0-9A-F:]{95}/);
    expect(r.stdout).toMatch(/capabilities: .*UIDL.*PIPELINING/);
    expect(r.stdout).toMatch(/logged in with \S+: 3 messages/);
    expect(r.stderr).not.toMatch(/C: (RETR|TOP|DELE)/);
    expect(r.stderr).not.toContain(u.password);
    expect(await readdir(cwd)).toEqual([]);
    expect(await onServer(u.user)).toHaveLength(3);

    const json = await cli(['check', pop3Url(u.user), ...tlsArgs(), '--json'], { env: { POPDRAIN_PASSWORD: u.password } });
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ tls: 'starttls', loggedIn: true, messages: 3 });
    // Without a password (and no terminal) it still shows the server, and does not log in.
    const anon = await cli(['check', pop3sUrl(u.user), ...tlsArgs()]);
    expect(anon.code).toBe(0);
    expect(anon.stdout).toContain('not logged in');
  });

  it('status shows the last run and what is pending; a rerun announces the pending', async () => {
    const u = await newUser(Array.from({ length: 40 }, (_, i) => testMessage(i, 'status')));
    const out = await outDir();
    // Events cannot be written (a folder where the events file goes): stored, recorded, pending.
    await mkdir(join(out, 'events.jsonl'), { recursive: true });
    const broken = await drain(u, out, ['--delete']);
    expect(broken.code, broken.stdout + broken.stderr).toBe(7);
    // Stored and recorded, never announced: nothing may be deleted.
    expect(await onServer(u.user)).toHaveLength(40);
    const s1 = await cli(['status', '--out', out]);
    expect(s1.code, s1.stderr).toBe(0);
    expect(s1.stdout).toContain(u.id);
    // The run went through the mailbox; its events failed (exit 7, failures counted).
    expect(s1.stdout).toMatch(/last run: \S+ complete: fetched 40 .*failures 40/);
    expect(s1.stdout).toContain('last success: never');
    expect(s1.stdout).toContain('pending: 40 stored but not announced');
    await rm(join(out, 'events.jsonl'), { recursive: true });
    const fixed = await drain(u, out, ['--delete', '--json']);
    expect(fixed.code, fixed.stderr).toBe(0);
    expect(parseReport(fixed)).toMatchObject({ fetched: 0, reannounced: 40, deleted: 40, pendingAnnouncements: 0 });
    const s2 = await cli(['status', '--out', out, '--id', u.id, '--json']);
    const rows = JSON.parse(s2.stdout) as Array<{ pending: unknown[]; state: { lastRun: { stopReason: string } } }>;
    expect(rows[0]!.pending).toHaveLength(0);
    expect(rows[0]!.state.lastRun.stopReason).toBe('complete');
    const s3 = await cli(['status', '--out', out]);
    expect(s3.stdout).toMatch(/last run: \S+ complete: fetched 0/);
    expect(s3.stdout).toContain('40 deleted from the server');
  });

  it('a UIDL reset stops the run (exit 8) until status --accept-uidl-reset', async () => {
    const messages = Array.from({ length: 60 }, (_, i) => testMessage(i, 'reset'));
    const u = await newUser(messages);
    const out = await outDir();
    expect((await drain(u, out)).code).toBe(0);
    // The server re-creates the mailbox: same messages, all new UIDLs.
    await dovecot.clearMailbox(u.user);
    await dovecot.deliverMany(u.user, messages);
    const tripped = await drain(u, out);
    expect(tripped.code, tripped.stdout).toBe(8);
    expect(tripped.stdout).toContain('UIDL reset');
    expect(tripped.stdout).toContain(`popdrain status --accept-uidl-reset --id ${u.id}`);
    expect((await drain(u, out)).code).toBe(8);
    const status = await cli(['status', '--out', out]);
    expect(status.stdout).toContain('UIDL-reset guard TRIPPED');
    const accept = await cli(['status', '--out', out, '--id', u.id, '--accept-uidl-reset']);
    expect(accept.code, accept.stderr).toBe(0);
    expect(accept.stdout).toContain('UIDL reset accepted');
    const after = await drain(u, out, ['--json']);
    expect(after.code, after.stderr).toBe(0);
    expect(parseReport(after)).toMatchObject({ fetched: 60, stopReason: 'complete' });
    const again = await drain(u, out);
    expect(again.code).toBe(0);
  });
});

describe('exit codes', () => {
  it('2: bad input gets one line on stderr and no stack trace', async () => {
    const badConfig = join(scratch, 'bad-config.json');
    await writeFile(badConfig, '{"mailboxes": [{"id": "x", "host": "h"}], "extra": 1}');
    const notJson = join(scratch, 'not-json.json');
    await writeFile(notJson, '{ mailboxes: ');
    const ok = pop3sUrl('someone');
    const cases: string[][] = [
      [],
      ['frobnicate'],
      ['drain'],
      ['drain', 'http://user@example.com'],
      ['drain', 'pop3s://user:secret@example.com'],
      ['drain', 'pop3s://user@example.com:99999'],
      ['drain', 'pop3s://%ZZ@example.com'],
      ['drain', ok, '--bogus'],
      ['drain', ok, '--max-size', '12XB'],
      ['drain', ok, '--max-messages', '0'],
      ['drain', ok, '--max-time', 'soon'],
      ['drain', ok, '--keep', '--delete'],
      ['drain', ok, '--auth', 'MAGIC'],
      ['drain', ok, '--parallel', 'two'],
      ['drain', ok, '--insecure-plaintext'],
      ['drain', ok, '--ca', join(scratch, 'no-such-ca.pem')],
      ['drain', '--config', join(scratch, 'no-such-config.json')],
      ['drain', '--config', notJson],
      ['drain', '--config', badConfig],
      ['drain', ok, '--config', badConfig],
      ['check', ok, ok],
      ['status', 'extra'],
    ];
    for (const args of cases) {
      const r = await cli(args, { env: { POPDRAIN_PASSWORD: 'x' } });
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      if (args.length === 0) continue; // no command: the usage text
      oneLine(r.stderr);
      expect(r.stdout, args.join(' ')).toBe('');
    }
  });

  it('3: wrong password', async () => {
    const u = await newUser([testMessage(1, 'auth')]);
    const r = await drain(u, await outDir(), [], { env: { POPDRAIN_PASSWORD: 'wrong-password' } });
    expect(r.code, r.stdout + r.stderr).toBe(3);
    expect(r.stdout).toContain('stopped: auth-failed');
  });

  it('4: untrusted CA, wrong server name, or pop3:// to a server without STLS', async () => {
    const u = await newUser([testMessage(1, 'tls')]);
    const base = ['drain', pop3sUrl(u.user), '--id', u.id, '--out', await outDir()];
    const env = { POPDRAIN_PASSWORD: u.password };
    const untrusted = await cli([...base, '--ca', dovecot.pki.untrustedCaCertPath, '--servername', 'localhost'], { env });
    expect(untrusted.code, untrusted.stdout).toBe(4);
    const wrongName = await cli([...base, '--ca', dovecot.pki.caCertPath, '--servername', 'mail.example.net'], { env });
    expect(wrongName.code, wrongName.stdout).toBe(4);
    expect(await onServer(u.user)).toHaveLength(1);

    const server = await scripted({
      tls: { key: dovecot.pki.serverKeyPem, cert: dovecot.pki.serverCertPem },
      features: { stls: false },
      users: { alice: { password: 'alice-pw' } },
      mailboxes: { alice: [{ bytes: Buffer.from('Subject: x\r\n\r\nhi\r\n') }] },
    });
    const noStls = await cli(['drain', `pop3://alice@127.0.0.1:${server.port}`, ...tlsArgs(), '--out', await outDir()], {
      env: { POPDRAIN_PASSWORD: 'alice-pw' },
    });
    expect(noStls.code, noStls.stdout + noStls.stderr).toBe(4);
    expect(noStls.stdout).toContain('tls-failed');
    // The password never went over the plaintext connection.
    expect(server.sessions.length).toBeGreaterThan(0);
    for (const s of server.sessions) expect(s.received.filter((l) => /^(USER|PASS|AUTH|APOP) /i.test(l))).toEqual([]);
  });

  it('5: connection refused', async () => {
    const port = await closedPort();
    const r = await cli(['drain', `pop3s://u@127.0.0.1:${port}`, ...tlsArgs(), '--out', await outDir()], { env: { POPDRAIN_PASSWORD: 'x' } });
    expect(r.code, r.stdout + r.stderr).toBe(5);
    expect(r.stdout).toContain('connection-failed');
  });

  it('6: another run holds the lease, or the server answers [IN-USE]', async () => {
    const u = await newUser([testMessage(1, 'busy')]);
    const out = await outDir();
    expect((await drain(u, out)).code).toBe(0);
    const ledger = new FileLedger({ dir: join(out, LEDGER_SUBDIR) });
    const lease = await ledger.acquireLease(u.id, 'another-run', 60_000, Date.now());
    expect(lease).toBeDefined();
    try {
      const r = await drain(u, out);
      expect(r.code, r.stdout + r.stderr).toBe(6);
      expect(r.stdout).toContain('stopped: busy (retry later)');
    } finally {
      await ledger.releaseLease(lease!);
      await ledger.close();
    }
    expect((await drain(u, out)).code).toBe(0);

    const server = await scripted({
      tls: { key: dovecot.pki.serverKeyPem, cert: dovecot.pki.serverCertPem },
      implicitTls: true,
      users: { bob: { password: 'bob-pw' } },
      mailboxes: { bob: [{ bytes: Buffer.from('Subject: x\r\n\r\nhi\r\n') }] },
      hooks: rejectLogin('IN-USE'),
    });
    const inUse = await cli(['drain', `pop3s://bob@127.0.0.1:${server.port}`, ...tlsArgs(), '--out', await outDir()], {
      env: { POPDRAIN_PASSWORD: 'bob-pw' },
    });
    expect(inUse.code, inUse.stdout + inUse.stderr).toBe(6);
    expect(inUse.stdout).toContain('stopped: in-use (retry later)');
  });

  it('7: the store fails (a file where the mailbox folder goes); nothing is deleted', async () => {
    const u = await newUser(Array.from({ length: 5 }, (_, i) => testMessage(i, 'store')));
    const out = await outDir();
    await mkdir(out, { recursive: true });
    await writeFile(join(out, u.id), 'not a folder');
    const r = await drain(u, out, ['--delete']);
    expect(r.code, r.stdout + r.stderr).toBe(7);
    expect(r.stdout).toMatch(/stopped: store-failed|failed/);
    expect(await onServer(u.user)).toHaveLength(5);
  });

  it('9: no password (POPDRAIN_PASSWORD unset, stdin not a terminal) or a password variable unset in a config', async () => {
    const r = await cli(['drain', pop3sUrl('someone'), ...tlsArgs(), '--out', await outDir()]);
    expect(r.code).toBe(9);
    oneLine(r.stderr);
    expect(r.stderr).toContain('POPDRAIN_PASSWORD');

    const u = await newUser([testMessage(1, 'cred')]);
    const config = join(scratch, `cred-${counter}.json`);
    await writeFile(
      config,
      JSON.stringify({
        mailboxes: [
          {
            id: 'cred',
            host: dovecot.host,
            port: dovecot.ports.pop3s,
            user: u.user,
            auth: { passwordEnv: 'UNSET_PASSWORD_VARIABLE' },
            tlsOptions: { caFile: dovecot.pki.caCertPath, servername: 'localhost' },
          },
        ],
      }),
    );
    const c = await cli(['drain', '--config', config, '--out', await outDir()]);
    expect(c.code, c.stdout + c.stderr).toBe(9);
    expect(c.stdout).toContain('UNSET_PASSWORD_VARIABLE');
  });
});

describe('AWS adapter options', () => {
  // Fake credentials and a loopback endpoint that is never reached: the options fail first.
  // NODE_NO_WARNINGS: the SDK's own Node version notice is not popdrain's output.
  const awsEnv = {
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_ACCESS_KEY_ID: 'AKIDCLIFAKE',
    AWS_SECRET_ACCESS_KEY: 'cli-fake-secret',
    AWS_REGION: 'us-east-1',
    NODE_NO_WARNINGS: '1',
  };
  const url = 'pop3s://nobody@127.0.0.1:9';
  const aws = (overrides: Record<string, string>): string[] =>
    Object.entries({ '--aws-endpoint': 'http://127.0.0.1:9', '--s3-bucket': 'b', '--ledger-table': 't', '--event-bus': 'e', ...overrides }).flat();

  it('2: an S3 prefix the store refuses is a usage error, one line naming the option', async () => {
    const r = await cli(['drain', url, ...aws({ '--s3-prefix': '/x' })], { env: awsEnv });
    expect(r.code, r.stderr).toBe(2);
    oneLine(r.stderr);
    expect(r.stderr).toContain('--s3-prefix');
    expect(r.stderr).toContain('"/x"');
    expect(r.stderr).not.toContain('internal error');
  });

  it('2: an empty ledger table name is a usage error, one line naming the option', async () => {
    const r = await cli(['drain', url, ...aws({ '--ledger-table': '' })], { env: awsEnv });
    expect(r.code, r.stderr).toBe(2);
    oneLine(r.stderr);
    expect(r.stderr).toContain('--ledger-table');
    expect(r.stderr).not.toContain('internal error');
  });
});
