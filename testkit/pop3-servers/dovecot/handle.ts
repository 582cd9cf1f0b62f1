// The handle of a running Dovecot: users, OAuth2 tokens, maildir delivery and listing, stop.
import { chown, mkdir, readdir, rename, rm, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestPki } from '../../pki.js';
import type { Dovecot, MailUser } from './api.js';
import { closeHttp, type Introspection } from './introspection.js';
import { stopMaster } from './processes.js';
import { ALT_HOST, HOST, LOG_TAIL_LINES, readOr, sleep, tail } from './shared.js';

/** Wait past the next second boundary so Dovecot re-reads a changed passwd-file. */
const PASSWD_RESYNC_MARGIN_MS = 20;
/** Files written at once by deliverMany. */
const DELIVER_CONCURRENCY = 64;

// Dovecot's default auth_username_chars, minus a leading dot (user names become file names).
const USER_NAME_RE = /^[A-Za-z0-9_@-][A-Za-z0-9._@-]{0,99}$/;

function checkUserName(user: string): void {
  if (!USER_NAME_RE.test(user)) {
    throw new Error(`invalid test user name ${JSON.stringify(user)} (allowed: ${USER_NAME_RE})`);
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

export interface HandleInput {
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

export function makeHandle(h: HandleInput): Dovecot {
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
