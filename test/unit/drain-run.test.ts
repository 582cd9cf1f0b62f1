/**
 * The orchestration, driven through in-memory ports (test/support/memory-ports.ts) and the
 * scriptable POP3 server (lib/testing/pop3-server.ts) on loopback: no Dovecot, no files. Each
 * case runs drainMailbox end to end and checks the report, the ports and the server's maildrop.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { drainMailbox, type DrainBudget, type DrainOptions } from '../../lib/drain/drain-mailbox.js';
import { messageKey } from '../../lib/drain/keys.js';
import { DEFAULT_UIDL_RESET_GUARD, type MailboxConfig } from '../../lib/drain/mailbox.js';
import type { MessageStore } from '../../lib/drain/ports.js';
import { respondWith, startPop3Server, type MailboxMessage, type Pop3ServerOptions, type Pop3TestServer } from '../../lib/testing/pop3-server/index.js';
import { memoryPorts, type MemoryPorts } from '../support/memory-ports.js';

const servers: Pop3TestServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

function message(i: number, bodyBytes = 100): Buffer {
  return Buffer.from(`From: a${i}@example.com\r\nSubject: m ${i}\r\nMessage-ID: <m${i}@example.com>\r\n\r\n.dot line ${i}\r\n${'x'.repeat(bodyBytes)}\r\n`, 'latin1');
}

function maildrop(n: number, bodyBytes = 100): MailboxMessage[] {
  return Array.from({ length: n }, (_, i) => ({ bytes: message(i + 1, bodyBytes), uid: `uid-${i + 1}` }));
}

async function server(messages: MailboxMessage[], extra: Pop3ServerOptions = {}): Promise<Pop3TestServer> {
  const s = await startPop3Server({ users: { alice: { password: 'secret' } }, mailboxes: { alice: messages }, ...extra });
  servers.push(s);
  return s;
}

function mailboxOf(s: Pop3TestServer, extra: Partial<MailboxConfig> = {}): MailboxConfig {
  return {
    id: 'mbx-alice',
    host: s.host,
    port: s.port,
    tls: 'insecure-plaintext',
    user: 'alice',
    secret: { type: 'env', variable: 'UNUSED' },
    mechanism: 'auto',
    deletePolicy: { mode: 'delete' },
    uidlResetGuard: DEFAULT_UIDL_RESET_GUARD,
    ...extra,
  };
}

function run(mailbox: MailboxConfig, ports: MemoryPorts, budget: DrainBudget = {}, options: DrainOptions = {}) {
  return drainMailbox(mailbox, ports, budget, { leaseTtlMs: 60_000, ...options });
}

describe.each([
  ['received whole (store put)', true],
  ['streamed (store open/commit)', false],
])('drainMailbox, messages %s', (_name, put) => {
  it('stores, records, announces and deletes every message, then reports it', async () => {
    const drop = maildrop(4);
    const s = await server([...drop]);
    const ports = memoryPorts({ store: { put } });
    const mailbox = mailboxOf(s);
    const report = await run(mailbox, ports);
    expect(report).toMatchObject({ stopReason: 'complete', ok: true, fetched: 4, announced: 4, deleted: 4, remaining: 0, pendingAnnouncements: 0 });
    expect(report.fetchedBytes).toBe(drop.reduce((n, m) => n + m.bytes.length, 0));
    expect(s.mailboxes.alice).toEqual([]);
    for (const [i, m] of drop.entries()) {
      expect(ports.store.objects.get(messageKey(mailbox.id, m.uid!))?.bytes.equals(message(i + 1))).toBe(true);
      expect(ports.ledger.entry(mailbox.id, m.uid!)).toMatchObject({ status: 'announced', deletedAt: expect.any(Number) });
    }
    expect(ports.events.ofType('Email Stored').map((e) => (e.detail as { uidl: string }).uidl)).toEqual(['uid-1', 'uid-2', 'uid-3', 'uid-4']);
    expect(ports.events.ofType('Mailbox Drained')).toHaveLength(1);
    const state = await ports.ledger.getMailboxState(mailbox.id);
    expect(state.lastRun).toMatchObject({ stopReason: 'complete', fetched: 4, deleted: 4, knownOnServer: 0 });
    expect(state.lastSuccessAt).toBeDefined();
    expect(ports.ledger.leases.size).toBe(0);
  });
});

describe('drainMailbox: the plan in action', () => {
  it('keeps messages under keep, fetches nothing twice, and deletes known ones unseen once the policy allows', async () => {
    const s = await server(maildrop(3));
    const ports = memoryPorts();
    const first = await run(mailboxOf(s, { deletePolicy: { mode: 'keep' } }), ports);
    expect(first).toMatchObject({ stopReason: 'complete', fetched: 3, deleted: 0 });
    expect(s.mailboxes.alice).toHaveLength(3);
    const again = await run(mailboxOf(s, { deletePolicy: { mode: 'keep-days', days: 1 } }), ports);
    expect(again).toMatchObject({ stopReason: 'complete', fetched: 0, alreadyKnown: 3, deleted: 0 });
    ports.clock.advance(86_400_000);
    const later = await run(mailboxOf(s, { deletePolicy: { mode: 'keep-days', days: 1 } }), ports);
    expect(later).toMatchObject({ stopReason: 'complete', fetched: 0, alreadyKnown: 3, deleted: 3, announced: 0 });
    expect(s.mailboxes.alice).toEqual([]);
    expect(ports.events.ofType('Email Stored')).toHaveLength(3);
  });

  it('skips a message over the size cap: announced once as skipped, never fetched, never deleted', async () => {
    const drop = [...maildrop(2), { bytes: message(3, 5000), uid: 'big' }];
    const s = await server(drop);
    const ports = memoryPorts();
    const mailbox = mailboxOf(s, { maxMessageBytes: 1000 });
    expect(await run(mailbox, ports)).toMatchObject({ stopReason: 'complete', fetched: 2, skipped: 1, deleted: 2, announced: 3, ok: true });
    expect(s.mailboxes.alice!.map((m) => m.uid)).toEqual(['big']);
    expect(ports.events.ofType('Email Skipped')).toHaveLength(1);
    expect(ports.ledger.entry(mailbox.id, 'big')).toMatchObject({ status: 'skipped', announcedAt: expect.any(Number) });
    expect(await run(mailbox, ports)).toMatchObject({ fetched: 0, skipped: 0, announced: 0, deleted: 0, alreadyKnown: 1 });
    expect(ports.events.ofType('Email Skipped')).toHaveLength(1);
  });

  it('dry-run reports the plan and changes nothing', async () => {
    const s = await server([...maildrop(2), { bytes: message(3, 5000), uid: 'big' }]);
    const ports = memoryPorts();
    const report = await run(mailboxOf(s, { maxMessageBytes: 1000 }), ports, {}, { dryRun: true });
    expect(report.stopReason).toBe('dry-run');
    expect(report.plan).toMatchObject({ fetch: [{ uidl: 'uid-1' }, { uidl: 'uid-2' }], skip: [{ uidl: 'big' }], delete: [], announce: 0 });
    expect(report.remaining).toBe(2);
    expect(ports.store.objects.size + ports.ledger.entries.size + ports.events.published.length + ports.ledger.states.size).toBe(0);
    expect(s.mailboxes.alice).toHaveLength(3);
  });
});

describe('drainMailbox: budgets and stop reasons', () => {
  it('max-messages stops after that many and leaves the rest for the next run', async () => {
    const s = await server(maildrop(5));
    const ports = memoryPorts();
    const report = await run(mailboxOf(s), ports, { maxMessages: 2 });
    expect(report).toMatchObject({ stopReason: 'max-messages', fetched: 2, deleted: 2, remaining: 3, moreRemaining: true, ok: true });
    expect(s.mailboxes.alice!.map((m) => m.uid)).toEqual(['uid-3', 'uid-4', 'uid-5']);
    expect((await ports.ledger.getMailboxState('mbx-alice')).backlogSince).toBeDefined();
    expect(await run(mailboxOf(s), ports)).toMatchObject({ stopReason: 'complete', fetched: 3, remaining: 0 });
    expect((await ports.ledger.getMailboxState('mbx-alice')).backlogSince).toBeUndefined();
  });

  it('max-bytes lets the first message through and stops before one that does not fit', async () => {
    const s = await server(maildrop(3, 400));
    const ports = memoryPorts();
    const report = await run(mailboxOf(s, { maxBytesPerRun: 700 }), ports);
    expect(report).toMatchObject({ stopReason: 'max-bytes', fetched: 1, remaining: 2 });
  });

  it('a deadline already passed fetches nothing', async () => {
    const s = await server(maildrop(2));
    const ports = memoryPorts();
    const report = await run(mailboxOf(s), ports, { deadline: ports.clock.now() });
    expect(report).toMatchObject({ stopReason: 'deadline', fetched: 0, remaining: 2, moreRemaining: true });
    expect(s.mailboxes.alice).toHaveLength(2);
  });

  it('busy when another run holds the lease: nothing is touched, retry later', async () => {
    const s = await server(maildrop(1));
    const ports = memoryPorts();
    await ports.ledger.acquireLease('mbx-alice', 'someone-else', 60_000, ports.clock.now());
    const report = await run(mailboxOf(s), ports);
    expect(report).toMatchObject({ stopReason: 'busy', retryLater: true, fetched: 0 });
    expect(s.connections).toBe(0);
  });

  it('asks the store to warm up on a first drain only, not on a rerun or a dry run', async () => {
    const s = await server(maildrop(2));
    const ports = memoryPorts();
    let warmUps = 0;
    (ports.store as MessageStore).warmUp = () => void warmUps++;
    await run(mailboxOf(s, { deletePolicy: { mode: 'keep' } }), ports, {}, { dryRun: true });
    expect(warmUps).toBe(0);
    expect(await run(mailboxOf(s, { deletePolicy: { mode: 'keep' } }), ports)).toMatchObject({ stopReason: 'complete', fetched: 2 });
    expect(warmUps).toBe(1);
    s.mailboxes.alice!.push(...maildrop(3).slice(2));
    expect(await run(mailboxOf(s, { deletePolicy: { mode: 'keep' } }), ports)).toMatchObject({ stopReason: 'complete', fetched: 1 });
    expect(warmUps).toBe(1);
  });

  it('a store whose warm-up throws still drains: the warm-up is a hint, not part of the ledger load', async () => {
    const s = await server(maildrop(2));
    const ports = memoryPorts();
    (ports.store as MessageStore).warmUp = () => {
      throw new Error('no thread for you');
    };
    expect(await run(mailboxOf(s), ports)).toMatchObject({ ok: true, stopReason: 'complete', fetched: 2 });
  });

  it('store-failed after three store failures in a row: nothing deleted, the rest stays', async () => {
    const s = await server(maildrop(6));
    const ports = memoryPorts();
    ports.store.failStore = () => true;
    const report = await run(mailboxOf(s), ports);
    expect(report.stopReason).toBe('store-failed');
    expect(report).toMatchObject({ ok: false, deleted: 0 });
    expect(report.failures.length).toBeGreaterThanOrEqual(3);
    expect(report.failures.every((f) => f.code === 'STORE_FAILED')).toBe(true);
    expect(s.mailboxes.alice).toHaveLength(6);
    expect(ports.ledger.entries.size).toBe(0);
  });

  it('ledger-failed after three ledger failures in a row', async () => {
    const s = await server(maildrop(6));
    const ports = memoryPorts();
    ports.ledger.failRecord = () => true;
    const report = await run(mailboxOf(s), ports);
    expect(report.stopReason).toBe('ledger-failed');
    expect(report.deleted).toBe(0);
    expect(s.mailboxes.alice).toHaveLength(6);
  });

  it('an event that does not go out keeps its message on the server; the next run announces it and deletes it', async () => {
    const s = await server(maildrop(2));
    const ports = memoryPorts();
    ports.events.failEvent = (e) => e.detailType === 'Email Stored' && (e.detail as { uidl: string }).uidl === 'uid-2';
    const first = await run(mailboxOf(s), ports);
    expect(first).toMatchObject({ stopReason: 'complete', ok: false, fetched: 2, announced: 1, deleted: 1, pendingAnnouncements: 1 });
    expect(first.failures).toMatchObject([{ uidl: 'uid-2', code: 'EVENTS_FAILED', phase: 'publish', retryable: true }]);
    expect(s.mailboxes.alice!.map((m) => m.uid)).toEqual(['uid-2']);
    ports.events.failEvent = undefined;
    const second = await run(mailboxOf(s), ports);
    expect(second).toMatchObject({ stopReason: 'complete', ok: true, fetched: 0, announced: 1, reannounced: 1, deleted: 1 });
    expect(s.mailboxes.alice).toEqual([]);
  });

  it('auth-failed when the server refuses the password', async () => {
    const s = await server(maildrop(1));
    const ports = memoryPorts({ password: 'wrong' });
    const report = await run(mailboxOf(s), ports);
    expect(report).toMatchObject({ stopReason: 'auth-failed', ok: false, error: { code: 'AUTH_FAILED' } });
  });
});

describe('drainMailbox: the UIDL-reset guard', () => {
  it('stops when the known messages vanished, stays tripped, and proceeds once the operator accepts', async () => {
    const s = await server(maildrop(60));
    const ports = memoryPorts();
    await ports.ledger.updateMailboxState('mbx-alice', { lastRun: { knownOnServer: 60 } as never });
    const tripped = await run(mailboxOf(s), ports);
    expect(tripped).toMatchObject({ stopReason: 'uidl-reset-suspected', fetched: 0, remaining: 60, ok: false });
    const state = await ports.ledger.getMailboxState('mbx-alice');
    expect(state.uidlResetTrippedAt).toBeDefined();
    expect(state.lastRun?.knownOnServer).toBe(60);
    expect((await run(mailboxOf(s), ports)).stopReason).toBe('uidl-reset-suspected');
    await ports.ledger.updateMailboxState('mbx-alice', { acceptUidlReset: true });
    expect(await run(mailboxOf(s), ports)).toMatchObject({ stopReason: 'complete', fetched: 60 });
    const after = await ports.ledger.getMailboxState('mbx-alice');
    expect(after.uidlResetTrippedAt).toBeUndefined();
    expect(after.acceptUidlReset).toBeUndefined();
  });
});

describe('drainMailbox: the listing', () => {
  it('leaves messages sharing a UIDL, and one listed without a UIDL, on the server and drains the rest', async () => {
    const drop = [
      { bytes: message(1), uid: 'same' },
      { bytes: message(2), uid: 'ok-2' },
      { bytes: message(3), uid: 'same' },
      { bytes: message(4), uid: 'ok-4' },
      { bytes: message(5), uid: 'ok-5' },
    ];
    // UIDL answers for every message but the fifth.
    const s = await server(drop, { hooks: respondWith('UIDL', ['+OK', '1 same', '2 ok-2', '3 same', '4 ok-4', '.']) });
    const ports = memoryPorts();
    const report = await run(mailboxOf(s), ports);
    expect(report).toMatchObject({ stopReason: 'complete', fetched: 2, deleted: 2, serverMessages: 2, ok: false });
    expect(report.failures.map((f) => [f.uidl, f.code, f.phase])).toEqual([
      [undefined, 'PROTOCOL_ERROR', 'list'],
      ['same', 'PROTOCOL_ERROR', 'list'],
      ['same', 'PROTOCOL_ERROR', 'list'],
    ]);
    expect(s.mailboxes.alice!.map((m) => m.uid)).toEqual(['same', 'same', 'ok-5']);
  });

  it('without UIDL, identifies messages by header digest, and a rerun recognizes them', async () => {
    const s = await server(maildrop(3), { features: { uidl: false } });
    const ports = memoryPorts();
    const report = await run(mailboxOf(s, { deletePolicy: { mode: 'keep' } }), ports);
    expect(report).toMatchObject({ stopReason: 'complete', uidlSupported: false, fetched: 3 });
    expect([...ports.ledger.entries.values()].every((e) => e.uidl.startsWith('~hdr-'))).toBe(true);
    expect(await run(mailboxOf(s, { deletePolicy: { mode: 'keep' } }), ports)).toMatchObject({ fetched: 0, alreadyKnown: 3 });
  });

  it('records the deletions an interrupted run left pending, for messages no longer on the server', async () => {
    const s = await server(maildrop(1));
    const ports = memoryPorts();
    await run(mailboxOf(s, { deletePolicy: { mode: 'keep' } }), ports);
    expect(ports.ledger.entry('mbx-alice', 'uid-1')?.deletedAt).toBeUndefined();
    s.mailboxes.alice!.length = 0;
    await ports.ledger.updateMailboxState('mbx-alice', { pendingDeletes: ['uid-1'] });
    await run(mailboxOf(s), ports);
    expect(ports.ledger.entry('mbx-alice', 'uid-1')?.deletedAt).toBeDefined();
    expect((await ports.ledger.getMailboxState('mbx-alice')).pendingDeletes).toBeUndefined();
  });
});
