// drainMailbox end to end into the local adapters (files, the crash-safe ledger, JSON lines), when
// something goes wrong: faults of the store and the event sink, a defective ledger, deletions
// that cannot be recorded after QUIT, and the scripted server for what Dovecot won't do. The
// set-up is test/support/drain-local-world.ts.
import { afterEach, describe, expect, it } from 'vitest';
import type { MailboxConfig } from '../../lib/drain/mailbox.js';
import type { EventSink, MessageStore } from '../../lib/drain/ports.js';
import { dovecotMailbox, eventsOf, servedForm, sha256, storedFiles, testMessage } from '../../testkit/fixtures/drain-fixtures.js';
import { validateEventEnvelope } from '../support/event-schema.js';
import { disconnectMidBody, rejectLogin, startPop3Server, type Pop3TestServer } from '../support/script-server.js';
import { dovecot, newUser, outDir, PASSWORD, passwords, ports, run, setUpDrainLocalWorld } from '../support/drain-local-world.js';

setUpDrainLocalWorld();

describe('faults keep every message', () => {
  it('a store failure leaves the message on the server and unrecorded; the next run stores it', async () => {
    const { user, stored } = await newUser(Array.from({ length: 6 }, (_, i) => testMessage(i, 'sf')));
    const { out, adapters } = await outDir();
    const mailbox = dovecotMailbox(dovecot, user, { deletePolicy: { mode: 'delete' } });
    let calls = 0;
    const flaky: MessageStore = {
      refFor: (k) => adapters.store.refFor(k),
      open: async (key, info) => {
        const writer = await adapters.store.open(key, info);
        calls += 1;
        if (calls === 3) {
          return {
            stream: writer.stream,
            commit: async () => {
              await writer.abort();
              throw new (await import('../../lib/drain/errors.js')).DrainError('STORE_FAILED', 'disk on fire', { phase: 'store', retryable: true });
            },
            abort: () => writer.abort(),
          };
        }
        return writer;
      },
    };
    const r1 = await run(mailbox, ports(adapters, { store: flaky }));
    expect(r1.fetched).toBe(6);
    expect(r1.failures.map((f) => f.code)).toEqual(['STORE_FAILED']);
    expect(r1.deleted).toBe(5);
    expect((await dovecot.listMaildir(user)).length).toBe(1);
    const r2 = await run(mailbox, ports(adapters));
    expect(r2).toMatchObject({ fetched: 1, deleted: 1, ok: true });
    const files = await storedFiles(out, mailbox.id);
    expect(new Set([...files.values()].map(sha256))).toEqual(new Set(stored.map((m) => sha256(servedForm(m)))));
  });

  it('events that cannot be published leave messages stored-not-announced and undeleted; the next run announces them', async () => {
    const { user } = await newUser(Array.from({ length: 5 }, (_, i) => testMessage(i, 'ev')));
    const { out, adapters } = await outDir();
    const mailbox = dovecotMailbox(dovecot, user, { deletePolicy: { mode: 'delete' } });
    const down: EventSink = { publish: async (events) => ({ published: [], failed: events.map((e) => ({ id: e.id, reason: 'bus down' })) }) };
    const r1 = await run(mailbox, ports(adapters, { events: down }));
    expect(r1).toMatchObject({ fetched: 5, announced: 0, deleted: 0, pendingAnnouncements: 5 });
    expect(r1.failures.every((f) => f.code === 'EVENTS_FAILED')).toBe(true);
    expect((await adapters.ledger.pending(mailbox.id)).length).toBe(5);
    expect((await dovecot.listMaildir(user)).length).toBe(5);
    const r2 = await run(mailbox, ports(adapters));
    expect(r2).toMatchObject({ fetched: 0, reannounced: 5, announced: 5, deleted: 5, ok: true });
    const ids = (await eventsOf(out)).filter((e) => e['detail-type'] === 'Email Stored').map((e) => e.id);
    expect(ids).toHaveLength(5);
    expect(await dovecot.listMaildir(user)).toEqual([]);
  });
});

describe('a defective adapter neither hangs nor crashes the run', () => {
  it('a ledger that answers a batch with too few results: the run ends, reports it, deletes nothing; the next run completes', async () => {
    const { user, stored } = await newUser(Array.from({ length: 8 }, (_, i) => testMessage(i, 'defect')));
    const { out, adapters } = await outDir();
    const mailbox = dovecotMailbox(dovecot, user, { deletePolicy: { mode: 'delete' } });
    const real = adapters.ledger;
    // Records the entries but loses the last result of every batch: the engine reads an
    // outcome that is not there (a defect of the adapter, not a failure it reports).
    const lossy = new Proxy(real, {
      get(target, prop, receiver) {
        if (prop === 'record') {
          return async (entries: Parameters<typeof real.record>[0]) => (await target.record(entries)).slice(0, -1);
        }
        const value = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const r1 = await run(mailbox, ports(adapters, { ledger: lossy }));
    expect(r1.ok).toBe(false);
    expect(r1.failures.some((f) => f.code === 'INTERNAL_ERROR' && f.phase === 'ledger')).toBe(true);
    expect(r1.deleted).toBeLessThan(8);
    // Whatever was not announced is still on the server.
    expect((await dovecot.listMaildir(user)).length).toBe(8 - r1.deleted);
    const r2 = await run(mailbox, ports(adapters));
    expect(r2.ok).toBe(true);
    expect(await dovecot.listMaildir(user)).toEqual([]);
    const files = await storedFiles(out, mailbox.id);
    expect(files.size).toBe(8);
    expect(new Set([...files.values()].map(sha256))).toEqual(new Set(stored.map((m) => sha256(servedForm(m)))));
    const ids = (await eventsOf(out)).filter((e) => e['detail-type'] === 'Email Stored').map((e) => e.id);
    expect(new Set(ids).size).toBe(8);
  });
});

describe('deletions recorded even when the run dies after QUIT', () => {
  it('a run that cannot record its deletions leaves them noted; the next run records them (so entries expire)', async () => {
    const { user } = await newUser(Array.from({ length: 4 }, (_, i) => testMessage(i, 'pd')));
    const { adapters } = await outDir();
    const mailbox = dovecotMailbox(dovecot, user, { deletePolicy: { mode: 'delete' } });
    const ledger = adapters.ledger;
    const failingMarkDeleted = Object.create(ledger) as typeof ledger;
    failingMarkDeleted.markDeleted = async () => {
      throw new (await import('../../lib/drain/errors.js')).DrainError('LEDGER_FAILED', 'power cut', { phase: 'ledger', retryable: true });
    };
    const r1 = await run(mailbox, ports(adapters, { ledger: failingMarkDeleted }));
    expect(r1.fetched).toBe(4);
    expect(await dovecot.listMaildir(user)).toEqual([]); // QUIT went through
    expect((await ledger.getMailboxState(mailbox.id)).pendingDeletes).toHaveLength(4);
    const before = await ledger.lookup(mailbox.id, [...(await ledger.getMailboxState(mailbox.id)).pendingDeletes!]);
    expect([...before.values()].every((e) => e.deletedAt === undefined)).toBe(true);
    await run(mailbox, ports(adapters));
    const state = await ledger.getMailboxState(mailbox.id);
    expect(state.pendingDeletes).toBeUndefined();
    const after = await ledger.lookup(mailbox.id, [...before.keys()]);
    expect([...after.values()].every((e) => e.deletedAt !== undefined && e.expiresAt !== undefined)).toBe(true);
  });
});

describe('deletions recorded even when the run dies after QUIT, with an earlier run\'s deletions pending too', () => {
  it('settling the earlier deletions does not drop this run\'s, when recording this run\'s fails', async () => {
    const { user } = await newUser(Array.from({ length: 2 }, (_, i) => testMessage(i, 'pd2a')));
    const { adapters } = await outDir();
    const mailbox = dovecotMailbox(dovecot, user, { deletePolicy: { mode: 'delete' } });
    const ledger = adapters.ledger;
    const { DrainError } = await import('../../lib/drain/errors.js');
    let calls = 0;
    // markDeleted fails on the listed calls (1-based, counted over all runs).
    const failing = (failOn: number[]): typeof ledger => {
      const l = Object.create(ledger) as typeof ledger;
      l.markDeleted = async (...args: Parameters<typeof ledger.markDeleted>) => {
        calls += 1;
        if (failOn.includes(calls)) throw new DrainError('LEDGER_FAILED', 'power cut', { phase: 'ledger', retryable: true });
        return ledger.markDeleted(...args);
      };
      return l;
    };
    // Run 1 deletes two messages and cannot record it: they stay pending.
    await run(mailbox, ports(adapters, { ledger: failing([1]) }));
    const first = (await ledger.getMailboxState(mailbox.id)).pendingDeletes!;
    expect(first).toHaveLength(2);
    // Run 2 records run 1's deletions (call 2), deletes two new messages, and cannot record those (call 3).
    await dovecot.deliverMany(user, Array.from({ length: 2 }, (_, i) => testMessage(i, 'pd2b')));
    const r2 = await run(mailbox, ports(adapters, { ledger: failing([3]) }));
    expect(r2.deleted).toBe(2);
    const second = (await ledger.getMailboxState(mailbox.id)).pendingDeletes;
    expect(second).toHaveLength(2);
    expect(second!.some((u) => first.includes(u))).toBe(false);
    // Run 3 records them: every entry of the four deleted messages has deletedAt and expiresAt.
    await run(mailbox, ports(adapters));
    expect((await ledger.getMailboxState(mailbox.id)).pendingDeletes).toBeUndefined();
    const entries = await ledger.lookup(mailbox.id, [...first, ...second!]);
    expect(entries.size).toBe(4);
    expect([...entries.values()].every((e) => e.deletedAt !== undefined && e.expiresAt !== undefined)).toBe(true);
  });
});

describe('against the scripted server', () => {
  let server: Pop3TestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  function scriptedMailbox(s: Pop3TestServer, extra: Partial<MailboxConfig> = {}): MailboxConfig {
    return { ...dovecotMailbox(dovecot, 'jane'), id: 'scripted', host: s.host, port: s.port, tls: 'insecure-plaintext', tlsOptions: undefined, ...extra } as MailboxConfig;
  }

  const crlf = (i: number): Buffer => Buffer.from(testMessage(i, 'sc').toString('latin1').replace(/\n/g, '\r\n'), 'latin1');

  it('an oversized message whose Email Skipped event failed is announced again next run, and never deleted', async () => {
    const big = Buffer.from(`Subject: big\r\n\r\n${'x'.repeat(20_000)}\r\n`);
    server = await startPop3Server({
      users: { jane: { password: PASSWORD } },
      mailboxes: { jane: [{ bytes: big, uid: 'big1' }, { bytes: crlf(1), uid: 's1' }] },
    });
    const { out, adapters } = await outDir();
    passwords.jane = PASSWORD;
    let failSkipped = true;
    const flaky: EventSink = {
      publish: async (events) => {
        if (!failSkipped) return adapters.events.publish(events);
        const skipped = events.filter((e) => e.detailType === 'Email Skipped');
        const rest = await adapters.events.publish(events.filter((e) => e.detailType !== 'Email Skipped'));
        return { published: rest.published, failed: [...rest.failed, ...skipped.map((e) => ({ id: e.id, reason: 'bus down' }))] };
      },
    };
    const mailbox = scriptedMailbox(server, { deletePolicy: { mode: 'delete' }, maxMessageBytes: 1_000 });
    const r1 = await run(mailbox, ports(adapters, { events: flaky }));
    expect(r1).toMatchObject({ skipped: 1, fetched: 1, deleted: 1 });
    expect(server.mailboxes.jane!.filter((m) => m.deleted !== true).map((m) => m.uid)).toEqual(['big1']);
    failSkipped = false;
    const r2 = await run(mailbox, ports(adapters));
    expect(r2).toMatchObject({ reannounced: 1, deleted: 0 });
    // Never stored, so never deleted: it stays on the server for a person (or a larger cap).
    expect(server.mailboxes.jane!.filter((m) => m.deleted !== true).map((m) => m.uid)).toEqual(['big1']);
    const skippedEvents = (await eventsOf(out)).filter((e) => e['detail-type'] === 'Email Skipped');
    expect(skippedEvents).toHaveLength(1);
    await server.close();
    server = undefined;
  });

  it('messages sharing one UIDL are left on the server and reported; the rest of the mailbox drains, run after run', async () => {
    server = await startPop3Server({
      users: { jane: { password: PASSWORD } },
      mailboxes: { jane: [{ bytes: crlf(1), uid: 'dup' }, { bytes: crlf(2), uid: 'x' }, { bytes: crlf(3), uid: 'dup' }] },
    });
    const { adapters } = await outDir();
    passwords.jane = PASSWORD;
    const mailbox = scriptedMailbox(server, { deletePolicy: { mode: 'delete' } });
    for (let i = 0; i < 2; i++) {
      const r = await run(mailbox, ports(adapters));
      expect(r.stopReason).toBe('complete');
      expect(r.failures.map((f) => [f.code, f.phase])).toEqual([
        ['PROTOCOL_ERROR', 'list'],
        ['PROTOCOL_ERROR', 'list'],
      ]);
      expect(r.failures[0]!.message).toMatch(/UIDL "dup" for 2 messages; left on the server/);
      // The first run stores and deletes "x"; neither run touches the two "dup" messages.
      expect([r.fetched, r.deleted]).toEqual(i === 0 ? [1, 1] : [0, 0]);
    }
    expect(server.mailboxes.jane!.filter((m) => m.deleted !== true).map((m) => m.uid)).toEqual(['dup', 'dup']);
    await server.close();
    server = undefined;
  });

  it('a UIDL with bytes outside printable ASCII is escaped (%XX), not a reason to refuse the mailbox', async () => {
    server = await startPop3Server({
      users: { jane: { password: PASSWORD } },
      mailboxes: { jane: [{ bytes: crlf(1), uid: 'café' }, { bytes: crlf(2), uid: 'ok1' }] },
    });
    const { out, adapters } = await outDir();
    passwords.jane = PASSWORD;
    const mailbox = scriptedMailbox(server);
    const r1 = await run(mailbox, ports(adapters));
    expect(r1).toMatchObject({ stopReason: 'complete', fetched: 2, ok: true });
    const uidls = (await eventsOf(out)).filter((e) => e['detail-type'] === 'Email Stored').map((e) => (e.detail as { uidl: string }).uidl);
    expect(uidls.sort()).toEqual(['caf%C3%A9', 'ok1']);
    for (const e of await eventsOf(out)) expect(validateEventEnvelope(e)).toEqual([]);
    // The same bytes give the same id next time: nothing is fetched again.
    const r2 = await run(mailbox, ports(adapters));
    expect(r2).toMatchObject({ fetched: 0, alreadyKnown: 2 });
    await server.close();
    server = undefined;
  });

  it('[IN-USE] and [LOGIN-DELAY] end the run as retry-later, not as failures', async () => {
    for (const code of ['IN-USE', 'LOGIN-DELAY'] as const) {
      server = await startPop3Server({ users: { jane: { password: PASSWORD } }, mailboxes: { jane: [{ bytes: crlf(1) }] }, hooks: rejectLogin(code) });
      const { adapters } = await outDir();
      passwords.jane = PASSWORD;
      const report = await run(scriptedMailbox(server), ports(adapters));
      expect(report.stopReason).toBe(code === 'IN-USE' ? 'in-use' : 'login-delay');
      expect(report.retryLater).toBe(true);
      expect(report.error).toBeUndefined();
      await server.close();
      server = undefined;
    }
  });

  it('a disconnect mid-drain keeps what was stored, deletes nothing, and a rerun completes', async () => {
    const messages = Array.from({ length: 8 }, (_, i) => ({ bytes: crlf(i), uid: `u${i}` }));
    const expected = new Set(messages.map((m) => sha256(m.bytes)));
    server = await startPop3Server({
      users: { jane: { password: PASSWORD } },
      mailboxes: { jane: messages },
      hooks: disconnectMidBody(30, { message: 5, times: 1 }),
    });
    passwords.jane = PASSWORD;
    const { out, adapters } = await outDir();
    const mailbox = scriptedMailbox(server, { deletePolicy: { mode: 'delete' } });
    const r1 = await run(mailbox, ports(adapters));
    expect(r1.stopReason).toBe('connection-lost');
    expect(r1.fetched).toBe(4);
    expect(r1.error?.retryable).toBe(true);
    expect(server.mailboxes.jane).toHaveLength(8); // no QUIT: nothing deleted
    const r2 = await run(mailbox, ports(adapters));
    expect(r2).toMatchObject({ stopReason: 'complete', fetched: 4, deleted: 8 });
    expect(server.mailboxes.jane).toHaveLength(0);
    const files = await storedFiles(out, mailbox.id);
    expect(new Set([...files.values()].map(sha256))).toEqual(expected);
  });

  it('identifies messages by header digest on a server without UIDL', async () => {
    const messages = [{ bytes: crlf(1) }, { bytes: crlf(2) }, { bytes: crlf(1) }]; // two identical
    server = await startPop3Server({ users: { jane: { password: PASSWORD } }, mailboxes: { jane: messages }, features: { uidl: false } });
    passwords.jane = PASSWORD;
    const { out, adapters } = await outDir();
    const mailbox = scriptedMailbox(server);
    const r1 = await run(mailbox, ports(adapters));
    expect(r1).toMatchObject({ uidlSupported: false, fetched: 3, stopReason: 'complete' });
    expect((await storedFiles(out, mailbox.id)).size).toBe(3);
    const r2 = await run(mailbox, ports(adapters));
    expect(r2).toMatchObject({ fetched: 0, alreadyKnown: 3 });
  });
});
