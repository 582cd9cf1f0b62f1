// `drain --refetch` through the CLI against Dovecot: the stored messages are retrieved again,
// announced again under the same event ids (events.jsonl gains them), compared with the stored
// copies (0 differences; then an edited stored file is reported and left as it is), within the
// budget; a message known only from an imported seen-list is stored as new.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { eventsOf, servedForm, sha256, testMessage } from '../../testkit/fixtures/drain-fixtures.js';
import { cli, useDovecotCli } from '../support/real-server-cli.js';

const world = useDovecotCli('popdrain-refetch-cli-');

let n = 0;
async function mailbox(count: number): Promise<{ user: string; out: string; env: Record<string, string>; messages: Buffer[] }> {
  n += 1;
  const user = `refetch${n}`;
  const password = `pw-refetch-${n}-Xy`;
  await world.dovecot.addUser(user, password);
  const messages = Array.from({ length: count }, (_, i) => testMessage(i + 1, `refetch-${n}`, i === 1 ? 300_000 : undefined));
  await world.dovecot.deliverMany(user, messages);
  const out = join(world.scratch, `out-${n}`);
  await mkdir(out);
  return { user, out, env: { POPDRAIN_PASSWORD: password }, messages };
}
const url = (user: string): string => `pop3s://${user}@${world.dovecot.host}:${world.dovecot.ports.pop3s}`;
const tls = (): string[] => ['--ca', world.dovecot.pki.caCertPath, '--servername', 'localhost'];

interface Stored {
  id: string;
  uidl: string;
  sha256: string;
  path: string;
}
async function storedEvents(out: string): Promise<Stored[]> {
  return (await eventsOf(out))
    .filter((e) => e['detail-type'] === 'Email Stored')
    .map((e) => {
      const d = e.detail as { uidl: string; sha256: string; storage: { path: string } };
      return { id: e.id as string, uidl: d.uidl, sha256: d.sha256, path: d.storage.path };
    });
}

describe('drain --refetch', () => {
  it('announces every stored message again under its id, reports 0 differences, then the edited stored copy, never replacing it', async () => {
    const m = await mailbox(3);
    const first = await cli(['drain', url(m.user), ...tls(), '--out', m.out, '--json'], m.env, world.scratch);
    expect(first.code, first.stderr).toBe(0);
    const before = await storedEvents(m.out);
    expect(before).toHaveLength(3);

    const again = await cli(['drain', url(m.user), ...tls(), '--out', m.out, '--refetch', '--json'], m.env, world.scratch);
    expect(again.code, again.stderr).toBe(0);
    const report = JSON.parse(again.stdout);
    expect(report).toMatchObject({ fetched: 3, announced: 3, refetch: { refetched: 3, same: 3, restored: 0, differences: [] } });
    const after = await storedEvents(m.out);
    expect(after).toHaveLength(6);
    // The same ids (and the same content), each announced twice.
    expect(after.slice(3)).toEqual(expect.arrayContaining(before));
    expect(new Set(after.map((e) => e.id))).toEqual(new Set(before.map((e) => e.id)));

    // Change the bytes of one stored copy: the refetch reports it and keeps the file as it is.
    const victim = before[1]!;
    const edited = Buffer.from('Subject: edited by hand\r\n\r\nnot the message\r\n');
    await writeFile(victim.path, edited);
    const third = await cli(['drain', url(m.user), ...tls(), '--out', m.out, '--refetch', '--delete', '--json'], m.env, world.scratch);
    expect(third.code, third.stderr).toBe(0);
    const diff = JSON.parse(third.stdout);
    expect(diff.refetch).toMatchObject({ refetched: 3, same: 2, differences: [{ uidl: victim.uidl, storedSha256: victim.sha256, receivedSha256: victim.sha256, storedCopy: 'differs' }] });
    expect(diff.refetch.differences[0].storeSays).toContain(sha256(edited));
    expect(third.stderr).toMatch(new RegExp(`refetched message differs from the stored copy; the stored copy is kept \\(uidl=${victim.uidl} `));
    expect(await readFile(victim.path)).toEqual(edited);
    // --delete: only the two whose bytes are those stored went; the differing one stays.
    expect(diff.deleted).toBe(2);
    expect(await world.dovecot.listMaildir(m.user)).toHaveLength(1);
    // The other stored copies are the served bytes, untouched.
    for (const e of before.filter((x) => x !== victim)) expect(sha256(await readFile(e.path))).toBe(e.sha256);
    expect(before.map((e) => e.sha256).sort()).toEqual(m.messages.map((b) => sha256(servedForm(b))).sort());

    // The human summary names the difference.
    const human = await cli(['drain', url(m.user), ...tls(), '--out', m.out, '--refetch'], m.env, world.scratch);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/refetched 1 already stored: 0 the same, 1 differ \(stored copies kept\)/);
    expect(human.stdout).toContain(`differs ${victim.uidl}: stored sha256 ${victim.sha256}`);
  });

  it('keeps to the budget, and stores a message known only from an imported seen-list as new', async () => {
    const m = await mailbox(4);
    const dry = await cli(['drain', url(m.user), ...tls(), '--out', m.out, '--dry-run', '--json'], m.env, world.scratch);
    const uidls = (JSON.parse(dry.stdout) as { plan: { fetch: Array<{ uidl: string }> } }).plan.fetch.map((f) => f.uidl);
    const file = join(world.scratch, `fetchids-${n}`);
    await writeFile(file, `${m.user}@${world.dovecot.host} ${uidls[3]}\n`);
    const imported = await cli(['import', url(m.user), '--fetchmail-ids', file, '--out', m.out], {}, world.scratch);
    expect(imported.code, imported.stderr).toBe(0);
    const first = await cli(['drain', url(m.user), ...tls(), '--out', m.out, '--json'], m.env, world.scratch);
    expect(JSON.parse(first.stdout)).toMatchObject({ fetched: 3, importedLeft: 1 });

    const budget = await cli(['drain', url(m.user), ...tls(), '--out', m.out, '--refetch', '--max-messages', '2', '--json'], m.env, world.scratch);
    expect(budget.code, budget.stderr).toBe(0);
    expect(JSON.parse(budget.stdout)).toMatchObject({ stopReason: 'max-messages', fetched: 2, moreRemaining: true, refetch: { refetched: 2, same: 2 } });

    const all = await cli(['drain', url(m.user), ...tls(), '--out', m.out, '--refetch', '--json'], m.env, world.scratch);
    expect(all.code, all.stderr).toBe(0);
    const report = JSON.parse(all.stdout);
    expect(report).toMatchObject({ fetched: 4, refetch: { refetched: 3, same: 3, differences: [] } });
    expect(report.importedLeft).toBeUndefined();
    const events = await storedEvents(m.out);
    expect(events.filter((e) => e.uidl === uidls[3])).toHaveLength(1);
    expect(new Set(events.map((e) => e.uidl))).toEqual(new Set(uidls));
    // Stored now: a plain run knows all four and fetches nothing.
    const plain = await cli(['drain', url(m.user), ...tls(), '--out', m.out, '--json'], m.env, world.scratch);
    expect(JSON.parse(plain.stdout)).toMatchObject({ fetched: 0, alreadyKnown: 4 });
    expect(JSON.parse(plain.stdout).importedLeft).toBeUndefined();
  });

  it('refuses --refetch with --mda', async () => {
    const r = await cli(['drain', url('nobody'), '--refetch', '--mda', '/bin/cat'], { POPDRAIN_PASSWORD: 'x' }, world.scratch);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--refetch cannot go with --mda/);
  });
});
