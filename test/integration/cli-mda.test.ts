// --mda through the CLI against Dovecot, with a small shell script as the MDA: each message
// arrives byte for byte on its stdin with the POPDRAIN_* variables; --delete removes from the
// server only what the MDA accepted (exit 0); the events name the `mda` storage; a config file
// naming an MDA is refused while others can change it.
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storedEventId } from '../../lib/drain/keys.js';
import { startDovecot, type Dovecot } from '../../testkit/pop3-servers/dovecot.js';
import { eventsOf, servedForm, sha256, testMessage } from '../../testkit/fixtures/drain-fixtures.js';
import { cli } from '../support/real-server-cli.js';

let dovecot: Dovecot;
let scratch: string;
let mdaScript: string;

// Keeps each message as <dir>/<event id>.eml and its variables as <event id>.env; refuses
// (exit 1) a message whose bytes contain REFUSE-ME.
const MDA = `#!/bin/sh
set -e
dir="$1"
cat > "$dir/$POPDRAIN_EVENT_ID.part"
if grep -q REFUSE-ME "$dir/$POPDRAIN_EVENT_ID.part"; then rm "$dir/$POPDRAIN_EVENT_ID.part"; exit 1; fi
printf '%s\\n' "$POPDRAIN_SHA256" "$POPDRAIN_UIDL" "$POPDRAIN_MAILBOX_ID" > "$dir/$POPDRAIN_EVENT_ID.env"
mv "$dir/$POPDRAIN_EVENT_ID.part" "$dir/$POPDRAIN_EVENT_ID.eml"
`;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'popdrain-mda-cli-'));
  mdaScript = join(scratch, 'deliver.sh');
  await writeFile(mdaScript, MDA, { mode: 0o755 });
  dovecot = await startDovecot();
}, 120_000);
afterAll(async () => {
  await dovecot?.stop();
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
});

let n = 0;
async function setup(messages: Buffer[]): Promise<{ user: string; password: string; id: string; out: string; box: string }> {
  n += 1;
  const u = { user: `mda${n}`, password: `pw-mda-${n}-Kq`, id: `mda-${n}`, out: join(scratch, `out-${n}`), box: join(scratch, `box ${n}`) };
  await mkdir(u.box);
  await dovecot.addUser(u.user, u.password);
  await dovecot.deliverMany(u.user, messages);
  return u;
}
const url = (u: string): string => `pop3s://${u}@${dovecot.host}:${dovecot.ports.pop3s}`;
const tls = (): string[] => ['--ca', dovecot.pki.caCertPath, '--servername', 'localhost'];
const delivered = async (box: string): Promise<string[]> => (await readdir(box)).filter((f) => f.endsWith('.eml')).sort();

describe('--mda', () => {
  it('delivers every message byte for byte with its variables; --delete empties the server; events say mda', async () => {
    const messages = [testMessage(1, 'mda'), testMessage(2, 'mda', 40_000), testMessage(3, 'mda')];
    const u = await setup(messages);
    const r = await cli(
      ['drain', url(u.user), ...tls(), '--id', u.id, '--out', u.out, '--delete', '--json', '--mda', `${mdaScript} '${u.box}'`],
      { POPDRAIN_PASSWORD: u.password },
      scratch,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ fetched: 3, deleted: 3 });
    const events = (await eventsOf(u.out)).filter((e) => e['detail-type'] === 'Email Stored');
    expect(events).toHaveLength(3);
    expect((await delivered(u.box)).sort()).toEqual(events.map((e) => `${e.id}.eml`).sort());
    for (const e of events) {
      const d = e.detail as { uidl: string; sha256: string; storage: { type: string; program: string } };
      expect(d.storage).toMatchObject({ type: 'mda', program: 'deliver.sh' });
      expect(e.id).toBe(storedEventId(u.id, d.uidl));
      const bytes = await readFile(join(u.box, `${e.id}.eml`));
      expect(sha256(bytes)).toBe(d.sha256);
      expect((await readFile(join(u.box, `${e.id}.env`), 'utf8')).split('\n').slice(0, 3)).toEqual([d.sha256, d.uidl, u.id]);
    }
    expect(events.map((e) => (e.detail as { sha256: string }).sha256).sort()).toEqual(messages.map((m) => sha256(servedForm(m))).sort());
    expect(await dovecot.listMaildir(u.user)).toHaveLength(0);
  });

  it('a message the MDA refuses stays on the server (exit 7) and the others are delivered and deleted', async () => {
    const refused = Buffer.from('From: x@example.com\nSubject: REFUSE-ME\n\nbody\n');
    const u = await setup([testMessage(1, 'mdb'), refused, testMessage(2, 'mdb')]);
    const r = await cli(['drain', url(u.user), ...tls(), '--id', u.id, '--out', u.out, '--delete', '--json', '--mda', `${mdaScript} '${u.box}'`], { POPDRAIN_PASSWORD: u.password }, scratch);
    expect(r.code).toBe(7);
    expect(r.stdout).toContain('exit code 1');
    expect(await delivered(u.box)).toHaveLength(2);
    const left = await dovecot.listMaildir(u.user);
    expect(left).toHaveLength(1);
    expect((await readFile(left[0]!)).toString()).toContain('REFUSE-ME');
  });

  it('from a config file: runs when only its owner can change it, refused (exit 2) when others can', async () => {
    const u = await setup([testMessage(1, 'mdc')]);
    const config = join(scratch, `mda-${n}.json`);
    await writeFile(
      config,
      JSON.stringify({
        version: 1,
        mailboxes: [
          {
            id: u.id,
            host: dovecot.host,
            port: dovecot.ports.pop3s,
            user: u.user,
            auth: { passwordEnv: 'MDA_PW' },
            tlsOptions: { caFile: dovecot.pki.caCertPath, servername: 'localhost' },
            mda: `${mdaScript} '${u.box}'`,
          },
        ],
      }),
    );
    await chmod(config, 0o666);
    const refused = await cli(['drain', '--config', config, '--out', u.out], { MDA_PW: u.password }, scratch);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/mda.*chmod go-w/);
    expect(await delivered(u.box)).toEqual([]);
    await chmod(config, 0o600);
    const r = await cli(['drain', '--config', config, '--out', u.out, '--quiet'], { MDA_PW: u.password }, scratch);
    expect(r.code, r.stderr).toBe(0);
    expect(await delivered(u.box)).toHaveLength(1);
  });
});
