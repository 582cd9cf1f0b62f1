// --password-command and auth.passwordCommand through the CLI against Dovecot: the password is
// the first line a real program prints; it runs without a shell unless asked; a failing command
// is credentials-unavailable (exit 9) naming its exit code, never its output; a config file that
// names a command is refused while others can change it.
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { testMessage } from '../../testkit/fixtures/drain-fixtures.js';
import { cli, storedMessages, useDovecotCli } from '../support/real-server-cli.js';

const world = useDovecotCli('popdrain-pwcmd-');

let n = 0;
async function user(): Promise<{ user: string; password: string; id: string; out: string }> {
  n += 1;
  const u = { user: `pwc${n}`, password: `pw-cmd-${n}-Qz`, id: `pwc-${n}`, out: join(world.scratch, `out-${n}`) };
  await world.dovecot.addUser(u.user, u.password);
  await world.dovecot.deliverMany(u.user, [testMessage(1, 'pwc'), testMessage(2, 'pwc')]);
  return u;
}

const url = (u: string): string => `pop3s://${u}@${world.dovecot.host}:${world.dovecot.ports.pop3s}`;
const tls = (): string[] => ['--ca', world.dovecot.pki.caCertPath, '--servername', 'localhost'];
/** A password file in a folder whose name holds a space, so the command line needs quoting. */
async function passwordFile(password: string): Promise<string> {
  const dir = join(world.scratch, `secret dir ${n}`);
  await mkdir(dir, { recursive: true });
  const path = join(dir, 'pw');
  await writeFile(path, `${password}\nsecond line\n`, { mode: 0o600 });
  return path;
}

describe('--password-command', () => {
  it('takes the first line a program prints, its quoted argument passed as one word', async () => {
    const u = await user();
    const pw = await passwordFile(u.password);
    const r = await cli(['drain', url(u.user), ...tls(), '--id', u.id, '--out', u.out, '--quiet', '--password-command', `cat '${pw}'`], {}, world.scratch);
    expect(r.code, r.stderr).toBe(0);
    expect(await storedMessages(u.out, u.id)).toHaveLength(2);
  });

  it('a pipe without --password-command-shell is a usage error; with it, sh -c runs it', async () => {
    const u = await user();
    const pw = await passwordFile(u.password);
    const line = `cat '${pw}' | head -n 1`;
    const refused = await cli(['drain', url(u.user), ...tls(), '--id', u.id, '--out', u.out, '--password-command', line], {}, world.scratch);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('needs a shell');
    const r = await cli(['drain', url(u.user), ...tls(), '--id', u.id, '--out', u.out, '--quiet', '--password-command', line, '--password-command-shell'], {}, world.scratch);
    expect(r.code, r.stderr).toBe(0);
    expect(await storedMessages(u.out, u.id)).toHaveLength(2);
  });

  it('a failing command: exit 9, its exit code named, nothing it printed', async () => {
    const u = await user();
    const script = join(world.scratch, `fail-${n}.mjs`);
    await writeFile(script, 'process.stdout.write("printed-secret-XYZ\\n"); process.exit(5);\n');
    const r = await cli(['drain', url(u.user), ...tls(), '--id', u.id, '--out', u.out, '--password-command', `${process.execPath} ${script}`], {}, world.scratch);
    expect(r.code).toBe(9);
    expect(r.stdout + r.stderr).toContain('exit code 5');
    expect(r.stdout + r.stderr).not.toContain('printed-secret-XYZ');
  });
});

describe('auth.passwordCommand in --config', () => {
  async function config(u: { user: string; id: string }, command: string, mode: number): Promise<string> {
    const path = join(world.scratch, `mailboxes-${n}.json`);
    await writeFile(
      path,
      JSON.stringify({
        version: 1,
        mailboxes: [
          {
            id: u.id,
            host: world.dovecot.host,
            port: world.dovecot.ports.pop3s,
            user: u.user,
            auth: { passwordCommand: command },
            tlsOptions: { caFile: world.dovecot.pki.caCertPath, servername: 'localhost' },
          },
        ],
      }),
    );
    await chmod(path, mode);
    return path;
  }

  it('runs from a file only its owner can change; refused (exit 2) when the group or others can', async () => {
    const u = await user();
    const pw = await passwordFile(u.password);
    for (const mode of [0o664, 0o646]) {
      const path = await config(u, `cat '${pw}'`, mode);
      const refused = await cli(['drain', '--config', path, '--out', u.out], {}, world.scratch);
      expect(refused.code, `mode ${mode.toString(8)}`).toBe(2);
      expect(refused.stderr).toContain('chmod go-w');
      expect(await storedMessages(u.out, u.id).catch(() => [])).toEqual([]);
    }
    const path = await config(u, `cat '${pw}'`, 0o644);
    const r = await cli(['drain', '--config', path, '--out', u.out, '--quiet'], {}, world.scratch);
    expect(r.code, r.stderr).toBe(0);
    expect(await storedMessages(u.out, u.id)).toHaveLength(2);
  });

  it('a command that needs a shell is a configuration error naming the field', async () => {
    const u = await user();
    const path = await config(u, 'pass show x | head -1', 0o600);
    const r = await cli(['drain', '--config', path, '--out', u.out], {}, world.scratch);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/passwordCommand.*needs a shell/);
  });
});
