// What a Dovecot needs from the machine: its binaries, the mail user, free ports.
import { existsSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { delimiter, join } from 'node:path';
import type { MailUser } from './api.js';
import { EXEC_TIMEOUT_MS, execFileAsync } from './shared.js';

/** System user that owns the maildirs when we run as root (Dovecot refuses uid 0 for mail). */
export const MAIL_USER_NAME = 'popdrain-mail';
/** Passed to `useradd`; not a login shell. */
const NOLOGIN_SHELL = '/usr/sbin/nologin';

export function findExecutable(name: string): string | undefined {
  // /usr/sbin is often missing from an unprivileged PATH; dovecot lives there on Debian.
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/bin', '/sbin'];
  for (const dir of dirs) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

export async function idOf(user: string): Promise<{ uid: number; gid: number } | undefined> {
  try {
    const [u, g] = await Promise.all([
      execFileAsync('id', ['-u', user], { timeout: EXEC_TIMEOUT_MS }),
      execFileAsync('id', ['-g', user], { timeout: EXEC_TIMEOUT_MS }),
    ]);
    return { uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()) };
  } catch {
    return undefined;
  }
}

export async function ensureSystemUser(name: string): Promise<MailUser> {
  const existing = await idOf(name);
  if (existing) return { name, ...existing };
  try {
    await execFileAsync(
      'useradd',
      ['--system', '--user-group', '--no-create-home', '--shell', NOLOGIN_SHELL, name],
      { timeout: EXEC_TIMEOUT_MS },
    );
  } catch (err) {
    // Another test worker may have created it at the same moment; only fail if it is still absent.
    const raced = await idOf(name);
    if (raced) return { name, ...raced };
    const e = err as { stderr?: string; message: string };
    throw new Error(`cannot create the mail user ${name}: ${e.stderr?.trim() || e.message}`, {
      cause: err,
    });
  }
  const created = await idOf(name);
  if (!created) throw new Error(`useradd ${name} succeeded but \`id ${name}\` fails`);
  return { name, ...created };
}

/** Ports that were free a moment ago (all held open together, so they are distinct). */
export async function pickFreePorts(hosts: readonly string[]): Promise<number[]> {
  const servers = hosts.map(() => createNetServer());
  try {
    return await Promise.all(
      servers.map(
        (srv, i) =>
          new Promise<number>((resolve, reject) => {
            srv.once('error', reject);
            srv.listen(0, hosts[i], () => {
              const addr = srv.address();
              if (addr === null || typeof addr === 'string') reject(new Error('no port'));
              else resolve(addr.port);
            });
          }),
      ),
    );
  } finally {
    await Promise.all(
      servers.map((srv) => new Promise<void>((r) => (srv.listening ? srv.close(() => r()) : r()))),
    );
  }
}
