/**
 * In-memory implementations of the drain's ports, for unit tests of the engine that need no
 * files, no AWS stand-ins and no Dovecot: a UIDL ledger with the adapters' conditional-write
 * semantics, a message store that keeps bytes in a Map, an event sink that records what it was
 * given, fixed credentials and a clock the test moves. Each can be told to fail.
 */
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { DrainError } from '../../lib/drain/errors.js';
import { strictJsonProblem } from './strict-json.js';
import type { DrainEvent } from '../../lib/drain/events.js';
import type {
  Clock,
  CredentialsProvider,
  DrainPorts,
  EventSink,
  LedgerEntry,
  Lease,
  MailboxState,
  MailboxStateUpdate,
  MessageStore,
  MessageSummary,
  MessageWriter,
  PublishOutcome,
  RecordOutcome,
  StoredObject,
  StoreRef,
  RequestMarker,
  UidlLedger,
} from '../../lib/drain/ports.js';

export class MemoryLedger implements UidlLedger {
  readonly entries = new Map<string, LedgerEntry>();
  readonly states = new Map<string, MailboxState>();
  readonly leases = new Map<string, Lease>();
  /** When set, `record` throws LEDGER_FAILED for entries whose UIDL matches. */
  failRecord: ((uidl: string) => boolean) | undefined;

  private id(mailboxId: string, uidl: string): string {
    return `${mailboxId}\u0000${uidl}`;
  }

  async acquireLease(mailboxId: string, owner: string, ttlMs: number, now: number): Promise<Lease | undefined> {
    const held = this.leases.get(mailboxId);
    if (held !== undefined && held.owner !== owner && held.expiresAt > now) return undefined;
    const lease = { mailboxId, owner, expiresAt: now + ttlMs };
    this.leases.set(mailboxId, lease);
    return lease;
  }

  async renewLease(lease: Lease, ttlMs: number, now: number): Promise<Lease> {
    const held = this.leases.get(lease.mailboxId);
    if (held?.owner !== lease.owner) throw new DrainError('LEASE_HELD', 'lease lost', { phase: 'lease', retryable: true });
    const renewed = { ...lease, expiresAt: now + ttlMs };
    this.leases.set(lease.mailboxId, renewed);
    return renewed;
  }

  async releaseLease(lease: Lease): Promise<void> {
    if (this.leases.get(lease.mailboxId)?.owner === lease.owner) this.leases.delete(lease.mailboxId);
  }

  async leaseHolder(mailboxId: string, now: number): Promise<Lease | undefined> {
    const held = this.leases.get(mailboxId);
    return held !== undefined && held.expiresAt > now ? held : undefined;
  }

  async getMailboxState(mailboxId: string): Promise<MailboxState> {
    return structuredClone(this.states.get(mailboxId) ?? { mailboxId });
  }

  async updateMailboxState(mailboxId: string, update: MailboxStateUpdate): Promise<void> {
    const state: Record<string, unknown> = { ...(this.states.get(mailboxId) ?? { mailboxId }) };
    for (const [key, value] of Object.entries(update)) {
      if (value === null) delete state[key];
      else if (value !== undefined) state[key] = structuredClone(value);
    }
    this.states.set(mailboxId, state as unknown as MailboxState);
  }

  async claimRequestMarker(mailboxId: string, marker: RequestMarker, now: number): Promise<boolean> {
    const held = this.states.get(mailboxId)?.requestMarker;
    const claimed = held === undefined || held.token === marker.token || held.expiresAt <= now;
    if (claimed) await this.updateMailboxState(mailboxId, { requestMarker: { ...marker } });
    return claimed;
  }

  async releaseRequestMarker(mailboxId: string, token: string): Promise<void> {
    if (this.states.get(mailboxId)?.requestMarker?.token === token) await this.updateMailboxState(mailboxId, { requestMarker: null });
  }

  async lookup(mailboxId: string, uidls: readonly string[]): Promise<Map<string, LedgerEntry>> {
    const out = new Map<string, LedgerEntry>();
    for (const uidl of uidls) {
      const entry = this.entries.get(this.id(mailboxId, uidl));
      if (entry !== undefined) out.set(uidl, structuredClone(entry));
    }
    return out;
  }

  async record(entries: readonly LedgerEntry[]): Promise<RecordOutcome[]> {
    if (this.failRecord !== undefined && entries.some((e) => this.failRecord!(e.uidl))) {
      throw new DrainError('LEDGER_FAILED', 'ledger down (scripted)', { phase: 'ledger', retryable: true });
    }
    return entries.map((entry) => {
      const id = this.id(entry.mailboxId, entry.uidl);
      const existing = this.entries.get(id);
      if (existing !== undefined) return { uidl: entry.uidl, ok: false, conflict: structuredClone(existing) };
      this.entries.set(id, structuredClone(entry));
      return { uidl: entry.uidl, ok: true };
    });
  }

  async markAnnounced(mailboxId: string, uidls: readonly string[], at: number): Promise<void> {
    for (const uidl of uidls) {
      const entry = this.entries.get(this.id(mailboxId, uidl));
      if (entry === undefined) continue;
      if (entry.status === 'stored') entry.status = 'announced';
      entry.announcedAt = at;
    }
  }

  async markDeleted(mailboxId: string, uidls: readonly string[], at: number, expiresAt: number): Promise<void> {
    for (const uidl of uidls) {
      const entry = this.entries.get(this.id(mailboxId, uidl));
      if (entry === undefined) continue;
      entry.deletedAt = at;
      entry.expiresAt = expiresAt;
    }
  }

  async pending(mailboxId: string): Promise<LedgerEntry[]> {
    return [...this.entries.values()].filter((e) => e.mailboxId === mailboxId && e.status === 'stored').map((e) => structuredClone(e));
  }

  /** The entry of one UIDL, as stored (for assertions). */
  entry(mailboxId: string, uidl: string): LedgerEntry | undefined {
    return this.entries.get(this.id(mailboxId, uidl));
  }
}

export interface MemoryStoreOptions {
  /** Offer `put` (messages received whole); without it the engine streams every message. @default true */
  put?: boolean;
}

export class MemoryStore implements MessageStore {
  readonly objects = new Map<string, { bytes: Buffer; sha256: string; metadata: Record<string, string> }>();
  /** When set, storing a message whose UIDL matches fails with STORE_FAILED. */
  failStore: ((uidl: string) => boolean) | undefined;
  put?: MessageStore['put'];

  constructor(options: MemoryStoreOptions = {}) {
    if (options.put !== false) {
      this.put = async (key, info, chunks, summary) => this.commitBytes(key, info.uidl, Buffer.concat(chunks), summary);
    }
  }

  refFor(key: string): StoreRef {
    return { type: 'file', path: `memory:${key}` };
  }

  async open(key: string, info: { mailboxId: string; uidl: string }): Promise<MessageWriter> {
    const chunks: Buffer[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(chunk);
        callback();
      },
    });
    return {
      stream,
      commit: (summary) => this.commitBytes(key, info.uidl, Buffer.concat(chunks), summary),
      abort: async () => {
        chunks.length = 0;
      },
    };
  }

  private async commitBytes(key: string, uidl: string, bytes: Buffer, summary: MessageSummary): Promise<StoredObject> {
    if (this.failStore?.(uidl) === true) throw new DrainError('STORE_FAILED', 'store down (scripted)', { phase: 'store', retryable: true });
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    if (sha256 !== summary.sha256 || bytes.length !== summary.size) throw new Error(`summary does not match the bytes of ${key}`);
    const existing = this.objects.get(key);
    if (existing !== undefined) {
      if (existing.sha256 !== sha256) throw new DrainError('STORE_CONFLICT', `different object under ${key}`, { phase: 'store', retryable: false });
      return { ref: this.refFor(key), existed: true };
    }
    this.objects.set(key, { bytes, sha256, metadata: { ...summary.metadata } });
    return { ref: this.refFor(key), existed: false };
  }
}

export class MemoryEventSink implements EventSink {
  readonly published: DrainEvent[] = [];
  /** When set, events for which it is true are reported as failed. */
  failEvent: ((event: DrainEvent) => boolean) | undefined;

  async publish(events: readonly DrainEvent[]): Promise<PublishOutcome> {
    const outcome: PublishOutcome = { published: [], failed: [] };
    for (const event of events) {
      // Every event the suite publishes through these ports must be strict JSON in UTF-8.
      const problem = strictJsonProblem(JSON.stringify(event));
      if (problem !== undefined) throw new Error(`event ${event.id} is not strict JSON: ${problem}`);
      if (this.failEvent?.(event) === true) outcome.failed.push({ id: event.id, reason: 'scripted failure' });
      else {
        this.published.push(structuredClone(event));
        outcome.published.push(event.id);
      }
    }
    return outcome;
  }

  ofType(detailType: DrainEvent['detailType']): DrainEvent[] {
    return this.published.filter((e) => e.detailType === detailType);
  }
}

export function fixedCredentials(user: string, password: string): CredentialsProvider {
  return { get: async () => ({ user, password }) };
}

/** A clock that stands still until the test moves it. */
export class ManualClock implements Clock {
  constructor(private ms = Date.parse('2026-01-01T00:00:00Z')) {}
  now(): number {
    return this.ms;
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}

export interface MemoryPorts extends DrainPorts {
  store: MemoryStore;
  ledger: MemoryLedger;
  events: MemoryEventSink;
  clock: ManualClock;
}

export function memoryPorts(options: { user?: string; password?: string; store?: MemoryStoreOptions } = {}): MemoryPorts {
  return {
    store: new MemoryStore(options.store),
    ledger: new MemoryLedger(),
    events: new MemoryEventSink(),
    credentials: fixedCredentials(options.user ?? 'alice', options.password ?? 'secret'),
    clock: new ManualClock(),
  };
}
