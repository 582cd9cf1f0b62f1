// The command-line tool as a user runs it: `node dist/cli/main.js ...` in a child process, against
// a real Dovecot (implicit TLS, and STLS on the pop3 port) and, for what Dovecot will not do on
// demand, the scripted POP3 server. Each test checks what lands on disk, what the server still
// holds, the events, the report and the exit code. This file: `popdrain drain` storing, rerunning,
// delivering to a maildir, deleting, skipping, stopping early, the dry run and the JSON report.
// The set-up is test/support/cli-world.ts.
import { readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { eventsOf, storedFiles, testMessage } from '../../testkit/fixtures/drain-fixtures.js';
import {
  bigMessage,
  cli,
  deliverMore,
  drain,
  expectStoredExactly,
  newUser,
  onServer,
  outDir,
  parseReport,
  pop3Url,
  scratch,
  servedShas,
  setUpCliWorld,
  shasOf,
  storedEvents,
  tlsArgs,
  walk,
  type Entry,
} from '../support/cli-world.js';

setUpCliWorld();

describe('popdrain drain', () => {
  it('stores every message byte for byte as served (CRLF), owner-only, and announces each', async () => {
    const u = await newUser(Array.from({ length: 12 }, (_, i) => testMessage(i, 'basic', 100 + i * 50)));
    const out = await outDir();
    const r = await drain(u, out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`${u.id}: drained`);
    expect(r.stdout).toContain('fetched 12');
    await expectStoredExactly(out, u.id, u.messages);
    for (const e of await walk(out)) {
      expect(e.mode, e.path).toBe(e.isDir ? 0o700 : 0o600);
    }
    expect((await stat(out)).mode & 0o777).toBe(0o700);
    const events = await storedEvents(out);
    expect(events).toHaveLength(12);
    expect(events.map((e) => e.detail.sha256 as string).sort()).toEqual(servedShas(u.messages));
    // Keep is the default: the server still has everything.
    expect(await onServer(u.user)).toHaveLength(12);
  });

  it('drains over STLS with pop3:// and traces the exchange without the password', async () => {
    const u = await newUser(Array.from({ length: 4 }, (_, i) => testMessage(i, 'stls')));
    for (const auth of ['USER', 'PLAIN', 'auto']) {
      const out = await outDir();
      const r = await cli(['drain', pop3Url(u.user), ...tlsArgs(), '--id', u.id, '--out', out, '-v', '--auth', auth], {
        env: { POPDRAIN_PASSWORD: u.password },
      });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/C: STLS/);
      expect(r.stderr).toMatch(/C: (PASS|AUTH) /);
      expect(r.stderr).toMatch(/C: RETR 1/);
      const forms = [
        u.password,
        Buffer.from(u.password).toString('base64'),
        Buffer.from(`\0${u.user}\0${u.password}`).toString('base64'),
        Buffer.from(`${u.user}\0${u.user}\0${u.password}`).toString('base64'),
      ];
      for (const f of forms) {
        expect(r.stderr).not.toContain(f);
        expect(r.stdout).not.toContain(f);
      }
      await expectStoredExactly(out, u.id, u.messages);
    }
  });

  it('fetches only new mail on a rerun', async () => {
    const u = await newUser(Array.from({ length: 5 }, (_, i) => testMessage(i, 'inc')));
    const out = await outDir();
    expect((await drain(u, out)).code).toBe(0);
    await deliverMore(u, Array.from({ length: 3 }, (_, i) => testMessage(100 + i, 'inc')));
    const r = await drain(u, out, ['--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(parseReport(r)).toMatchObject({ fetched: 3, alreadyKnown: 5, stopReason: 'complete' });
    await expectStoredExactly(out, u.id, u.messages);
    const again = await drain(u, out, ['--json']);
    expect(parseReport(again)).toMatchObject({ fetched: 0, alreadyKnown: 8 });
    expect(await storedEvents(out)).toHaveLength(8);
  });

  it('--maildir delivers LF line ends into new/, never twice (also after a reader moved one to cur/)', async () => {
    const u = await newUser(Array.from({ length: 6 }, (_, i) => testMessage(i, 'md', 300)));
    const out = await outDir();
    const maildir = join(await outDir(), 'Maildir');
    const r = await drain(u, out, ['--maildir', maildir]);
    expect(r.code, r.stderr).toBe(0);
    const newNames = await readdir(join(maildir, 'new'));
    expect(newNames).toHaveLength(6);
    const contents = await Promise.all(newNames.map((n) => readFile(join(maildir, 'new', n))));
    for (const c of contents) expect(c.includes('\r\n')).toBe(false);
    // The LF form is what the maildir on the server holds (the test messages end in a newline).
    expect(shasOf(contents)).toEqual(shasOf(u.messages));
    for (const n of newNames) expect((await stat(join(maildir, 'new', n))).mode & 0o777).toBe(0o600);
    expect(await storedFiles(out, u.id)).toHaveProperty('size', 0);

    // A rerun with the same ledger delivers nothing.
    expect((await drain(u, out, ['--maildir', maildir])).code).toBe(0);
    expect(await readdir(join(maildir, 'new'))).toHaveLength(6);

    // A mail reader moves one to cur/; a run that lost its ledger (a crash before recording)
    // fetches everything again and must still deliver nothing twice.
    await rename(join(maildir, 'new', newNames[0]!), join(maildir, 'cur', `${newNames[0]}:2,S`));
    const fresh = await outDir();
    const again = await drain(u, fresh, ['--maildir', maildir, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(parseReport(again).fetched).toBe(6);
    expect(await readdir(join(maildir, 'new'))).toHaveLength(5);
    expect(await readdir(join(maildir, 'cur'))).toEqual([`${newNames[0]}:2,S`]);
    expect((await storedEvents(fresh)).length).toBe(6);
  });

  it('--delete removes from the server exactly what it stored and announced', async () => {
    const u = await newUser(Array.from({ length: 7 }, (_, i) => testMessage(i, 'del')));
    const out = await outDir();
    const r = await drain(u, out, ['--delete', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(parseReport(r)).toMatchObject({ fetched: 7, deleted: 7 });
    expect(await onServer(u.user)).toHaveLength(0);
    await expectStoredExactly(out, u.id, u.messages);
  });

  it('--keep-days deletes only what was first seen that many days ago', async () => {
    const u = await newUser(Array.from({ length: 4 }, (_, i) => testMessage(i, 'kd')));
    const out = await outDir();
    const first = await drain(u, out, ['--keep-days', '1', '--json']);
    expect(parseReport(first)).toMatchObject({ fetched: 4, deleted: 0 });
    expect(await onServer(u.user)).toHaveLength(4);
    // Two days later (the clock of the child process moved forward), they go.
    const shift = join(scratch, 'shift-clock.mjs');
    await writeFile(shift, 'const real = Date.now; const offset = Number(process.env.TEST_CLOCK_OFFSET_MS); Date.now = () => real() + offset;\n');
    const later = await drain(u, out, ['--keep-days', '1', '--json'], {
      nodeArgs: ['--import', `file://${shift}`],
      env: { TEST_CLOCK_OFFSET_MS: String(2 * 86_400_000) },
    });
    expect(later.code, later.stderr).toBe(0);
    expect(parseReport(later)).toMatchObject({ fetched: 0, deleted: 4 });
    expect(await onServer(u.user)).toHaveLength(0);
  });

  it('--max-size skips larger messages with an Email Skipped event, exit 0, and says so', async () => {
    const small = Array.from({ length: 3 }, (_, i) => testMessage(i, 'ms'));
    const large = bigMessage(1, 40_000);
    const u = await newUser([...small, large]);
    const out = await outDir();
    const r = await drain(u, out, ['--max-size', '20kB', '--delete']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('skipped 1 over the size cap');
    await expectStoredExactly(out, u.id, small);
    const skipped = (await eventsOf(out)).filter((e) => e['detail-type'] === 'Email Skipped');
    expect(skipped).toHaveLength(1);
    expect(skipped[0]!.detail).toMatchObject({ reason: 'too-large', limit: 20_000 });
    // The skipped message stays on the server.
    expect(shasOf(await onServer(u.user))).toEqual(servedShas([large]));
  });

  it('--max-messages, --max-bytes and --max-time stop early with exit 0 and say that more remains', async () => {
    const u = await newUser(Array.from({ length: 10 }, (_, i) => testMessage(i, 'budget', 1000)));
    const out = await outDir();
    const byCount = await drain(u, out, ['--max-messages', '3']);
    expect(byCount.code, byCount.stderr).toBe(0);
    expect(byCount.stdout).toContain('stopped: max-messages');
    expect(byCount.stdout).toContain('7 messages remain: run again to continue');
    expect(await storedFiles(out, u.id)).toHaveProperty('size', 3);

    const byBytes = await drain(u, out, ['--max-bytes', '2500', '--json']);
    expect(byBytes.code, byBytes.stderr).toBe(0);
    expect(parseReport(byBytes)).toMatchObject({ stopReason: 'max-bytes', fetched: 2, moreRemaining: true, remaining: 5 });

    const byTime = await drain(u, out, ['--max-time', '1ms']);
    expect(byTime.code, byTime.stderr).toBe(0);
    expect(byTime.stdout).toContain('stopped: deadline');
    expect(byTime.stdout).toContain('5 messages remain: run again to continue');

    expect((await drain(u, out)).code).toBe(0);
    await expectStoredExactly(out, u.id, u.messages);
  });

  it('--dry-run lists what it would do and changes nothing', async () => {
    const u = await newUser([...Array.from({ length: 5 }, (_, i) => testMessage(i, 'dry')), bigMessage(2, 30_000)]);
    const out = await outDir();
    const r = await drain(u, out, ['--dry-run', '--delete', '--max-size', '10kB']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('would fetch 5');
    expect(r.stdout).toContain('skip 1 over the size cap');
    expect(r.stdout.match(/^ {4}fetch #\d+/gm)).toHaveLength(5);
    expect(r.stdout.match(/^ {4}skip {2}#\d+/gm)).toHaveLength(1);
    const emls = (await walk(out).catch(() => [] as Entry[])).filter((e) => e.path.endsWith('.eml'));
    expect(emls).toHaveLength(0);
    expect(await eventsOf(out).catch(() => [])).toHaveLength(0);
    expect(await onServer(u.user)).toHaveLength(6);
    const real = await drain(u, out, ['--json']);
    expect(parseReport(real).fetched).toBe(6);
  });

  it('--json writes one JSON report on stdout and nothing else', async () => {
    const u = await newUser(Array.from({ length: 3 }, (_, i) => testMessage(i, 'json')));
    const out = await outDir();
    const r = await drain(u, out, ['--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = parseReport(r);
    expect(report).toMatchObject({ mailboxId: u.id, stopReason: 'complete', ok: true, fetched: 3, announced: 3, failures: [] });
    expect(r.stdout.trim().startsWith('{')).toBe(true);
  });
});
