// The child process of the drain crash test: one drainMailbox run against Dovecot, with the
// local adapters or the AWS adapters (s3rver, dynalite and the recording EventBridge endpoint,
// which live in the parent). It wraps the ports and uses the POP3 trace hook to print every
// step boundary it crosses (see drain-crash-shared.ts), and at the boundary it was told to stop
// at it freezes: the event loop is blocked, so nothing more happens (no write, no QUIT) until
// the parent's SIGKILL. Configuration comes as JSON in the environment (CRASH_CONFIG_ENV).
import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { createLocalAdapters } from '../../lib/adapters/local/index.js';
import { drainMailbox } from '../../lib/drain/drain-mailbox.js';
import type { DrainPorts, EventSink, MessageStore, MessageWriter, UidlLedger } from '../../lib/drain/ports.js';
import type { Pop3TraceEvent } from '../../lib/pop3/index.js';
import { CRASH_CONFIG_ENV, FREEZE_LIMIT_MS, FROZEN_EXIT_CODE, type Boundary, type CrashChildConfig, type ChildPorts } from './drain-crash-shared.js';

const raw = process.env[CRASH_CONFIG_ENV];
if (raw === undefined) throw new Error(`${CRASH_CONFIG_ENV} is not set`);
const config = JSON.parse(raw) as CrashChildConfig;
const stopAt = config.stopAt;
const crossings = new Map<Boundary, number>();

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** Block the event loop: no callback, timer or socket write runs again. The parent kills us. */
function freeze(boundary: Boundary): never {
  say(`STOP ${boundary}`);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, FREEZE_LIMIT_MS);
  process.exit(FROZEN_EXIT_CODE);
}

/** Report a crossing; freeze when it is the one to stop at. `eligible` false: reported, not counted. */
function cross(boundary: Boundary, detail: string, eligible = true): void {
  say(`B ${boundary} ${detail}`);
  if (stopAt === undefined || stopAt.boundary !== boundary || !eligible) return;
  const n = (crossings.get(boundary) ?? 0) + 1;
  crossings.set(boundary, n);
  if (n === stopAt.occurrence) freeze(boundary);
}

/** Passes the bytes on to the store's stream; reports when the first chunk was handed over. */
class ReportingStream extends Writable {
  private first = true;

  constructor(
    private readonly inner: Writable,
    private readonly onFirstChunk: () => void,
  ) {
    super();
    inner.on('error', (error) => this.destroy(error));
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const more = this.inner.write(chunk);
    if (this.first) {
      this.first = false;
      this.onFirstChunk();
    }
    if (more) callback();
    else this.inner.once('drain', () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.inner.end();
    finished(this.inner).then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.inner.destroyed) this.inner.destroy();
    callback(error);
  }
}

function reportingStore(store: MessageStore): MessageStore {
  const put = store.put?.bind(store);
  const prepareMailbox = store.prepareMailbox?.bind(store);
  return {
    refFor: (key) => store.refFor(key),
    ...(prepareMailbox === undefined ? {} : { prepareMailbox }),
    // A small message the engine received whole reaches the store in one call: its bytes are
    // there (not yet durable) when put is called, as a streamed one's are at its first chunk.
    ...(put === undefined
      ? {}
      : {
          put: async (key, info, chunks, summary) => {
            const large = stopAt?.minSize === undefined || summary.size >= stopAt.minSize;
            cross('retr-chunk', `${info.uidl} ${summary.size}`, large);
            const stored = await put(key, info, chunks, summary);
            cross('store-commit', `${info.uidl} ${summary.sha256} existed=${stored.existed}`);
            return stored;
          },
        }),
    open: async (key, info) => {
      const writer = await store.open(key, info);
      const large = stopAt?.minSize === undefined || (info.expectedSize ?? 0) >= stopAt.minSize;
      const stream = new ReportingStream(writer.stream, () => cross('retr-chunk', `${info.uidl} ${info.expectedSize ?? '?'}`, large));
      const wrapped: MessageWriter = {
        stream,
        commit: async (summary) => {
          const stored = await writer.commit(summary);
          cross('store-commit', `${info.uidl} ${summary.sha256} existed=${stored.existed}`);
          return stored;
        },
        abort: () => writer.abort(),
      };
      return wrapped;
    },
  };
}

function reportingLedger(ledger: UidlLedger): UidlLedger {
  return {
    acquireLease: (...a) => ledger.acquireLease(...a),
    renewLease: (...a) => ledger.renewLease(...a),
    releaseLease: (...a) => ledger.releaseLease(...a),
    leaseHolder: (...a) => ledger.leaseHolder(...a),
    getMailboxState: (...a) => ledger.getMailboxState(...a),
    updateMailboxState: (...a) => ledger.updateMailboxState(...a),
    claimRequestMarker: (...a) => ledger.claimRequestMarker(...a),
    releaseRequestMarker: (...a) => ledger.releaseRequestMarker(...a),
    lookup: (...a) => ledger.lookup(...a),
    markDeleted: (...a) => ledger.markDeleted(...a),
    pending: (...a) => ledger.pending(...a),
    record: async (entries) => {
      const outcomes = await ledger.record(entries);
      cross('ledger-record', entries.map((e) => e.uidl).join(','));
      return outcomes;
    },
    markAnnounced: async (mailboxId, uidls, at) => {
      await ledger.markAnnounced(mailboxId, uidls, at);
      cross('mark-announced', uidls.join(','));
    },
  };
}

function reportingEvents(events: EventSink): EventSink {
  return {
    publish: async (batch) => {
      const outcome = await events.publish(batch);
      const stored = batch.filter((e) => e.detailType === 'Email Stored');
      // The run summary (`Mailbox Drained`) goes out after QUIT: reported, never a stop.
      cross('event-publish', `${outcome.published.length}/${batch.length}`, stored.length > 0);
      return outcome;
    },
  };
}

/**
 * Boundaries from the protocol trace. After login every client line is a command and every
 * server line the status of the oldest unanswered one (responses come in order, pipelined or not).
 */
function protocolTrace(): (event: Pop3TraceEvent) => void {
  let authenticated = false;
  const unanswered: string[] = [];
  return (event) => {
    if (event.direction === 'info') {
      if (event.line.startsWith('authenticated')) {
        authenticated = true;
        unanswered.length = 0;
      }
      return;
    }
    if (!authenticated) return;
    if (event.direction === 'client') {
      unanswered.push(event.line);
      // The trace comes as the command is queued for the socket; QUIT is on the wire (handed
      // to the kernel) once this turn of the event loop is over.
      if (event.line === 'QUIT') setImmediate(() => cross('quit-sent', ''));
      return;
    }
    const command = unanswered.shift() ?? '';
    if (command.startsWith('DELE ') && event.line.startsWith('+OK')) cross('dele-acked', command.slice(5));
  };
}

function localPorts(out: string): ChildPorts {
  const adapters = createLocalAdapters({ out });
  return { ports: { store: adapters.store, ledger: adapters.ledger, events: adapters.events }, close: () => adapters.close() };
}

// The AWS SDK is loaded only by the children that use it (the bundle splits it off).
const { ports, close } =
  config.family === 'local' ? localPorts(config.local!.out) : (await import('./drain-crash-aws-ports.js')).awsPorts(config.aws!);
const report = await drainMailbox(
  config.mailbox,
  {
    store: reportingStore(ports.store),
    ledger: reportingLedger(ports.ledger),
    events: reportingEvents(ports.events),
    credentials: { get: async (mailbox) => ({ user: mailbox.user, password: config.password }) },
  },
  {},
  { leaseTtlMs: config.leaseTtlMs, trace: protocolTrace() },
);
await close();
say(`REPORT ${JSON.stringify(report)}`);
