// drain --config with the local config format, through the CLI against Dovecot: each mailbox's
// own state folder (`out`) and Maildir (`maildir`), a command-line --out overriding the file's,
// and an unknown field refused with exit 2, naming the field and the mailbox.
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type Dovecot } from '../../testkit/pop3-servers/dovecot.js';
import { testMessage } from '../../testkit/fixtures/drain-fixtures.js';
import { buildCli, cli, storedMessages } from '../support/real-server-cli.js';

let dovecot: Dovecot;
let scratch: string;

beforeAll(async () => {
  await buildCli();
  scratch = await mkdtemp(join(tmpdir(), 'popdrain-config-'));
  dovecot = await startDovecot();
}, 120_000);
afterAll(async () => {
  await dovecot?.stop();
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
});

const box = (id: string, user: string, extra: Record<string, unknown> = {}) => ({
  id,
  host: dovecot.host,
  port: dovecot.ports.pop3s,
  user,
  auth: { passwordEnv: `PW_${id.toUpperCase()}` },
  tlsOptions: { caFile: dovecot.pki.caCertPath, servername: 'localhost' },
  ...extra,
});

describe('drain --config, local fields', () => {
  it('stores each mailbox where its own out and maildir say, with no --out and no --secrets-manager', async () => {
    await dovecot.addUser('cfga', 'pw-a');
    await dovecot.addUser('cfgb', 'pw-b');
    await dovecot.deliverMany('cfga', [testMessage(1, 'a'), testMessage(2, 'a')]);
    await dovecot.deliverMany('cfgb', [testMessage(1, 'b')]);
    const path = join(scratch, 'local.json');
    const outA = join(scratch, 'a-state');
    const outB = join(scratch, 'b-state');
    const maildir = join(scratch, 'b-maildir');
    await writeFile(path, JSON.stringify({ version: 1, defaults: { limits: { maxTimePerRun: '1m' } }, mailboxes: [box('a', 'cfga', { out: outA }), box('b', 'cfgb', { out: outB, maildir })] }), { mode: 0o600 });
    const r = await cli(['drain', '--config', path], { PW_A: 'pw-a', PW_B: 'pw-b', XDG_DATA_HOME: join(scratch, 'xdg') }, scratch);
    expect(r.code, r.stderr).toBe(0);
    expect(await storedMessages(outA, 'a')).toHaveLength(2);
    expect(await readdir(join(maildir, 'new'))).toHaveLength(1);
    // b's ledger and events are in its own folder; nothing went to the default folder.
    expect(await readdir(outB)).toEqual(expect.arrayContaining(['.popdrain', 'events.jsonl']));
    await expect(readdir(join(scratch, 'xdg'))).rejects.toThrow();
    expect(r.stdout).toContain(`stored in ${maildir}`);
  });

  it('--out on the command line overrides the file', async () => {
    await dovecot.addUser('cfgc', 'pw-c');
    await dovecot.deliverMany('cfgc', [testMessage(1, 'c')]);
    const path = join(scratch, 'override.json');
    await writeFile(path, JSON.stringify({ mailboxes: [box('c', 'cfgc', { out: join(scratch, 'not-used') })] }), { mode: 0o600 });
    const out = join(scratch, 'cli-out');
    const r = await cli(['drain', '--config', path, '--out', out, '--quiet'], { PW_C: 'pw-c' }, scratch);
    expect(r.code, r.stderr).toBe(0);
    expect(await storedMessages(out, 'c')).toHaveLength(1);
    await expect(readdir(join(scratch, 'not-used'))).rejects.toThrow();
  });

  it('an unknown field: exit 2, naming the field and the mailbox', async () => {
    const path = join(scratch, 'unknown.json');
    await writeFile(path, JSON.stringify({ mailboxes: [box('d', 'cfgd', { outdir: '/tmp/x' })] }), { mode: 0o600 });
    const r = await cli(['drain', '--config', path], {}, scratch);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('mailbox 1 "d": Unrecognized key: "outdir"');
  });
});
