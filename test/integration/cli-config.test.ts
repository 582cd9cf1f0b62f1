// drain --config with the local config format, through the CLI against Dovecot: each mailbox's
// own state folder (`out`) and Maildir (`maildir`), a command-line --out overriding the file's,
// and an unknown field refused with exit 2, naming the field and the mailbox.
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { testMessage } from '../../testkit/fixtures/drain-fixtures.js';
import { cli, storedMessages, useDovecotCli } from '../support/real-server-cli.js';

const world = useDovecotCli('popdrain-config-');

const box = (id: string, user: string, extra: Record<string, unknown> = {}) => ({
  id,
  host: world.dovecot.host,
  port: world.dovecot.ports.pop3s,
  user,
  auth: { passwordEnv: `PW_${id.toUpperCase()}` },
  tlsOptions: { caFile: world.dovecot.pki.caCertPath, servername: 'localhost' },
  ...extra,
});

describe('drain --config, local fields', () => {
  it('stores each mailbox where its own out and maildir say, with no --out and no --secrets-manager', async () => {
    await world.dovecot.addUser('cfga', 'pw-a');
    await world.dovecot.addUser('cfgb', 'pw-b');
    await world.dovecot.deliverMany('cfga', [testMessage(1, 'a'), testMessage(2, 'a')]);
    await world.dovecot.deliverMany('cfgb', [testMessage(1, 'b')]);
    const path = join(world.scratch, 'local.json');
    const outA = join(world.scratch, 'a-state');
    const outB = join(world.scratch, 'b-state');
    const maildir = join(world.scratch, 'b-maildir');
    await writeFile(path, JSON.stringify({ version: 1, defaults: { limits: { maxTimePerRun: '1m' } }, mailboxes: [box('a', 'cfga', { out: outA }), box('b', 'cfgb', { out: outB, maildir })] }), { mode: 0o600 });
    const r = await cli(['drain', '--config', path], { PW_A: 'pw-a', PW_B: 'pw-b', XDG_DATA_HOME: join(world.scratch, 'xdg') }, world.scratch);
    expect(r.code, r.stderr).toBe(0);
    expect(await storedMessages(outA, 'a')).toHaveLength(2);
    expect(await readdir(join(maildir, 'new'))).toHaveLength(1);
    // b's ledger and events are in its own folder; nothing went to the default folder.
    expect(await readdir(outB)).toEqual(expect.arrayContaining(['.popdrain', 'events.jsonl']));
    await expect(readdir(join(world.scratch, 'xdg'))).rejects.toThrow();
    expect(r.stdout).toContain(`stored in ${maildir}`);
  });

  it('--out on the command line overrides the file', async () => {
    await world.dovecot.addUser('cfgc', 'pw-c');
    await world.dovecot.deliverMany('cfgc', [testMessage(1, 'c')]);
    const path = join(world.scratch, 'override.json');
    await writeFile(path, JSON.stringify({ mailboxes: [box('c', 'cfgc', { out: join(world.scratch, 'not-used') })] }), { mode: 0o600 });
    const out = join(world.scratch, 'cli-out');
    const r = await cli(['drain', '--config', path, '--out', out, '--quiet'], { PW_C: 'pw-c' }, world.scratch);
    expect(r.code, r.stderr).toBe(0);
    expect(await storedMessages(out, 'c')).toHaveLength(1);
    await expect(readdir(join(world.scratch, 'not-used'))).rejects.toThrow();
  });

  it('an unknown field: exit 2, naming the field and the mailbox', async () => {
    const path = join(world.scratch, 'unknown.json');
    await writeFile(path, JSON.stringify({ mailboxes: [box('d', 'cfgd', { outdir: '/tmp/x' })] }), { mode: 0o600 });
    const r = await cli(['drain', '--config', path], {}, world.scratch);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('mailbox 1 "d": Unrecognized key: "outdir"');
  });
});
