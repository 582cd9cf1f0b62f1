// A real, self-contained Dovecot POP3 server for integration tests and benchmarks.
//
// Everything lives in one temp dir (config, sockets, logs, PKI, passwd-file, maildirs); the
// server listens on loopback only. Works as root (mail owned by a system user created on
// demand) and unprivileged (everything runs as the current user). See
// docs/testing.md, "Dovecot", for the facts this relies on.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import {
  chmod,
  chown,
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  unlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, connect as netConnect, type Socket } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import { makeTestPki, type TestPki } from '../pki.js';

const execFileAsync = promisify(execFile);

const HOST = '127.0.0.1';
const ALT_HOST = '127.0.0.2';
/** System user that owns the maildirs when we run as root (Dovecot refuses uid 0 for mail). */
const MAIL_USER_NAME = 'popdrain-mail';
/** Passed to `useradd`; not a login shell. */
const NOLOGIN_SHELL = '/usr/sbin/nologin';

const DEFAULT_START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;
const READY_POLL_INTERVAL_MS = 20;
const PROBE_TIMEOUT_MS = 2_000;
const EXEC_TIMEOUT_MS = 10_000;
const OAUTH2_TIMEOUT_MS = 5_000;
const MAX_USERIP_CONNECTIONS = 1_000;
const START_ATTEMPTS = 3;
const LOG_TAIL_LINES = 40;
/** Longer temp dirs would push Dovecot's socket paths near the 108-byte sun_path limit. */
const MAX_TMPDIR_LENGTH = 48;
/** Wait past the next second boundary so Dovecot re-reads a changed passwd-file. */
const PASSWD_RESYNC_MARGIN_MS = 20;
/** Files written at once by deliverMany. */
const DELIVER_CONCURRENCY = 64;

const INSTALL_HINT = 'install it with `apt-get install -y dovecot-core dovecot-pop3d`';

export interface DovecotOptions {
  /** Sets `auth_debug` and `mail_debug`, so the log tells why a login failed. @default false */
  debug?: boolean;
  /** Appended verbatim to the generated dovecot.conf (later settings win). @default '' */
  extraConfig?: string;
  /** How long to wait for the listeners to greet. @default 10_000 */
  startTimeoutMs?: number;
}

export interface DeliverOptions {
  /**
   * Maildir flags (e.g. `'S'` for seen). When given, even as `''`, the message is put in
   * `cur/` with an `:2,<flags>` suffix; otherwise in `new/`.
   */
  flags?: string;
}

export interface MailUser {
  name: string;
  uid: number;
  gid: number;
}

export interface Dovecot {
  readonly host: '127.0.0.1';
  /** Dovecot does not consider 127.0.0.1 → 127.0.0.2 secure: no plaintext auth before STLS. */
  readonly altHost: '127.0.0.2';
  readonly ports: {
    /** Plain, STLS available; on `host`. */
    readonly pop3: number;
    /** Implicit TLS; on `host`. */
    readonly pop3s: number;
    /** Plain, STLS available; on `altHost`. */
    readonly pop3Alt: number;
  };
  readonly pki: TestPki;
  readonly baseDir: string;
  readonly configPath: string;
  readonly logPath: string;
  /** The owner of the maildirs and the uid/gid of every mail session. */
  readonly mailUser: MailUser;
  /**
   * Adds a user with a `{PLAIN}` password; Dovecot sees a new user at once. Replacing the
   * password of an existing user resolves after the next second boundary (Dovecot re-checks
   * a passwd-file at most once a second).
   */
  addUser(user: string, password: string): Promise<void>;
  /**
   * Stores `message` byte for byte (LF or CRLF as given) in the user's maildir, via tmp/ and a
   * rename; returns the file's path.
   */
  deliver(user: string, message: Buffer | string, opts?: DeliverOptions): Promise<string>;
  /** Like deliver for many messages; Dovecot numbers them in array order. Returns their paths. */
  deliverMany(
    user: string,
    messages: readonly (Buffer | string)[],
    opts?: DeliverOptions,
  ): Promise<string[]>;
  /**
   * Removes every message file of the user (new/, cur/, tmp/). Dovecot's uidlist and indexes
   * stay, so UIDVALIDITY is kept and later messages get higher UIDs, as on a real server.
   */
  clearMailbox(user: string): Promise<void>;
  /** Paths of the message files now in new/ and cur/, in Dovecot's UID order for new mail. */
  listMaildir(user: string): Promise<string[]>;
  /** `<baseDir>/home/<user>/Maildir`. */
  maildirPath(user: string): string;
  /** Makes the introspection endpoint accept `token` for `user` (XOAUTH2 / OAUTHBEARER). */
  addOAuthToken(user: string, token: string): void;
  /** Makes the introspection endpoint answer `active: false` for `token` again. */
  revokeOAuthToken(token: string): void;
  /** The last `lines` lines of Dovecot's log. @default 40 */
  logTail(lines?: number): Promise<string>;
  /**
   * SIGTERM to the master, waits until every Dovecot process has exited (about 1 s: the master
   * waits for its log process), then removes baseDir unless KEEP_DOVECOT=1. Idempotent.
   */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Small helpers

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// Dovecot's default auth_username_chars, minus a leading dot (user names become file names).
const USER_NAME_RE = /^[A-Za-z0-9_@-][A-Za-z0-9._@-]{0,99}$/;

function checkUserName(user: string): void {
  if (!USER_NAME_RE.test(user)) {
    throw new Error(`invalid test user name ${JSON.stringify(user)} (allowed: ${USER_NAME_RE})`);
  }
}

function findExecutable(name: string): string | undefined {
  // /usr/sbin is often missing from an unprivileged PATH; dovecot lives there on Debian.
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/bin', '/sbin'];
  for (const dir of dirs) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

async function idOf(user: string): Promise<{ uid: number; gid: number } | undefined> {
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

async function ensureSystemUser(name: string): Promise<MailUser> {
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

/** Adds o+x to every ancestor of `dir` that lacks it, so the mail and auth users can reach it. */
async function makeTraversable(dir: string): Promise<void> {
  await chmod(dir, 0o755);
  for (let d = dirname(dir); ; d = dirname(d)) {
    const st = await stat(d);
    if ((st.mode & 0o001) === 0) await chmod(d, (st.mode & 0o7777) | 0o001);
    if (dirname(d) === d) break;
  }
}

/** Ports that were free a moment ago (all held open together, so they are distinct). */
async function pickFreePorts(hosts: readonly string[]): Promise<number[]> {
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

interface ProcInfo {
  pid: number;
  ppid: number;
  /** Start time in clock ticks since boot: tells a process from a later one with the same PID. */
  startTicks: string;
}

/** Process info from /proc, or undefined when the process is gone or a zombie. */
function procInfo(pid: number): ProcInfo | undefined {
  let st: string;
  try {
    st = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // After "pid (comm) ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
  // utime stime cutime cstime priority nice num_threads itrealvalue starttime ...
  const fields = st.slice(st.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return undefined; // our PID 1 may reap slowly
  return { pid, ppid: Number(fields[1]), startTicks: fields[19] ?? '' };
}

/** Live child processes of `ppid` (Dovecot's services are all direct children of its master). */
function childrenOf(ppid: number): ProcInfo[] {
  const found: ProcInfo[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const info = procInfo(Number(e));
    if (info?.ppid === ppid) found.push(info);
  }
  return found;
}

function tail(text: string, lines: number): string {
  const all = text.split('\n');
  if (all.at(-1) === '') all.pop();
  return all.slice(-lines).join('\n');
}

async function readOr(path: string, fallback: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return fallback;
  }
}

/** Reads the first line (the greeting) from a socket. */
function readGreeting(sock: Socket, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`${what}: no greeting within ${PROBE_TIMEOUT_MS} ms`));
    }, PROBE_TIMEOUT_MS);
    sock.setEncoding('latin1');
    sock.on('data', (chunk: string) => {
      buf += chunk;
      const eol = buf.indexOf('\r\n');
      if (eol >= 0) {
        clearTimeout(timer);
        sock.destroy();
        resolve(buf.slice(0, eol));
      }
    });
    sock.once('error', (err) => {
      clearTimeout(timer);
      sock.destroy();
      reject(err);
    });
    sock.once('close', () => {
      clearTimeout(timer);
      reject(new Error(`${what}: closed before greeting`));
    });
  });
}

async function probeGreeting(
  host: string,
  port: number,
  tls: { ca: string } | undefined,
): Promise<void> {
  const what = `${tls ? 'pop3s' : 'pop3'} ${host}:${port}`;
  const sock = tls
    ? tlsConnect({ host, port, ca: tls.ca, servername: 'localhost' })
    : netConnect({ host, port });
  const line = await readGreeting(sock, what);
  if (!line.startsWith('+OK')) {
    throw new Error(`${what}: unexpected greeting ${JSON.stringify(line)}`);
  }
}

// Maildir names: <secs>.M<usecs>P<pid>Q<seq>.popdrain. Dovecot 2.3 numbers new files by the
// seconds, then the M<usecs> part, then the name; we hand out strictly increasing (secs, usecs)
// pairs so that UIDs follow delivery order even for thousands of messages in one call.
const MAILDIR_NAME_RE = /^(\d+)\.M(\d+)/;

function maildirOrder(a: string, b: string): number {
  const ma = MAILDIR_NAME_RE.exec(a);
  const mb = MAILDIR_NAME_RE.exec(b);
  if (ma && mb) {
    const d = Number(ma[1]) - Number(mb[1]) || Number(ma[2]) - Number(mb[2]);
    if (d !== 0) return d;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

// Masters still running, so a test process that exits without stop() leaves no Dovecot behind.
const runningMasters = new Map<ChildProcess, { baseDir: string; keep: boolean }>();
let exitHookInstalled = false;
function trackMaster(child: ChildProcess, baseDir: string, keep: boolean): void {
  runningMasters.set(child, { baseDir, keep });
  child.once('exit', () => runningMasters.delete(child));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const [c, { baseDir: dir, keep: k }] of runningMasters) {
      c.kill('SIGTERM');
      if (!k) rmSync(dir, { recursive: true, force: true });
    }
  });
}

// ---------------------------------------------------------------------------------------------
// OAuth2 token introspection endpoint (RFC 7662 shape) for Dovecot's oauth2 passdb.

interface Introspection {
  server: HttpServer;
  url: string;
  tokens: Map<string, string>;
}

async function startIntrospection(): Promise<Introspection> {
  const tokens = new Map<string, string>();
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      // introspection_mode post sends a form body; 'auth' would send a Bearer header.
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1];
      const token = form.get('token') ?? bearer ?? '';
      const user = tokens.get(token);
      const body =
        user === undefined ? { active: false } : { active: true, username: user, scope: 'mail' };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => resolve());
  });
  const addr = server.address();
  if (addr === null || typeof addr === 'string') {
    throw new Error('introspection server has no port');
  }
  // Dovecot keeps HTTP connections alive; don't let them hold close() up. Neither the server
  // nor its connections keep the test process alive (a forgotten stop() must not hang it).
  server.keepAliveTimeout = 1_000;
  server.unref();
  server.on('connection', (sock: Socket) => sock.unref());
  return { server, url: `http://${HOST}:${addr.port}/introspect`, tokens };
}

// ---------------------------------------------------------------------------------------------
// Configuration

interface ConfigInput {
  baseDir: string;
  runDir: string;
  logPath: string;
  passwdDir: string;
  oauth2ConfPath: string;
  homeRoot: string;
  pki: TestPki;
  ports: { pop3: number; pop3s: number; pop3Alt: number };
  mailUser: MailUser;
  /** Set when not root: every service runs as this user and group, no chroot. */
  unprivileged: { user: string; group: string } | undefined;
  debug: boolean;
  extraConfig: string;
}

function renderConfig(c: ConfigInput): string {
  const unpriv = c.unprivileged;
  const noChroot = unpriv === undefined ? '' : '  chroot =\n';
  return `# Generated by testkit/pop3-servers/dovecot.ts — a throw-away test server.
instance_name = ${c.baseDir.split('/').pop() ?? 'popdrain-dovecot'}
base_dir = ${c.runDir}
state_dir = ${join(c.baseDir, 'state')}
log_path = ${c.logPath}
protocols = pop3
listen = ${HOST}
${
  unpriv === undefined
    ? ''
    : `default_internal_user = ${unpriv.user}\n` +
      `default_internal_group = ${unpriv.group}\n` +
      `default_login_user = ${unpriv.user}\n`
}
ssl = yes
ssl_cert = <${c.pki.serverCertPath}
ssl_key = <${c.pki.serverKeyPath}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes

auth_mechanisms = plain login cram-md5 scram-sha-1 scram-sha-256 apop xoauth2 oauthbearer
# Keep user names as given (the default %Lu would lower-case them and their home dirs).
auth_username_format = %u
auth_failure_delay = 0
auth_verbose = yes
auth_debug = ${c.debug ? 'yes' : 'no'}
mail_debug = ${c.debug ? 'yes' : 'no'}

first_valid_uid = ${c.mailUser.uid}
last_valid_uid = 0
first_valid_gid = ${c.mailUser.gid > 0 ? 1 : 0}
mail_location = maildir:~/Maildir
mail_fsync = never
mail_max_userip_connections = ${MAX_USERIP_CONNECTIONS}
pop3_uidl_format = %08Xu%08Xv

# 1) Adds nodelay=yes to every login, failed or not, and decides nothing (with
#    auth_failure_delay = 0 alone a failure still takes ~0.5 s).
passdb {
  driver = static
  args = nopassword=y nodelay=yes noauthenticate
  result_success = continue
  result_failure = continue
  result_internalfail = continue
}
# 2) Password users (every password mechanism works with {PLAIN}). One file per user: Dovecot
#    stats a passwd-file at most once a second, but forgets a missing one, so a user added
#    after start-up can log in at once.
passdb {
  driver = passwd-file
  args = scheme=PLAIN ${c.passwdDir}/%u
}
# 3) OAuth2 bearer tokens (XOAUTH2, OAUTHBEARER). Dovecot 2.3.19 has no per-passdb
#    'mechanisms' filter, so order does it: a token first fails as a password in 2), then is
#    introspected here. A wrong password also ends here (one local HTTP request, answered
#    active:false, so the client still gets -ERR [AUTH]).
passdb {
  driver = oauth2
  args = ${c.oauth2ConfPath}
}
userdb {
  driver = static
  args = uid=${c.mailUser.uid} gid=${c.mailUser.gid} home=${c.homeRoot}/%u
}

service pop3-login {
  inet_listener pop3 {
    address = ${HOST}
    port = ${c.ports.pop3}
  }
  inet_listener pop3s {
    address = ${HOST}
    port = ${c.ports.pop3s}
    ssl = yes
  }
  inet_listener pop3alt {
    address = ${ALT_HOST}
    port = ${c.ports.pop3Alt}
  }
${noChroot}}
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    port = 0
  }
${noChroot}}
service anvil {
  # The auth penalty adds seconds to every login from an IP that failed once (even correct
  # ones); make it unusable. Both this and nodelay=yes are needed for fast failures.
  unix_listener anvil-auth-penalty {
    mode = 0
  }
${noChroot}}
${unpriv === undefined ? '' : `service auth-worker {\n  user = ${unpriv.user}\n}\n`}
${c.extraConfig}
`;
}

function renderOAuth2Config(introspectionUrl: string): string {
  return `# Generated by testkit/pop3-servers/dovecot.ts
introspection_mode = post
introspection_url = ${introspectionUrl}
force_introspection = yes
username_attribute = username
username_format = %u
active_attribute = active
active_value = true
timeout_msecs = ${OAUTH2_TIMEOUT_MS}
`;
}

// ---------------------------------------------------------------------------------------------

export async function startDovecot(opts: DovecotOptions = {}): Promise<Dovecot> {
  const dovecotBin = findExecutable('dovecot');
  if (dovecotBin === undefined) {
    throw new Error(`Dovecot is not installed (no \`dovecot\` binary found); ${INSTALL_HINT}`);
  }
  const doveconfBin = findExecutable('doveconf') ?? 'doveconf';
  const startTimeoutMs = opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;

  const isRoot = process.getuid?.() === 0;
  const me = userInfo();
  const mailUser: MailUser = isRoot
    ? await ensureSystemUser(MAIL_USER_NAME)
    : { name: me.username, uid: me.uid, gid: me.gid };
  // As root, Dovecot's auth process reads the passwd-files as default_internal_user (dovecot).
  const authOwner = isRoot ? await idOf('dovecot') : undefined;
  const unprivileged = isRoot
    ? undefined
    : { user: me.username, group: (await execFileAsync('id', ['-gn'])).stdout.trim() };
  if (isRoot && authOwner === undefined) {
    throw new Error(`the \`dovecot\` system user is missing; reinstall: ${INSTALL_HINT}`);
  }

  // Dovecot's unix sockets live under base_dir; keep their paths well under 108 bytes.
  const tmpRoot = tmpdir().length <= MAX_TMPDIR_LENGTH ? tmpdir() : '/tmp';
  const baseDir = await mkdtemp(join(tmpRoot, 'popdrain-dovecot-'));
  const runDir = join(baseDir, 'run');
  const homeRoot = join(baseDir, 'home');
  const logPath = join(baseDir, 'dovecot.log');
  const passwdDir = join(baseDir, 'passwd.d');
  const oauth2ConfPath = join(baseDir, 'dovecot-oauth2.conf.ext');
  const configPath = join(baseDir, 'dovecot.conf');
  const startOutPath = join(baseDir, 'dovecot-start.out');
  const keep = process.env.KEEP_DOVECOT === '1';

  let introspection: Introspection | undefined;
  let masterPid: number | undefined;

  const cleanupAfterFailure = async (): Promise<void> => {
    if (masterPid !== undefined) await stopMaster(masterPid);
    if (introspection) await closeHttp(introspection.server);
    if (!keep) await rm(baseDir, { recursive: true, force: true });
  };

  try {
    if (isRoot) await makeTraversable(baseDir);
    for (const dir of [runDir, join(baseDir, 'state'), homeRoot]) await mkdir(dir, { mode: 0o755 });
    if (isRoot) await chown(homeRoot, mailUser.uid, mailUser.gid);

    const [pki, intro] = await Promise.all([
      makeTestPki(join(baseDir, 'pki')),
      startIntrospection(),
    ]);
    introspection = intro;

    await mkdir(passwdDir, { mode: 0o700 });
    if (authOwner) await chown(passwdDir, authOwner.uid, authOwner.gid);
    await writeFile(oauth2ConfPath, renderOAuth2Config(intro.url), { mode: 0o644 });

    let ports = { pop3: 0, pop3s: 0, pop3Alt: 0 };
    for (let attempt = 1; ; attempt++) {
      const [pop3, pop3s, pop3Alt] = await pickFreePorts([HOST, HOST, ALT_HOST]);
      ports = { pop3: pop3!, pop3s: pop3s!, pop3Alt: pop3Alt! };
      await writeFile(
        configPath,
        renderConfig({
          baseDir,
          runDir,
          logPath,
          passwdDir,
          oauth2ConfPath,
          homeRoot,
          pki,
          ports,
          mailUser,
          unprivileged,
          debug: opts.debug ?? false,
          extraConfig: opts.extraConfig ?? '',
        }),
        { mode: 0o644 },
      );
      const outcome = await launch({
        baseDir,
        keep,
        dovecotBin,
        doveconfBin,
        configPath,
        runDir,
        logPath,
        startOutPath,
        ports,
        caPem: pki.caCertPem,
        deadline: Date.now() + startTimeoutMs,
        onPid: (pid) => {
          masterPid = pid;
        },
      });
      if (outcome.ok) break;
      if (masterPid !== undefined) {
        await stopMaster(masterPid);
        masterPid = undefined;
      }
      // Another process took one of the ports between our probe and Dovecot's bind: retry.
      if (outcome.addressInUse && attempt < START_ATTEMPTS) continue;
      throw new Error(outcome.message);
    }

    return makeHandle({
      baseDir,
      configPath,
      logPath,
      passwdDir,
      homeRoot,
      pki,
      ports,
      mailUser,
      isRoot,
      authOwner,
      introspection: intro,
      masterPid: masterPid!,
      keep,
    });
  } catch (err) {
    await cleanupAfterFailure().catch(() => undefined);
    throw err;
  }
}

interface LaunchInput {
  baseDir: string;
  keep: boolean;
  dovecotBin: string;
  doveconfBin: string;
  configPath: string;
  runDir: string;
  logPath: string;
  startOutPath: string;
  ports: { pop3: number; pop3s: number; pop3Alt: number };
  caPem: string;
  deadline: number;
  onPid: (pid: number) => void;
}

type LaunchOutcome = { ok: true } | { ok: false; addressInUse: boolean; message: string };

async function launch(i: LaunchInput): Promise<LaunchOutcome> {
  const fail = async (reason: string): Promise<LaunchOutcome> => {
    const [log, startOut, doveconf] = await Promise.all([
      readOr(i.logPath, '(no log file)'),
      readOr(i.startOutPath, ''),
      execFileAsync(i.doveconfBin, ['-n', '-c', i.configPath], { timeout: EXEC_TIMEOUT_MS }).then(
        (r) => (r.stderr.trim() === '' ? '(config parses; no errors)' : r.stderr.trim()),
        (e: { stderr?: string; message: string }) => e.stderr?.trim() || e.message,
      ),
    ]);
    const addressInUse = /Address already in use/i.test(log + startOut);
    const message =
      `Dovecot failed to start: ${reason}\n` +
      `config: ${i.configPath}\n` +
      `--- dovecot output ---\n${startOut.trim() || '(none)'}\n` +
      `--- log tail (${i.logPath}) ---\n${tail(log, LOG_TAIL_LINES)}\n` +
      `--- doveconf -n -c ${i.configPath} ---\n${doveconf}`;
    return { ok: false, addressInUse, message };
  };

  // Foreground master (-F) as our own child rather than a daemon: we see it exit at once, we
  // reap it (the PID 1 of some containers is slow to reap a daemonized master), and it shares
  // our process group, so Ctrl-C stops it too. Output goes to a file, not a pipe.
  const out = await open(i.startOutPath, 'w');
  const child = spawn(i.dovecotBin, ['-F', '-c', i.configPath], {
    stdio: ['ignore', out.fd, out.fd],
  });
  const spawned = once(child, 'spawn').then(
    () => undefined,
    () => undefined, // the 'error' event is handled below
  );
  const exited = new Promise<string>((resolve) => {
    child.once('error', (err: NodeJS.ErrnoException) =>
      resolve(err.code === 'ENOENT' ? 'ENOENT' : `spawn failed: ${err.message}`),
    );
    child.once('exit', (code, signal) =>
      resolve(`the master exited ${signal === null ? `with code ${code}` : `on ${signal}`}`),
    );
  });
  let exitReason: string | undefined;
  void exited.then((r) => {
    exitReason = r;
  });
  // Don't let a forgotten stop() keep the test process alive; the exit hook still kills it.
  child.unref();
  await Promise.race([spawned, exited]);
  await out.close(); // the child has its own copy of the descriptor
  if (exitReason === 'ENOENT') {
    throw new Error(`Dovecot is not installed (${i.dovecotBin} not found); ${INSTALL_HINT}`);
  }
  if (exitReason !== undefined || child.pid === undefined) return fail(exitReason ?? 'no PID');
  const pid = child.pid;
  i.onPid(pid);
  trackMaster(child, i.baseDir, i.keep);

  const probes: [string, number, { ca: string } | undefined][] = [
    [HOST, i.ports.pop3, undefined],
    [HOST, i.ports.pop3s, { ca: i.caPem }],
    [ALT_HOST, i.ports.pop3Alt, undefined],
  ];
  for (const [host, port, tls] of probes) {
    for (;;) {
      if (exitReason !== undefined) return fail(exitReason);
      try {
        await probeGreeting(host, port, tls);
        break;
      } catch (err) {
        if (Date.now() > i.deadline) {
          return fail(`${host}:${port} did not greet in time: ${(err as Error).message}`);
        }
        await sleep(READY_POLL_INTERVAL_MS);
      }
    }
  }
  return { ok: true };
}

function signal(pids: readonly number[], sig: NodeJS.Signals): void {
  for (const p of pids) {
    try {
      process.kill(p, sig);
    } catch {
      // raced with exit
    }
  }
}

/** SIGTERM to the master; waits for it and its children, SIGKILLs whatever lingers. */
async function stopMaster(pid: number): Promise<void> {
  // Every process is remembered with its start time, so a recycled PID is never signalled.
  const family = new Map<number, string>();
  const remember = (p: ProcInfo | undefined): void => {
    if (p) family.set(p.pid, p.startTicks);
  };
  const masterAlive = (): boolean =>
    family.has(pid) && procInfo(pid)?.startTicks === family.get(pid);
  remember(procInfo(pid));
  // The master stops its services, but we wait for each of them: once the master is gone, a
  // straggler is reparented and no longer findable as its child.
  const alive = (): number[] => {
    if (masterAlive()) childrenOf(pid).forEach(remember);
    return [...family].filter(([p, start]) => procInfo(p)?.startTicks === start).map(([p]) => p);
  };
  alive();
  signal([pid], 'SIGTERM');
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  let orphansTold = false;
  for (let left = alive(); left.length > 0 && Date.now() < deadline; left = alive()) {
    if (!orphansTold && !masterAlive()) {
      // A pop3 process with a connected client outlives the master (seen with 2.3.19); on
      // SIGTERM it ends the session ("Server shutting down").
      signal(left, 'SIGTERM');
      orphansTold = true;
    }
    await sleep(READY_POLL_INTERVAL_MS);
  }
  signal(alive(), 'SIGKILL');
}

function closeHttp(server: HttpServer): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

interface HandleInput {
  baseDir: string;
  configPath: string;
  logPath: string;
  passwdDir: string;
  homeRoot: string;
  pki: TestPki;
  ports: { pop3: number; pop3s: number; pop3Alt: number };
  mailUser: MailUser;
  isRoot: boolean;
  authOwner: { uid: number; gid: number } | undefined;
  introspection: Introspection;
  masterPid: number;
  keep: boolean;
}

function makeHandle(h: HandleInput): Dovecot {
  /** mtime (s) last given to each user's passwd-file. */
  const passwdStamps = new Map<string, number>();
  /** Last (secs, usecs) stamp handed out, as microseconds since the epoch. */
  let lastStampUs = 0;
  let seq = 0;
  let stopped: Promise<void> | undefined;

  const maildirPath = (user: string): string => {
    checkUserName(user);
    return join(h.homeRoot, user, 'Maildir');
  };

  const own = async (path: string): Promise<void> => {
    if (h.isRoot) await chown(path, h.mailUser.uid, h.mailUser.gid);
  };

  const ensureMaildir = async (user: string): Promise<string> => {
    const home = join(h.homeRoot, user);
    const md = maildirPath(user);
    for (const d of [home, md, join(md, 'cur'), join(md, 'new'), join(md, 'tmp')]) {
      try {
        await mkdir(d, { mode: 0o700 });
        await own(d);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    return md;
  };

  const nextName = (): string => {
    lastStampUs = Math.max(Date.now() * 1000, lastStampUs + 1);
    const secs = Math.floor(lastStampUs / 1_000_000);
    const usecs = lastStampUs % 1_000_000;
    seq += 1;
    return `${secs}.M${usecs}P${process.pid}Q${seq}.popdrain`;
  };

  const flagSuffix = (flags: string): string => {
    if (!/^[A-Za-z]*$/.test(flags)) {
      throw new Error(`invalid maildir flags ${JSON.stringify(flags)}`);
    }
    return `:2,${[...new Set(flags)].sort().join('')}`;
  };

  const store = async (
    md: string,
    name: string,
    message: Buffer | string,
    flags: string | undefined,
  ): Promise<string> => {
    const tmpPath = join(md, 'tmp', name);
    const finalPath =
      flags === undefined ? join(md, 'new', name) : join(md, 'cur', name + flagSuffix(flags));
    // Written in tmp/ and renamed, as a maildir delivery should: Dovecot never sees half a file.
    await writeFile(tmpPath, typeof message === 'string' ? Buffer.from(message, 'utf8') : message, {
      mode: 0o600,
    });
    await own(tmpPath);
    await rename(tmpPath, finalPath);
    return finalPath;
  };

  const messageFiles = async (user: string, subdirs: readonly string[]): Promise<string[]> => {
    const md = maildirPath(user);
    const found: { dir: string; name: string }[] = [];
    for (const sub of subdirs) {
      let names: string[];
      try {
        names = await readdir(join(md, sub));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      for (const name of names) if (!name.startsWith('.')) found.push({ dir: join(md, sub), name });
    }
    found.sort((a, b) => maildirOrder(a.name, b.name));
    return found.map((f) => join(f.dir, f.name));
  };

  const handle: Dovecot = {
    host: HOST,
    altHost: ALT_HOST,
    ports: h.ports,
    pki: h.pki,
    baseDir: h.baseDir,
    configPath: h.configPath,
    logPath: h.logPath,
    mailUser: h.mailUser,
    maildirPath,

    async addUser(user, password) {
      checkUserName(user);
      if (/[:\r\n]/.test(password) || password === '') {
        throw new Error('test passwords must be non-empty and contain no ":" or line breaks');
      }
      const path = join(h.passwdDir, user);
      const tmp = join(h.passwdDir, `.${user}.tmp`); // user names never start with '.'
      const previous = passwdStamps.get(user);
      // Written atomically (Dovecot never reads half a line), with an mtime Dovecot has not
      // seen before (it reloads on a changed mtime or size).
      const stamp = Math.max(Math.floor(Date.now() / 1000), (previous ?? 0) + 1);
      passwdStamps.set(user, stamp);
      await writeFile(tmp, `${user}:{PLAIN}${password}::::::\n`, { mode: 0o600 });
      if (h.authOwner) await chown(tmp, h.authOwner.uid, h.authOwner.gid);
      await utimes(tmp, stamp, stamp);
      await rename(tmp, path);
      if (previous !== undefined) {
        // A changed password: Dovecot may have stat()ed this file earlier in this second and
        // will not look again before the next one.
        await sleep(1_000 - (Date.now() % 1_000) + PASSWD_RESYNC_MARGIN_MS);
      }
    },

    async deliver(user, message, opts) {
      const md = await ensureMaildir(user);
      return store(md, nextName(), message, opts?.flags);
    },

    async deliverMany(user, messages, opts) {
      const md = await ensureMaildir(user);
      const names = messages.map(() => nextName());
      const paths: string[] = new Array<string>(messages.length);
      for (let start = 0; start < messages.length; start += DELIVER_CONCURRENCY) {
        const batch = messages.slice(start, start + DELIVER_CONCURRENCY);
        await Promise.all(
          batch.map(async (m, k) => {
            const idx = start + k;
            paths[idx] = await store(md, names[idx]!, m, opts?.flags);
          }),
        );
      }
      return paths;
    },

    async clearMailbox(user) {
      const files = await messageFiles(user, ['new', 'cur', 'tmp']);
      await Promise.all(
        files.map((f) =>
          unlink(f).catch((err: NodeJS.ErrnoException) => {
            if (err.code !== 'ENOENT') throw err;
          }),
        ),
      );
    },

    listMaildir(user) {
      return messageFiles(user, ['new', 'cur']);
    },

    addOAuthToken(user, token) {
      h.introspection.tokens.set(token, user);
    },

    revokeOAuthToken(token) {
      h.introspection.tokens.delete(token);
    },

    async logTail(lines = LOG_TAIL_LINES) {
      return tail(await readOr(h.logPath, ''), lines);
    },

    stop() {
      stopped ??= (async () => {
        await stopMaster(h.masterPid);
        await closeHttp(h.introspection.server);
        if (!h.keep) await rm(h.baseDir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
  return handle;
}
