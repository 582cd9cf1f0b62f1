/** What a test holds of a running server: its address, its records of each session, its errors. */
import type { SessionPhase } from './hooks.js';
import type { MailboxMessage } from './mailbox.js';

/** The record of one connection, kept by the server for assertions. */
export interface SessionLog {
  readonly id: number;
  readonly remoteAddress: string;
  /** Every line received, in order, without CRLF; passwords and AUTH payloads included. */
  readonly received: readonly string[];
  readonly tls: boolean;
  readonly phase: SessionPhase;
  readonly user: string | undefined;
  /** QUIT was answered with +OK. */
  readonly quit: boolean;
  /** UIDs of the messages this session's QUIT removed from the mailbox. */
  readonly expunged: readonly string[];
  readonly closed: boolean;
  /** Resolves when the session is over: socket closed, mailbox lock released. */
  readonly finished: Promise<void>;
}

export interface Pop3TestServer {
  readonly host: string;
  readonly port: number;
  readonly implicitTls: boolean;
  /** `pop3://` (or `pop3s://` with implicit TLS), with the user and password when given. */
  url(user?: string, password?: string): string;
  /** TCP connections accepted so far. */
  readonly connections: number;
  /** Sessions whose socket is still open. */
  readonly activeConnections: number;
  /** One record per connection, in the order they arrived. */
  readonly sessions: readonly SessionLog[];
  /** The shared maildrops (the object given in the options). */
  readonly mailboxes: Record<string, MailboxMessage[]>;
  /** Unexpected errors: exceptions from hooks or from the server itself, not socket errors. */
  readonly errors: readonly Error[];
  /** Resolves when every session so far has finished and its socket has closed. */
  whenIdle(): Promise<void>;
  /** Stops listening, destroys open connections; rejects if `errors` is not empty. */
  close(): Promise<void>;
}
