/** What connections and sessions share of one running server. */
import type tls from 'node:tls';
import type { Connection } from './connection.js';
import type { Pop3ServerHooks } from './hooks.js';
import type { MailboxMessage } from './mailbox.js';
import type { Pop3ServerFeatures, Pop3ServerOptions, Pop3UserAccount } from './options.js';

/** What a connection needs of the server. */
export interface ServerContext {
  readonly users: Record<string, Pop3UserAccount>;
  readonly secureContext: tls.SecureContext | undefined;
  readonly log: ((line: string) => void) | undefined;
}

/** What a session needs of the server. */
export interface ServerShared extends ServerContext {
  readonly options: Pop3ServerOptions;
  readonly hooks: readonly Pop3ServerHooks[];
  readonly mailboxes: Record<string, MailboxMessage[]>;
  /** Which session holds each user's maildrop lock. */
  readonly locks: Map<string, number>;
  readonly features: Required<Pop3ServerFeatures>;
  /** UIDs the server made up for messages given without one, stable across sessions. */
  readonly assignedUids: WeakMap<MailboxMessage, string>;
  recordError(err: unknown, where: string, conn: Connection): void;
}
