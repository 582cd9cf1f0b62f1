// The command-line tool as a user runs it: `node dist/cli/main.js ...` in a child process, against
// a real Dovecot (implicit TLS, and STLS on the pop3 port) and, for what Dovecot will not do on
// demand, the scripted POP3 server. Each test checks what lands on disk, what the server still
// holds, the events, the report and the exit code. This file: `popdrain drain` with --config, a
// password file, the user of the URL, SIGINT and kill -9.
// The set-up is test/support/cli-world.ts.
import { chmod, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { servedForm, sha256, storedFiles, testMessage } from '../../testkit/fixtures/drain-fixtures.js';
import { silentGreeting } from '../support/script-server.js';
import {
  bigMessage,
  cli,
  counter,
  deliverMore,
  dovecot,
  drain,
  expectStoredExactly,
  newUser,
  onServer,
  outDir,
  parseReport,
  pop3sUrl,
  scratch,
  scripted,
  servedShas,
  setUpCliWorld,
  shasOf,
  startCli,
  storedEvents,
  tlsArgs,
} from '../support/cli-world.js';

setUpCliWorld();

describe('popdrain drain', () => {
  it('--config drains several mailboxes, two at a time, with passwords from variables and files', async () => {
    const users = await Promise.all([0, 1, 2].map(async () => newUser([])));
    for (const [k, u] of users.entries()) await deliverMore(u, Array.from({ length: 60 }, (_, i) => testMessage(i, `cfg${k}`, 2000)));
    const pwFile = join(scratch, `pw-${counter}`);
    await writeFile(pwFile, `${users[1]!.password}\n`, { mode: 0o600 });
    const config = join(scratch, `mailboxes-${counter}.json`);
    await writeFile(
      config,
      JSON.stringify({
        version: 1,
        defaults: { tlsOptions: { caFile: dovecot.pki.caCertPath, servername: 'localhost' } },
        mailboxes: [
          { id: 'cfg-a', host: dovecot.host, port: dovecot.ports.pop3s, user: users[0]!.user, auth: { passwordEnv: 'CFG_PW_A' } },
          { id: 'cfg-b', host: dovecot.host, port: dovecot.ports.pop3s, user: users[1]!.user, auth: { passwordFile: pwFile } },
          { id: 'cfg-c', host: dovecot.host, port: dovecot.ports.pop3, tls: 'starttls', user: users[2]!.user, auth: { passwordEnv: 'CFG_PW_C' } },
        ],
      }),
    );
    const out = await outDir();
    const r = await cli(['drain', '--config', config, '--parallel', '2', '--out', out, '--json'], {
      env: { CFG_PW_A: users[0]!.password, CFG_PW_C: users[2]!.password },
    });
    expect(r.code, r.stderr).toBe(0);
    const reports = JSON.parse(r.stdout) as Array<{ mailboxId: string; fetched: number; stopReason: string; startedAt: string; finishedAt: string }>;
    expect(reports.map((x) => x.mailboxId).sort()).toEqual(['cfg-a', 'cfg-b', 'cfg-c']);
    for (const x of reports) expect(x).toMatchObject({ stopReason: 'complete', fetched: 60 });
    // Two ran at once: the first two started before either finished.
    const [p, q] = [...reports].sort((a, b) => a.startedAt.localeCompare(b.startedAt));
    expect(Date.parse(q!.startedAt)).toBeLessThan(Date.parse(p!.finishedAt));
    for (const [k, id] of ['cfg-a', 'cfg-b', 'cfg-c'].entries()) expect(shasOf((await storedFiles(out, id)).values())).toEqual(servedShas(users[k]!.messages));
  });

  it('warns about a password file others can read, and still drains', async () => {
    const u = await newUser([testMessage(1, 'pwf')]);
    const pwFile = join(scratch, `pw-open-${counter}`);
    await writeFile(pwFile, `${u.password}\n`);
    await chmod(pwFile, 0o644);
    const out = await outDir();
    const args = ['drain', pop3sUrl(u.user), ...tlsArgs(), '--id', u.id, '--out', out, '--password-file', pwFile];
    const open = await cli(args);
    expect(open.code, open.stderr).toBe(0);
    expect(open.stderr).toContain(`${pwFile} is readable by other users`);
    await chmod(pwFile, 0o600);
    const closed = await cli(args);
    expect(closed.code).toBe(0);
    expect(closed.stderr).not.toContain('readable by other users');
  });

  it('percent-decodes the user of the URL, and --user overrides it', async () => {
    const u = await newUser([testMessage(1, 'at'), testMessage(2, 'at')], `jane${counter}@example.com`);
    const out = await outDir();
    const url = `pop3s://${u.user.replace('@', '%40')}@${dovecot.host}:${dovecot.ports.pop3s}`;
    const r = await cli(['drain', url, ...tlsArgs(), '--out', out, '--json'], { env: { POPDRAIN_PASSWORD: u.password } });
    expect(r.code, r.stderr).toBe(0);
    const report = parseReport(r);
    expect(report.fetched).toBe(2);
    // The derived id is readable and safe as a folder name, and holds neither scheme nor port.
    expect(report.mailboxId).toMatch(/^jane\d+_example\.com_127\.0\.0\.1-[0-9a-f]{8}$/);
    await expectStoredExactly(out, report.mailboxId as string, u.messages);

    const out2 = await outDir();
    const other = `pop3s://nobody@${dovecot.host}:${dovecot.ports.pop3s}`;
    const o = await cli(['drain', other, ...tlsArgs(), '--user', u.user, '--id', 'override', '--out', out2, '--json'], {
      env: { POPDRAIN_PASSWORD: u.password },
    });
    expect(o.code, o.stderr).toBe(0);
    expect(parseReport(o).fetched).toBe(2);
  });

  it('first SIGINT: requests no more, QUITs (on loopback well within its 2 s), prints the report, exits 130; deleted = stored', async () => {
    const messages = Array.from({ length: 400 }, (_, i) => bigMessage(i, 30_000));
    const u = await newUser(messages);
    const out = await outDir();
    const { child, result } = startCli(['drain', pop3sUrl(u.user), ...tlsArgs(), '--id', u.id, '--out', out, '--delete', '-v'], {
      env: { POPDRAIN_PASSWORD: u.password },
    });
    let sent = false;
    child.stderr!.on('data', (d: Buffer) => {
      // Progress lines come every 10 %: interrupt after the first one.
      if (!sent && /\d+\/400 msgs/.test(d.toString())) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    const r = await result;
    expect(sent).toBe(true);
    expect(r.code, r.stderr.slice(-2000)).toBe(130);
    expect(r.stderr).toContain('SIGINT: stopping: no new messages');
    expect(r.stderr).toMatch(/C: QUIT\n.*S: \+OK/);
    expect(r.stdout).toContain(`${u.id}: interrupted`);
    const m = /fetched (\d+) .*deleted (\d+)/.exec(r.stdout);
    expect(m).not.toBeNull();
    const [fetched, deleted] = [Number(m![1]), Number(m![2])];
    expect(fetched).toBeGreaterThan(0);
    expect(fetched).toBeLessThan(400);
    expect(deleted).toBe(fetched);
    const stored = await storedFiles(out, u.id);
    expect(stored.size).toBe(fetched);
    // What left the server is exactly what was stored.
    const remaining = await onServer(u.user);
    expect(remaining).toHaveLength(400 - fetched);
    expect(shasOf([...remaining, ...stored.values()])).toEqual(servedShas(messages));
    // A rerun takes the rest.
    const rest = await drain(u, out, ['--delete', '--json']);
    expect(parseReport(rest)).toMatchObject({ fetched: 400 - fetched, stopReason: 'complete' });
    await expectStoredExactly(out, u.id, messages);
    expect(await onServer(u.user)).toHaveLength(0);
  });

  it('a second SIGINT stops at once: exit 130, no QUIT, nothing deleted (also while still connecting)', async () => {
    const messages = Array.from({ length: 300 }, (_, i) => bigMessage(i, 30_000));
    const u = await newUser(messages);
    const out = await outDir();
    const { child, result } = startCli(['drain', pop3sUrl(u.user), ...tlsArgs(), '--id', u.id, '--out', out, '--delete', '-v'], {
      env: { POPDRAIN_PASSWORD: u.password },
    });
    // Signals of one kind that arrive together merge into one: the second waits for the first's answer.
    let sent = 0;
    child.stderr!.on('data', (d: Buffer) => {
      const text = d.toString();
      if (sent === 0 && /\d+\/300 msgs/.test(text)) {
        sent = 1;
        child.kill('SIGINT');
      }
      if (sent === 1 && text.includes('SIGINT: stopping')) {
        sent = 2;
        child.kill('SIGINT');
      }
    });
    const r = await result;
    expect(sent).toBe(2);
    expect(r.code, r.stderr.slice(-2000)).toBe(130);
    expect(r.stderr).toContain('stopping at once');
    expect(r.stderr).not.toMatch(/C: QUIT/);
    expect(await onServer(u.user)).toHaveLength(300);
    const stored = await storedFiles(out, u.id);
    const all = new Set(servedShas(messages));
    for (const b of stored.values()) expect(all.has(sha256(b))).toBe(true);

    // A server that never greets: the engine would wait for its greeting timeout.
    const silent = await scripted({ hooks: silentGreeting(), users: { carol: { password: 'carol-pw' } } });
    const started = Date.now();
    const stuck = startCli(['drain', `pop3://carol@127.0.0.1:${silent.port}`, '--insecure-plaintext', '--out', await outDir()], {
      env: { POPDRAIN_PASSWORD: 'carol-pw' },
    });
    stuck.child.stderr!.on('data', (d: Buffer) => {
      const text = d.toString();
      if (text.includes('connecting')) setTimeout(() => stuck.child.kill('SIGINT'), 200);
      if (text.includes('SIGINT: stopping')) stuck.child.kill('SIGINT');
    });
    const s = await stuck.result;
    expect(s.code, s.stderr).toBe(130);
    expect(Date.now() - started).toBeLessThan(8_000);
  });

  it(
    'kill -9 at random moments, rerun each time: everything stored once, byte for byte, nothing deleted unstored',
    async () => {
      const batch = (base: number, n: number): Buffer[] =>
        Array.from({ length: n }, (_, k) => {
          const i = base + k;
          return i % 30 === 7 ? bigMessage(i, 1_000_000 + (i % 4) * 300_000) : testMessage(i, 'kill', 200 + ((i * 37) % 3000));
        });
      const u = await newUser(batch(0, 600));
      const out = await outDir();
      const args = ['drain', pop3sUrl(u.user), ...tlsArgs(), '--id', u.id, '--out', out, '--delete', '--quiet'];
      let kills = 0;
      /** Kills after which more was stored than before the run: the run was killed while draining. */
      let killedWhileDraining = 0;
      let completed = 0;
      let next = 600;
      // Kill moments are drawn up to this; a run that finishes first shortens it, a run killed
      // before it stored anything (still starting: slow on a loaded machine) lengthens it.
      let maxDelayMs = 1500;
      for (let iteration = 0; kills < 12 && iteration < 40; iteration++) {
        const started = Date.now();
        const storedBefore = (await storedFiles(out, u.id)).size;
        const { child, result } = startCli(args, { env: { POPDRAIN_PASSWORD: u.password } });
        const timer = setTimeout(() => child.kill('SIGKILL'), 40 + Math.floor(Math.random() * maxDelayMs));
        const r = await result;
        clearTimeout(timer);
        if (r.signal === 'SIGKILL') {
          kills += 1;
          if ((await storedFiles(out, u.id)).size > storedBefore) killedWhileDraining += 1;
          else maxDelayMs = Math.min(15_000, Math.floor(maxDelayMs * 1.5));
        } else {
          expect(r.code, r.stderr).toBe(0);
          completed += 1;
          maxDelayMs = Math.max(200, Math.floor((Date.now() - started) * 1.2));
          // It finished before the kill: give the next runs something to do.
          await deliverMore(u, batch(next, 300));
          next += 300;
        }
        // After every run: each .eml is whole and one of the messages, and anything gone from
        // the server is stored.
        const stored = await storedFiles(out, u.id);
        const storedShas = new Set([...stored.values()].map(sha256));
        const all = new Map(u.messages.map((m) => [sha256(servedForm(m)), m]));
        for (const s of storedShas) expect(all.has(s)).toBe(true);
        expect(storedShas.size).toBe(stored.size);
        const left = new Set((await onServer(u.user)).map(sha256));
        for (const s of all.keys()) if (!left.has(s)) expect(storedShas.has(s), 'deleted from the server but not stored').toBe(true);
      }
      expect(kills).toBeGreaterThanOrEqual(10);
      expect(killedWhileDraining).toBeGreaterThanOrEqual(3);
      const final = await cli([...args.filter((a) => a !== '--quiet'), '--json'], { env: { POPDRAIN_PASSWORD: u.password } });
      expect(final.code, final.stderr).toBe(0);
      expect(parseReport(final).stopReason).toBe('complete');
      await expectStoredExactly(out, u.id, u.messages);
      expect(await onServer(u.user)).toHaveLength(0);
      // Events: one id per message (a re-announcement repeats the same id with the same content).
      const events = await storedEvents(out);
      const byId = new Map<string, string>();
      for (const e of events) {
        const sha = e.detail.sha256 as string;
        if (byId.has(e.id)) expect(byId.get(e.id)).toBe(sha);
        byId.set(e.id, sha);
      }
      expect(byId.size).toBe(u.messages.length);
      expect([...byId.values()].sort()).toEqual(servedShas(u.messages));
      // Besides the messages, the mailbox folder holds at most temp files of killed runs, and
      // their names never end in .eml.
      for (const name of await readdir(join(out, u.id))) {
        if (!name.endsWith('.eml')) expect(name, name).toMatch(/^\.tmp-\d+-[0-9a-f]+-\d+\.part$/);
      }
      expect(completed + kills).toBeGreaterThanOrEqual(10);
    },
    // Each run is followed by a check of every stored file and the server: ~3 min at load 10 on 2 cores.
    420_000,
  );
});
