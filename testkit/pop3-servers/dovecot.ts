// A real, self-contained Dovecot POP3 server for integration tests and benchmarks.
//
// Everything lives in one temp dir (config, sockets, logs, PKI, passwd-file, maildirs); the
// server listens on loopback only. Works as root (mail owned by a system user created on
// demand) and unprivileged (everything runs as the current user). See
// docs/testing.md, "Dovecot", for the facts this relies on.
import { chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { makeTestPki } from '../pki.js';
import type { Dovecot, DovecotOptions, MailUser } from './dovecot/api.js';
import { renderConfig, renderOAuth2Config } from './dovecot/config.js';
import { makeHandle } from './dovecot/handle.js';
import {
  ensureSystemUser,
  findExecutable,
  idOf,
  MAIL_USER_NAME,
  pickFreePorts,
} from './dovecot/host-setup.js';
import { closeHttp, startIntrospection, type Introspection } from './dovecot/introspection.js';
import { launch } from './dovecot/launch.js';
import { stopMaster } from './dovecot/processes.js';
// The same o+x walk the Courier and Cyrus servers need.
import { makeTraversable } from './unpacked-server.js';
import { ALT_HOST, execFileAsync, HOST, INSTALL_HINT } from './dovecot/shared.js';

export type { DeliverOptions, Dovecot, DovecotOptions, MailUser } from './dovecot/api.js';

const DEFAULT_START_TIMEOUT_MS = 10_000;
const START_ATTEMPTS = 3;
/** Longer temp dirs would push Dovecot's socket paths near the 108-byte sun_path limit. */
const MAX_TMPDIR_LENGTH = 48;

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
