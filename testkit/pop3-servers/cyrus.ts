// A real Cyrus IMAP 3.6 POP3 server (Debian's cyrus-pop3d, unpacked by
// scripts/install-test-servers.sh) for integration tests, next to testkit/pop3-servers/dovecot.ts.
//
// Everything lives in one temp dir: imapd.conf, cyrus.conf, a sasldb with the users, the spool,
// sockets and a throw-away PKI. `master -C imapd.conf -M cyrus.conf` runs in the foreground in its
// own process group; POP3 listens on two free loopback ports (plain with STLS, implicit TLS). Mail
// arrives through Cyrus's own lmtpd on a unix socket, which adds Return-Path, Received and
// X-Cyrus-Session-Id (and Message-ID/Date when missing): compare with what the server serves
// (`served`), not with the seed. `popminpoll: 0` (Debian's 1 refuses a second login within a
// minute with [LOGIN-DELAY]) and `duplicatesuppression: 0` (a re-delivered message would vanish).
// Cyrus logs only to syslog, and there is no /dev/log here: a failed start shows master's output.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
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

/** The SASL realm of users named without a domain (Cyrus passes its servername to SASL). */
const SERVER_NAME = 'popdrain-cyrus';
const LMTP_TIMEOUT_MS = 10_000;

export interface CyrusOptions {
  /** Appended to imapd.conf; a key given here replaces the harness's own. @default '' */
  extraConfig?: string;
}

export interface Cyrus {
  readonly host: '127.0.0.1';
  readonly ports: { readonly pop3: number; readonly pop3s: number };
  readonly pki: TestPki;
  readonly baseDir: string;
  /** Adds a sasldb user (`name` or `name@domain`; the domain is the SASL realm). */
  addUser(user: string, password: string): Promise<void>;
  /** Delivers each message through LMTP, in order; a refusal throws. */
  deliver(user: string, messages: readonly (Buffer | string)[]): Promise<void>;
  /** What the server serves to `user` now, in order (an independent plain POP3 session). */
  served(user: string): Promise<Buffer[]>;
  /** Stops master and its services, removes baseDir (unless KEEP_CYRUS=1). Idempotent. */
  stop(): Promise<void>;
}

function imapdConf(base: string, pki: TestPki, owner: MailUser, extra: string): string {
  const conf = `configdirectory: ${base}/config
partition-default: ${base}/spool
defaultpartition: default
sievedir: ${base}/sieve
servername: ${SERVER_NAME}
admins: cyrus
cyrus_user: ${owner.name}
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: ${base}/sasldb2
sasl_mech_list: PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256
allowplaintext: yes
allowapop: yes
popminpoll: 0
duplicatesuppression: 0
tls_server_cert: ${pki.serverCertPath}
tls_server_key: ${pki.serverKeyPath}
lmtpsocket: ${base}/socket/lmtp
idlesocket: ${base}/socket/idle
notifysocket: ${base}/socket/notify
proc_path: ${base}/proc
mboxname_lockpath: ${base}/lock
virtdomains: userid
unixhierarchysep: yes
autocreate_post: 1
autocreate_quota: 0
lmtp_downcase_rcpt: 1
`;
  // Cyrus refuses a key given twice (master exits 78, EX_CONFIG): a key in `extra` replaces ours.
  const key = (line: string): string | undefined => /^\s*([A-Za-z0-9_-]+)\s*:/.exec(line)?.[1];
  const replaced = new Set(extra.split('\n').map(key).filter((k) => k !== undefined));
  return `${conf
    .split('\n')
    .filter((line) => !replaced.has(key(line) ?? ''))
    .join('\n')}${extra}\n`;
}

function cyrusConf(base: string, bin: string, ports: { pop3: number; pop3s: number }): string {
  // START commands do not get master's -C: every command names the config itself.
  const c = `-C ${base}/imapd.conf`;
  return `START {
  recover cmd="${bin}/ctl_cyrusdb ${c} -r"
}
SERVICES {
  pop3 cmd="${bin}/pop3d ${c}" listen="${LOOPBACK}:${ports.pop3}" prefork=0
  pop3s cmd="${bin}/pop3d -s ${c}" listen="${LOOPBACK}:${ports.pop3s}" prefork=0
  lmtpunix cmd="${bin}/lmtpd ${c}" listen="${base}/socket/lmtp" prefork=0
}
EVENTS {
}
DAEMON {
}
`;
}

/** CRLF line ends, a final CRLF, dot-stuffing: the DATA form of a message. */
function lmtpData(message: Buffer): Buffer {
  let text = message.toString('latin1').replace(/\r?\n/g, '\r\n');
  if (!text.endsWith('\r\n')) text += '\r\n';
  text = text.replace(/(^|\r\n)\./g, '$1..');
  return Buffer.from(`${text}.\r\n`, 'latin1');
}

/** One LMTP session delivering `messages` to `rcpt` (lock-step: LHLO, then MAIL/RCPT/DATA each). */
async function lmtpDeliver(socketPath: string, rcpt: string, messages: readonly Buffer[]): Promise<void> {
  const sock = netConnect(socketPath);
  let buf = '';
  const replies: string[] = [];
  let wake: (() => void) | undefined;
  let failure: Error | undefined;
  sock.setEncoding('latin1');
  sock.on('data', (chunk: string) => {
    buf += chunk;
    let eol: number;
    while ((eol = buf.indexOf('\r\n')) >= 0) {
      const line = buf.slice(0, eol);
      buf = buf.slice(eol + 2);
      if (line[3] !== '-') replies.push(line);
    }
    wake?.();
  });
  sock.on('error', (err) => {
    failure = err;
    wake?.();
  });
  const deadline = Date.now() + LMTP_TIMEOUT_MS;
  const expect = async (what: string, code: string): Promise<void> => {
    while (replies.length === 0) {
      if (failure) throw failure;
      if (Date.now() > deadline) throw new Error(`LMTP ${what}: no reply within ${LMTP_TIMEOUT_MS} ms`);
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 100);
      });
    }
    const reply = replies.shift()!;
    if (!reply.startsWith(code)) throw new Error(`LMTP ${what} to ${rcpt}: ${reply}`);
  };
  try {
    await expect('greeting', '220');
    sock.write('LHLO popdrain-test\r\n');
    await expect('LHLO', '250');
    for (const [i, m] of messages.entries()) {
      sock.write(`MAIL FROM:<seed@popdrain.test>\r\nRCPT TO:<${rcpt}>\r\nDATA\r\n`);
      await expect('MAIL', '250');
      await expect('RCPT', '250');
      await expect('DATA', '354');
      sock.write(lmtpData(m));
      await expect(`message ${i + 1}`, '250');
    }
    sock.write('QUIT\r\n');
    await expect('QUIT', '221');
  } finally {
    sock.destroy();
  }
}

export async function startCyrus(options: CyrusOptions = {}): Promise<Cyrus> {
  const root = unpackedRoot('usr/lib/cyrus/bin/master');
  const bin = join(root, 'usr/lib/cyrus/bin');
  const env = { ...process.env, LD_LIBRARY_PATH: `${root}/usr/lib/x86_64-linux-gnu` };
  const owner = await mailUser();
  // Short: the lmtp socket path must stay under the 108-byte sun_path limit.
  const base = await mkdtemp('/tmp/pd-cyrus-');
  let master: ChildProcess | undefined;
  let stopped = false;
  const passwords = new Map<string, string>();
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (master) await stopGroup(master);
    if (process.env.KEEP_CYRUS !== '1') await rm(base, { recursive: true, force: true });
  };
  try {
    await makeTraversable(base);
    for (const d of ['config', 'spool', 'sieve', 'socket', 'proc', 'lock']) await mkdir(join(base, d));
    const pki = await makeTestPki(join(base, 'pki'));
    const [pop3, pop3s] = (await freePorts(2)) as [number, number];
    await writeFile(join(base, 'imapd.conf'), imapdConf(base, pki, owner, options.extraConfig ?? ''));
    await writeFile(join(base, 'cyrus.conf'), cyrusConf(base, bin, { pop3, pop3s }));
    for (const d of ['config', 'spool', 'sieve', 'socket', 'proc', 'lock']) await chown(join(base, d), owner.uid, owner.gid);
    await chown(pki.serverKeyPath, owner.uid, owner.gid);
    const logPath = join(base, 'master.log');
    const log = openSync(logPath, 'a');
    try {
      master = spawn(join(bin, 'master'), ['-D', '-C', join(base, 'imapd.conf'), '-M', join(base, 'cyrus.conf'), '-p', join(base, 'master.pid')], {
        cwd: base,
        env,
        detached: true,
        stdio: ['ignore', log, log],
      });
    } finally {
      closeSync(log);
    }
    const started = master;
    started.on('error', () => undefined);
    await waitForGreetings(
      [
        { port: pop3, tls: false },
        { port: pop3s, tls: true },
      ],
      pki.caCertPem,
      () => exitOf(started),
      async () => `master output:\n${await readFile(logPath, 'utf8').catch(() => '')}`,
    );
    const sasldb = join(base, 'sasldb2');
    return {
      host: LOOPBACK,
      ports: { pop3, pop3s },
      pki,
      baseDir: base,
      async addUser(user, password) {
        const at = user.lastIndexOf('@');
        const args = at < 0 ? ['-u', SERVER_NAME, user] : [user];
        await run(join(root, 'usr/sbin/saslpasswd2'), ['-p', '-c', '-f', sasldb, ...args], { env, input: password });
        await chown(sasldb, owner.uid, owner.gid);
        passwords.set(user, password);
      },
      async deliver(user, messages) {
        await lmtpDeliver(join(base, 'socket/lmtp'), user, messages.map((m) => Buffer.from(m)));
      },
      async served(user) {
        const password = passwords.get(user);
        if (password === undefined) throw new Error(`served: no user ${user}`);
        return servedMessages(pop3, user, password);
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
