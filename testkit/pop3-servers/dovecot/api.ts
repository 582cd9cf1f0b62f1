// The public surface of the Dovecot test server: its options and the handle startDovecot returns.
import type { TestPki } from '../../pki.js';

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
