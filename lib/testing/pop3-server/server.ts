/**
 * The server's lifecycle: listen on a loopback address (plaintext or implicit TLS), start one
 * session per connection, keep the records, and close.
 */
import net from 'node:net';
import { Connection } from './connection.js';
import { DEFAULT_HOST, hookSets, resolveFeatures, type Pop3ServerOptions } from './options.js';
import type { ServerShared } from './server-context.js';
import type { Pop3TestServer } from './server-types.js';
import { Session } from './session.js';
import { createImplicitTlsListener, createSecureContext } from './tls.js';

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (net.isIPv4(host)) return host.startsWith('127.');
  return net.isIPv6(host) && (host === '::1' || /^::ffff:127\./i.test(host));
}

function serverUrl(host: string, port: number, implicitTls: boolean, user?: string, password?: string): string {
  const scheme = implicitTls ? 'pop3s' : 'pop3';
  const hostPart = net.isIPv6(host) ? `[${host}]` : host;
  const userInfo =
    user === undefined
      ? ''
      : `${encodeURIComponent(user)}${password === undefined ? '' : `:${encodeURIComponent(password)}`}@`;
  return `${scheme}://${userInfo}${hostPart}:${port}`;
}

/** Starts a server on a loopback address; resolves once it listens. */
export async function startPop3Server(options: Pop3ServerOptions = {}): Promise<Pop3TestServer> {
  const host = options.host ?? DEFAULT_HOST;
  if (!isLoopback(host)) throw new Error(`the POP3 test server listens on loopback only, not on ${host}`);
  const implicitTls = options.implicitTls ?? false;
  const features = resolveFeatures(options);
  const errors: Error[] = [];
  const sessions: Session[] = [];
  const running = new Set<Promise<void>>();
  const rawSockets = new Set<net.Socket>();
  const openConnections = new Set<Connection>();
  let accepted = 0;
  let nextId = 1;

  const shared: ServerShared = {
    options,
    hooks: hookSets(options),
    users: options.users ?? {},
    mailboxes: options.mailboxes ?? {},
    locks: new Map(),
    features,
    assignedUids: new WeakMap(),
    secureContext: options.tls === undefined ? undefined : createSecureContext(options.tls),
    log: options.log,
    recordError(err, where, conn) {
      const error = err instanceof Error ? err : new Error(String(err));
      errors.push(error);
      conn.log(`unexpected error in ${where}: ${error.stack ?? error.message}`);
      if (!conn.isClosed) conn.destroy();
    },
  };

  const startSession = (socket: net.Socket, raw: net.Socket): void => {
    const conn = new Connection(nextId++, socket, raw, shared);
    const session = new Session(conn, shared);
    sessions.push(session);
    openConnections.add(conn);
    conn.log(`connected from ${conn.remoteAddress}${conn.tls ? ' (TLS)' : ''}`);
    const done = session
      .run()
      .catch((err: unknown) => shared.recordError(err, 'session', conn))
      .finally(() => {
        openConnections.delete(conn);
        running.delete(done);
        conn.log('closed');
      });
    session.finished = done;
    running.add(done);
  };

  const trackRaw = (raw: net.Socket): void => {
    accepted++;
    rawSockets.add(raw);
    // Small status lines go out at once (no Nagle delay), so scripted byte counts are exact
    // even when the next step is a reset.
    raw.setNoDelay(true);
    raw.on('error', () => undefined); // reported by the connection; never crash the test run
    raw.once('close', () => rawSockets.delete(raw));
  };

  const server: net.Server =
    implicitTls && options.tls !== undefined
      ? createImplicitTlsListener(options.tls, startSession, options.log)
      : net.createServer((socket) => startSession(socket, socket));
  server.on('connection', trackRaw);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port: options.port ?? 0 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('unexpected server address');
  const port = address.port;
  options.log?.(`listening on ${host}:${port}${implicitTls ? ' (implicit TLS)' : ''}`);

  const whenIdle = async (): Promise<void> => {
    while (running.size > 0) await Promise.all([...running]);
  };

  return {
    host,
    port,
    implicitTls,
    url(user?: string, password?: string): string {
      return serverUrl(host, port, implicitTls, user, password);
    },
    get connections() {
      return accepted;
    },
    get activeConnections() {
      return openConnections.size;
    },
    sessions,
    mailboxes: shared.mailboxes,
    errors,
    whenIdle,
    async close(): Promise<void> {
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const conn of openConnections) conn.destroy();
      for (const raw of rawSockets) raw.destroy();
      await stopped;
      await whenIdle();
      if (errors.length > 0) {
        throw new AggregateError(errors, `the POP3 test server saw ${errors.length} unexpected error(s)`);
      }
    },
  };
}
