/** How a test configures the server: users, maildrops, features, greeting, hooks; and their defaults. */
import type { Pop3ServerHooks } from './hooks.js';
import type { MailboxMessage } from './mailbox.js';

export const DEFAULT_HOST = '127.0.0.1';
const DEFAULT_SASL_MECHANISMS: readonly string[] = ['PLAIN', 'LOGIN'];

export interface Pop3UserAccount {
  password: string;
  /** Bearer tokens accepted by XOAUTH2 and OAUTHBEARER for this user. */
  oauthTokens?: string[];
}

export interface Pop3ServerFeatures {
  /** UIDL command and capability. @default true */
  uidl?: boolean;
  /** TOP command and capability. @default true */
  top?: boolean;
  /** Advertise PIPELINING (pipelined commands are always answered correctly). @default true */
  pipelining?: boolean;
  /** STLS command and capability. @default true when `tls` is set and `implicitTls` is not */
  stls?: boolean;
  /** APOP command; the default greeting then carries a timestamp. @default false */
  apop?: boolean;
  /** SASL mechanisms offered by AUTH and listed in CAPA. @default ['PLAIN', 'LOGIN'] */
  sasl?: string[];
  /** USER/PASS allowed and USER listed in CAPA. @default true */
  user?: boolean;
}

export interface Pop3ServerOptions {
  /** Must be a loopback address. @default '127.0.0.1' */
  host?: string;
  /** @default 0 (a free port) */
  port?: number;
  /** Certificate and key: implicit TLS when `implicitTls`, STLS otherwise. */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /** TLS from the first byte (port 995 style); needs `tls`. @default false */
  implicitTls?: boolean;
  /** @default {} (every login fails) */
  users?: Record<string, Pop3UserAccount>;
  /**
   * Maildrops by user name. The object is shared, not copied: QUIT removes deleted messages
   * from these arrays, so tests inspect them afterwards. A user without an entry gets an empty
   * array at login.
   * @default {}
   */
  mailboxes?: Record<string, MailboxMessage[]>;
  /**
   * Replaces the CAPA lines; `null` makes CAPA answer -ERR (a server that predates RFC 2449).
   * @default derived from `features` and the session state
   */
  capabilities?: readonly string[] | null;
  features?: Pop3ServerFeatures;
  /**
   * The whole greeting line, sent as given. An APOP timestamp in it (`<...>`) is used by APOP.
   * @default '+OK popdrain test server ready', plus a fresh timestamp when `features.apop`
   */
  greeting?: string;
  /** Scripted behaviour; several hook sets are consulted in order, the first that answers wins. */
  hooks?: Pop3ServerHooks | readonly Pop3ServerHooks[];
  /** Protocol log, one line per call, credentials redacted. @default silent */
  log?: (line: string) => void;
}

/** The features in force, defaults filled in; throws on a combination that cannot work. */
export function resolveFeatures(options: Pop3ServerOptions): Required<Pop3ServerFeatures> {
  const implicitTls = options.implicitTls ?? false;
  if (implicitTls && options.tls === undefined) throw new Error('implicitTls needs the `tls` option');
  const stls = options.features?.stls ?? (options.tls !== undefined && !implicitTls);
  if (stls && options.tls === undefined) throw new Error('features.stls needs the `tls` option');
  return {
    uidl: options.features?.uidl ?? true,
    top: options.features?.top ?? true,
    pipelining: options.features?.pipelining ?? true,
    stls: stls && !implicitTls,
    apop: options.features?.apop ?? false,
    sasl: (options.features?.sasl ?? [...DEFAULT_SASL_MECHANISMS]).map((m) => m.toUpperCase()),
    user: options.features?.user ?? true,
  };
}

/** The hook sets in the order they are asked. */
export function hookSets(options: Pop3ServerOptions): readonly Pop3ServerHooks[] {
  const hooks = options.hooks;
  return hooks === undefined ? [] : Array.isArray(hooks) ? hooks : [hooks as Pop3ServerHooks];
}
