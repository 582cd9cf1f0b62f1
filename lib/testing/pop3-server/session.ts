/**
 * One POP3 session: the state machine of RFC 1939 (AUTHORIZATION → TRANSACTION → UPDATE), the
 * greeting, the command loop that asks the hooks first, and the dispatch of each verb to the
 * state that handles it. The session object is also the `SessionState` hooks see and the
 * `SessionLog` the server keeps.
 */
import { authorizationCommand } from './authorization.js';
import { capabilityLines } from './capabilities.js';
import { splitCommand } from './command-line.js';
import type { Connection } from './connection.js';
import { CommandLineTooLongError, isConnectionError } from './errors.js';
import { callHooks, type Awaitable, type Pop3ServerHooks, type SessionPhase, type SessionState } from './hooks.js';
import { expungeDeleted, findMessage, type MaildropMessage, type SessionMessage } from './mailbox.js';
import type { ServerShared } from './server-context.js';
import type { SessionLog } from './server-types.js';
import { transactionCommand } from './transaction.js';

let timestampCounter = 0;

function makeApopTimestamp(): string {
  timestampCounter += 1;
  return `<${process.pid}.${Date.now()}.${timestampCounter}@popdrain.test>`;
}

export class Session implements SessionState, SessionLog {
  phase: SessionPhase = 'AUTHORIZATION';
  user: string | undefined;
  apopTimestamp: string | undefined;
  messages: MaildropMessage[] = [];
  quit = false;
  readonly expunged: string[] = [];
  finished: Promise<void> = Promise.resolve();
  /** The name USER gave, waiting for PASS. */
  pendingUser: string | undefined;

  constructor(
    readonly conn: Connection,
    readonly server: ServerShared,
  ) {}

  get id(): number {
    return this.conn.id;
  }
  get remoteAddress(): string {
    return this.conn.remoteAddress;
  }
  get received(): readonly string[] {
    return this.conn.received;
  }
  get tls(): boolean {
    return this.conn.tls;
  }
  get closed(): boolean {
    return this.conn.isClosed;
  }

  message(numberArg: string | number | undefined): SessionMessage | undefined {
    const m = findMessage(this.messages, numberArg);
    return m === undefined || m.deleted ? undefined : m;
  }

  /** Runs one hook kind over every hook set; the first truthy answer wins. */
  callHooks<T>(call: (h: Pop3ServerHooks) => Awaitable<T | false | void> | undefined): Promise<T | undefined> {
    return callHooks(this.server.hooks, call);
  }

  async run(): Promise<void> {
    const { conn } = this;
    try {
      if (await this.callHooks((h) => h.onConnect?.(conn))) {
        if (!conn.isClosed) await conn.silence();
        return;
      }
      const greeting = this.server.options.greeting ?? this.defaultGreeting();
      this.apopTimestamp = /<[^<>\s]+>/.exec(greeting)?.[0];
      await conn.writeLine(greeting);
      while (!conn.isClosed && this.phase !== 'UPDATE' && !this.quit) {
        const line = await conn.readLine();
        if (line === null) break;
        if (await this.callHooks((h) => h.onCommand?.(conn, line, this))) continue;
        await this.dispatch(line);
      }
    } catch (err) {
      if (err instanceof CommandLineTooLongError && !conn.isClosed) {
        await conn.writeLine('-ERR Line too long').catch(() => undefined);
      } else if (!isConnectionError(err)) {
        this.server.recordError(err, 'session', conn);
      }
    } finally {
      // Without QUIT nothing is applied: DELE marks die with the session (RFC 1939 section 6).
      if (this.user !== undefined && this.server.locks.get(this.user) === this.id) {
        this.server.locks.delete(this.user);
      }
      await conn.finish();
    }
  }

  private defaultGreeting(): string {
    const base = '+OK popdrain test server ready';
    return this.server.features.apop ? `${base} ${makeApopTimestamp()}` : base;
  }

  private async dispatch(line: string): Promise<void> {
    const { verb, args } = splitCommand(line);
    const { conn } = this;
    switch (verb) {
      case 'CAPA':
        return this.capa();
      case 'QUIT':
        return this.quitCommand();
      case 'USER':
      case 'PASS':
      case 'APOP':
      case 'AUTH':
      case 'STLS':
        if (this.phase !== 'AUTHORIZATION') return conn.writeLine('-ERR Command not valid in this state');
        return authorizationCommand(this, verb, args, line);
      case 'STAT':
      case 'LIST':
      case 'UIDL':
      case 'RETR':
      case 'TOP':
      case 'DELE':
      case 'RSET':
      case 'NOOP':
        if (this.phase !== 'TRANSACTION') return conn.writeLine('-ERR Command not valid in this state');
        return transactionCommand(this, verb, args);
      default:
        return conn.writeLine('-ERR Unknown command');
    }
  }

  // ----- any state -----

  private async capa(): Promise<void> {
    const configured = this.server.options.capabilities;
    if (configured === null) return this.conn.writeLine('-ERR Unknown command');
    const lines = capabilityLines(this.server.features, configured, this.conn.tls, this.phase);
    await this.conn.writeMultiline('+OK Capability list follows', lines);
  }

  private async quitCommand(): Promise<void> {
    if (this.phase === 'TRANSACTION' && this.user !== undefined) {
      this.phase = 'UPDATE';
      for (const uid of expungeDeleted(this.server.mailboxes[this.user], this.messages)) this.expunged.push(uid);
      await this.conn.writeLine(`+OK Logging out, ${this.expunged.length} messages deleted`);
    } else {
      await this.conn.writeLine('+OK Logging out');
    }
    this.quit = true;
  }
}
