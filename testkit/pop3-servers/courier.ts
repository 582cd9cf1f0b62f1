// A real Courier POP3 server (Debian's courier-pop 1.0.16 with courier-authlib's userdb, unpacked
// by scripts/install-test-servers.sh) for integration tests, next to testkit/pop3-servers/dovecot.ts.
//
// Courier has compiled-in paths (/etc/courier, /usr/lib/courier, /run/courier/authdaemon/socket)
// and the packages are not installed, so it runs inside a private mount namespace (`unshare -m`,
// root only) where read-only overlays put the unpacked /usr and /etc over the system's and bind
// mounts put this server's own folders over /etc/courier and /run. Everything lives in one temp
// dir: the userdb (`systempw` only: CRAM-MD5 is advertised but has no secret to work with, as on
// many real installations), a private passwd with the `courier` user STLS wants, the Maildirs and
// a throw-away PKI. couriertcpd serves plain + STLS on one free loopback port and implicit TLS
// (through couriertls) on another. Courier reads the Maildirs directly: `deliver` writes files.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { chmod, chown, copyFile, cp, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTestPki, type TestPki } from '../pki.js';
import {
  LOOPBACK,
  exitOf,
  freePorts,
  mailUser,
  makeTraversable,
  run,
  servedMessages,
  stopGroup,
  unpackedRoot,
  waitForGreetings,
  type MailUser,
} from './unpacked-server.js';

/** Courier's default is 4; the tests open more sessions at once. */
const MAX_PER_IP = 200;
const USER_NAME_RE = /^[a-z0-9_][a-z0-9._-]*(@[a-z0-9.-]+)?$/;

export interface CourierOptions {
  /** POP3AUTH: SASL mechanisms offered before STLS and on plain connections. @default 'PLAIN LOGIN CRAM-MD5' */
  saslMechanisms?: string;
  /** POP3AUTH_TLS: SASL mechanisms offered under TLS. @default 'PLAIN LOGIN CRAM-MD5' */
  saslMechanismsTls?: string;
}

export interface CourierMessageFile {
  /** The Maildir file name (unique part, and `:2,<flags>` once Courier has moved it to cur/). */
  name: string;
  bytes: Buffer;
}

export interface Courier {
  readonly host: '127.0.0.1';
  readonly ports: { readonly pop3: number; readonly pop3s: number };
  readonly pki: TestPki;
  readonly baseDir: string;
  /** Adds a userdb user (`name` or `name@domain`) with a crypt password and an empty Maildir. */
  addUser(user: string, password: string): Promise<void>;
  /**
   * Writes each message into the user's Maildir (new/), in order, as Courier's own delivery would:
   * with LF line ends (Courier serves them as CRLF). Returns the file names.
   */
  deliver(user: string, messages: readonly Buffer[]): Promise<string[]>;
  /** The message files in the Maildir now (new/ and cur/), in delivery order. */
  maildir(user: string): Promise<CourierMessageFile[]>;
  /** What the server serves to `user` now, in order (an independent plain POP3 session). */
  served(user: string): Promise<Buffer[]>;
  /** The server's log (couriertcpd and the login processes write to it). */
  log(): Promise<string>;
  /** Stops every Courier process, removes baseDir (unless KEEP_COURIER=1). Idempotent. */
  stop(): Promise<void>;
}

function mountScript(root: string, base: string): string {
  return `set -eu
mount -t overlay overlay -o lowerdir=${base}/etc:${root}/etc:/etc /etc
mount --bind ${base}/courier /etc/courier
mount -t overlay overlay -o lowerdir=${root}/usr:/usr /usr
mount --bind ${base}/run /run
`;
}

function startScript(base: string, ports: { pop3: number; pop3s: number }, opts: Required<CourierOptions>): string {
  const tcpd = `/usr/sbin/couriertcpd -address=${LOOPBACK} -maxprocs=${MAX_PER_IP} -maxperip=${MAX_PER_IP} -nodnslookup -noidentlookup`;
  const login = '/usr/lib/courier/courier/courierpop3login /usr/lib/courier/courier/courierpop3d Maildir';
  return `. ${base}/mounts.sh
mkdir -p /run/courier/authdaemon
pids=""
trap 'kill $pids 2>/dev/null; wait; exit 0' TERM INT
/usr/lib/courier/courier-authlib/authdaemond &
pids="$pids $!"
export POP3AUTH='${opts.saslMechanisms}' POP3AUTH_TLS='${opts.saslMechanismsTls}'
export POP3_STARTTLS=YES POP3_TLS_REQUIRED=0 COURIERTLS=/usr/bin/couriertls TLS_VERIFYPEER=NONE
export TLS_CERTFILE=${base}/pki/pop3d.pem TLS_CACHEFILE= MAILDIRPATH=Maildir MIME_UNICODE_MESSAGE_TYPE=message/global
${tcpd} ${ports.pop3} ${login} &
pids="$pids $!"
${tcpd} ${ports.pop3s} /usr/bin/couriertls -server -tcpd ${login} &
pids="$pids $!"
wait
`;
}

async function ownTree(path: string, owner: MailUser): Promise<void> {
  await chown(path, owner.uid, owner.gid);
  for (const e of await readdir(path, { withFileTypes: true })) {
    const p = join(path, e.name);
    if (e.isDirectory()) await ownTree(p, owner);
    else await chown(p, owner.uid, owner.gid);
  }
}

export async function startCourier(options: CourierOptions = {}): Promise<Courier> {
  if (process.getuid?.() !== 0) {
    throw new Error('Courier runs in a private mount namespace over its compiled-in paths: the tests must run as root');
  }
  const opts: Required<CourierOptions> = {
    saslMechanisms: options.saslMechanisms ?? 'PLAIN LOGIN CRAM-MD5',
    saslMechanismsTls: options.saslMechanismsTls ?? 'PLAIN LOGIN CRAM-MD5',
  };
  const root = unpackedRoot('usr/sbin/couriertcpd');
  const owner = await mailUser();
  const base = await mkdtemp('/tmp/pd-courier-');
  let server: ChildProcess | undefined;
  let stopped = false;
  let sequence = 0;
  const passwords = new Map<string, string>();
  const logPath = join(base, 'courier.log');
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (server) await stopGroup(server);
    if (process.env.KEEP_COURIER !== '1') await rm(base, { recursive: true, force: true });
  };
  const home = (user: string): string => join(base, 'home', user);
  const userdbLines: string[] = [];
  try {
    await makeTraversable(base);
    for (const d of ['etc', 'run', 'home']) await mkdir(join(base, d));
    await cp(join(root, 'etc/courier'), join(base, 'courier'), { recursive: true });
    const rc = join(base, 'courier/authdaemonrc');
    await writeFile(rc, (await readFile(rc, 'utf8')).replace(/^authmodulelist=.*$/m, 'authmodulelist="authuserdb"'));
    // A private passwd/group with the `courier` user (couriertls runs as it for STLS).
    for (const f of ['passwd', 'group', 'shadow']) await copyFile(join('/etc', f), join(base, 'etc', f));
    await writeFile(join(base, 'etc/passwd'), `courier:x:${owner.uid}:${owner.gid}::/nonexistent:/usr/sbin/nologin\n`, { flag: 'a' });
    await writeFile(join(base, 'etc/group'), `courier:x:${owner.gid}:\n`, { flag: 'a' });
    const pki = await makeTestPki(join(base, 'pki'));
    const pem = join(base, 'pki/pop3d.pem');
    await writeFile(pem, pki.serverKeyPem + pki.serverCertPem, { mode: 0o600 });
    await chown(pem, owner.uid, owner.gid);
    await writeFile(join(base, 'courier/userdb'), '', { mode: 0o600 });
    await writeFile(join(base, 'mounts.sh'), mountScript(root, base));
    await writeFile(join(base, 'makeuserdb.sh'), `. ${base}/mounts.sh\n/usr/sbin/makeuserdb\n`);
    await run('unshare', ['-m', '--propagation', 'private', 'sh', join(base, 'makeuserdb.sh')]);
    const [pop3, pop3s] = (await freePorts(2)) as [number, number];
    await writeFile(join(base, 'start.sh'), startScript(base, { pop3, pop3s }, opts));
    const log = openSync(logPath, 'a');
    try {
      server = spawn('unshare', ['-m', '--propagation', 'private', 'sh', join(base, 'start.sh')], {
        cwd: base,
        detached: true,
        stdio: ['ignore', log, log],
      });
    } finally {
      closeSync(log);
    }
    const started = server;
    started.on('error', () => undefined);
    await waitForGreetings(
      [
        { port: pop3, tls: false },
        { port: pop3s, tls: true },
      ],
      pki.caCertPem,
      () => exitOf(started),
      async () => `courier log:\n${await readFile(logPath, 'utf8').catch(() => '')}`,
    );

    const addUser = async (user: string, password: string): Promise<void> => {
      if (!USER_NAME_RE.test(user)) throw new Error(`invalid Courier test user ${JSON.stringify(user)}`);
      const maildir = join(home(user), 'Maildir');
      for (const d of ['new', 'cur', 'tmp']) await mkdir(join(maildir, d), { recursive: true });
      await ownTree(home(user), owner);
      const hash = (await run('openssl', ['passwd', '-6', '-stdin'], { input: `${password}\n` })).trim();
      userdbLines.push(`${user}\tuid=${owner.uid}|gid=${owner.gid}|home=${home(user)}|mail=${maildir}|systempw=${hash}`);
      await writeFile(join(base, 'courier/userdb'), `${userdbLines.join('\n')}\n`, { mode: 0o600 });
      await run('unshare', ['-m', '--propagation', 'private', 'sh', join(base, 'makeuserdb.sh')]);
      passwords.set(user, password);
    };

    const deliver = async (user: string, messages: readonly Buffer[]): Promise<string[]> => {
      const maildir = join(home(user), 'Maildir');
      const names: string[] = [];
      for (const m of messages) {
        sequence += 1;
        // Courier orders messages by the time stamp at the start of the name, then the name.
        const name = `${1_700_000_000 + sequence}.M${String(sequence).padStart(6, '0')}P${process.pid}.popdrain`;
        const tmp = join(maildir, 'tmp', name);
        await writeFile(tmp, Buffer.from(m.toString('latin1').replace(/\r\n/g, '\n'), 'latin1'), { mode: 0o600 });
        await chown(tmp, owner.uid, owner.gid);
        await rename(tmp, join(maildir, 'new', name));
        names.push(name);
      }
      return names;
    };

    const maildir = async (user: string): Promise<CourierMessageFile[]> => {
      const files: CourierMessageFile[] = [];
      for (const sub of ['new', 'cur']) {
        const dir = join(home(user), 'Maildir', sub);
        for (const name of await readdir(dir)) files.push({ name, bytes: await readFile(join(dir, name)) });
      }
      return files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    };

    await chmod(base, 0o755);
    return {
      host: LOOPBACK,
      ports: { pop3, pop3s },
      pki,
      baseDir: base,
      addUser,
      deliver,
      maildir,
      async served(user) {
        const password = passwords.get(user);
        if (password === undefined) throw new Error(`served: no user ${user}`);
        return servedMessages(pop3, user, password);
      },
      log: () => readFile(logPath, 'utf8'),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
