// drainMailbox end to end: a real Dovecot into the local adapters (files, the crash-safe ledger,
// JSON lines). Faults, defective adapters and the scripted server are in drain-local-faults.test.ts;
// the set-up is test/support/drain-local-world.ts.
import { describe, expect, it } from 'vitest';
import { messageKey } from '../../lib/drain/keys.js';
import {
  dovecotMailbox,
  eventsOf,
  servedForm,
  sha256,
  staticCredentials,
  storedFiles,
  testMessage,
} from '../../testkit/fixtures/drain-fixtures.js';
import { validateEventEnvelope } from '../support/event-schema.js';
import { dovecot, newUser, outDir, ports, run, setUpDrainLocalWorld } from '../support/drain-local-world.js';

setUpDrainLocalWorld();

describe('drain into the local adapters', () => {
  it('stores every message byte for byte once, records it, announces it with valid events', async () => {
    const { user, stored } = await newUser(Array.from({ length: 25 }, (_, i) => testMessage(i)));
    const { out, adapters } = await outDir();
    const mailbox = dovecotMailbox(dovecot, user);
    const report = await run(mailbox, ports(adapters));
    expect(report).toMatchObject({ stopReason: 'complete', ok: true, fetched: 25, skipped: 0, deleted: 0, moreRemaining: false, pendingAnnouncements: 0 });
    const files = await storedFiles(out, mailbox.id);
    expect(files.size).toBe(25);
    const expected = new Set(stored.map((m) => sha256(servedForm(m))));
    expect(new Set([...files.values()].map(sha256))).toEqual(expected);
    const events = await eventsOf(out);
    const storedEvents = events.filter((e) => e['detail-type'] === 'Email Stored');
    expect(storedEvents).toHaveLength(25);
    expect(events.filter((e) => e['detail-type'] === 'Mailbox Drained')).toHaveLength(1);
    for (const e of events) expect(validateEventEnvelope(e)).toEqual([]);
    const first = storedEvents.find((e) => (e.detail.metadata as { subject?: string }).subject === 'm 0')!;
    expect(first.detail).toMatchObject({ mailboxId: mailbox.id, storage: { type: 'file' } });
    expect(first.detail.sha256).toBe(sha256(servedForm(stored[0]!)));
    // Keys never contain the UIDL.
    const uidl = first.detail.uidl as string;
    expect((first.detail.storage as { path: string }).path.endsWith(messageKey(mailbox.id, uidl))).toBe(true);
    expect(messageKey(mailbox.id, uidl)).not.toContain(uidl);

    // A rerun fetches nothing; the mailbox is untouched (keep policy).
    const again = await run(mailbox, ports(adapters));
    expect(again).toMatchObject({ stopReason: 'complete', fetched: 0, alreadyKnown: 25, deleted: 0 });
    expect((await dovecot.listMaildir(user)).length).toBe(25);

    // New mail arrives: only it is fetched.
    await dovecot.deliver(user, testMessage(99, 'new'));
    const third = await run(mailbox, ports(adapters));
    expect(third).toMatchObject({ fetched: 1, alreadyKnown: 25 });
    expect((await storedFiles(out, mailbox.id)).size).toBe(26);
  });

  it('stores small messages (received whole) and large ones (streamed) of one mailbox alike, byte for byte', async () => {
    const messages = [
      testMessage(1, 'mixed'),
      testMessage(2, 'mixed-large', 600_000),
      // Served 2 bytes longer than LIST says (Dovecot ends the last line): more than its listed size arrives.
      Buffer.from('Subject: no final newline\n\n.a dot line\nand no newline at the end'),
      testMessage(4, 'mixed'),
    ];
    const { user, stored } = await newUser(messages);
    const { out, adapters } = await outDir();
    const mailbox = dovecotMailbox(dovecot, user, { deletePolicy: { mode: 'delete' } });
    const report = await run(mailbox, ports(adapters));
    expect(report).toMatchObject({ stopReason: 'complete', ok: true, fetched: 4, announced: 4, deleted: 4 });
    const files = await storedFiles(out, mailbox.id);
    expect(new Set([...files.values()].map(sha256))).toEqual(new Set(stored.map((m) => sha256(servedForm(m)))));
    const sizes = (await eventsOf(out)).filter((e) => e['detail-type'] === 'Email Stored').map((e) => e.detail.size as number);
    expect(sizes.sort((a, b) => a - b)).toEqual(stored.map((m) => servedForm(m).length).sort((a, b) => a - b));
  });

  it('delete policy: deletes exactly the stored and announced messages at QUIT', async () => {
    const { user } = await newUser(Array.from({ length: 12 }, (_, i) => testMessage(i, 'del')));
    const { out, adapters } = await outDir();
    const mailbox = dovecotMailbox(dovecot, user, { deletePolicy: { mode: 'delete' } });
    const report = await run(mailbox, ports(adapters));
    expect(report).toMatchObject({ stopReason: 'complete', fetched: 12, deleted: 12 });
    expect(await dovecot.listMaildir(user)).toEqual([]);
    expect((await storedFiles(out, mailbox.id)).size).toBe(12);
    const entries = await adapters.ledger.pending(mailbox.id);
    expect(entries).toEqual([]);
  });

  it('keep-days: deletes only messages first seen long enough ago', async () => {
    const { user } = await newUser(Array.from({ length: 4 }, (_, i) => testMessage(i, 'kd')));
    const { adapters } = await outDir();
    let now = Date.parse('2026-11-01T00:00:00Z');
    const clock = { now: () => now };
    const mailbox = dovecotMailbox(dovecot, user, { deletePolicy: { mode: 'keep-days', days: 3 } });
    expect(await run(mailbox, ports(adapters, { clock }))).toMatchObject({ fetched: 4, deleted: 0 });
    await dovecot.deliver(user, testMessage(10, 'kd-late'));
    now += 2 * 86_400_000;
    expect(await run(mailbox, ports(adapters, { clock }))).toMatchObject({ fetched: 1, deleted: 0 });
    now += 1.5 * 86_400_000; // the first four are 3.5 days old, the fifth 1.5
    expect(await run(mailbox, ports(adapters, { clock }))).toMatchObject({ fetched: 0, deleted: 4 });
    expect((await dovecot.listMaildir(user)).length).toBe(1);
  });

  it('skips messages over the size cap with one Email Skipped event, never fetching or deleting them', async () => {
    const { user } = await newUser([testMessage(1, 'small'), testMessage(2, 'big', 50_000), testMessage(3, 'small')]);
    const { out, adapters } = await outDir();
    const mailbox = dovecotMailbox(dovecot, user, { maxMessageBytes: 10_000, deletePolicy: { mode: 'delete' } });
    const report = await run(mailbox, ports(adapters));
    expect(report).toMatchObject({ stopReason: 'complete', fetched: 2, skipped: 1, deleted: 2, ok: true });
    const skippedEvents = (await eventsOf(out)).filter((e) => e['detail-type'] === 'Email Skipped');
    expect(skippedEvents).toHaveLength(1);
    expect(skippedEvents[0]!.detail).toMatchObject({ reason: 'too-large', limit: 10_000 });
    expect(skippedEvents[0]!.detail.size as number).toBeGreaterThan(50_000);
    // The next run neither fetches nor announces it again.
    const again = await run(mailbox, ports(adapters));
    expect(again).toMatchObject({ fetched: 0, skipped: 0, announced: 0 });
    expect((await eventsOf(out)).filter((e) => e['detail-type'] === 'Email Skipped')).toHaveLength(1);
    expect((await dovecot.listMaildir(user)).length).toBe(1);
  });

  it('stops at its budget (messages, bytes, deadline), QUITs cleanly and says more remains', async () => {
    const { user } = await newUser(Array.from({ length: 30 }, (_, i) => testMessage(i, 'budget', 1000)));
    const { adapters } = await outDir();
    const mailbox = dovecotMailbox(dovecot, user, { deletePolicy: { mode: 'delete' } });
    const r1 = await run(mailbox, ports(adapters), { maxMessages: 10 });
    expect(r1).toMatchObject({ stopReason: 'max-messages', fetched: 10, moreRemaining: true, remaining: 20, deleted: 10, ok: true });
    const r2 = await run(mailbox, ports(adapters), { maxBytes: 5_000 });
    expect(r2.stopReason).toBe('max-bytes');
    expect(r2.fetched).toBeGreaterThanOrEqual(1);
    expect(r2.fetchedBytes).toBeLessThanOrEqual(5_000 + 1_500);
    const r3 = await run(mailbox, ports(adapters), { deadline: Date.now() - 1 });
    expect(r3).toMatchObject({ stopReason: 'deadline', fetched: 0, moreRemaining: true });
    const r4 = await run(mailbox, ports(adapters));
    expect(r4).toMatchObject({ stopReason: 'complete', moreRemaining: false });
    expect(r1.fetched + r2.fetched + r4.fetched).toBe(30);
    expect(await dovecot.listMaildir(user)).toEqual([]);
  });

  it('a graceful stop (signal) finishes what is in flight and QUITs', async () => {
    const { user } = await newUser(Array.from({ length: 40 }, (_, i) => testMessage(i, 'sig', 2000)));
    const { adapters } = await outDir();
    const mailbox = dovecotMailbox(dovecot, user, { deletePolicy: { mode: 'delete' } });
    const controller = new AbortController();
    let seen = 0;
    const report = await run(mailbox, ports(adapters), {}, {
      signal: controller.signal,
      onProgress: (p) => {
        seen = p.fetched;
        if (p.fetched >= 5) controller.abort();
      },
    });
    expect(seen).toBeGreaterThanOrEqual(5);
    expect(report.stopReason).toBe('cancelled');
    expect(report.moreRemaining).toBe(true);
    expect(report.deleted).toBe(report.fetched);
    expect((await dovecot.listMaildir(user)).length).toBe(40 - report.fetched);
  });

  it('two runs never drain one mailbox at once: the second finds it busy', async () => {
    const { user } = await newUser([testMessage(1, 'lease')]);
    const { adapters } = await outDir();
    const mailbox = dovecotMailbox(dovecot, user);
    const lease = await adapters.ledger.acquireLease(mailbox.id, 'someone-else', 60_000, Date.now());
    expect(lease).toBeDefined();
    const report = await run(mailbox, ports(adapters));
    expect(report).toMatchObject({ stopReason: 'busy', retryLater: true, fetched: 0 });
    await adapters.ledger.releaseLease(lease!);
    expect(await run(mailbox, ports(adapters))).toMatchObject({ stopReason: 'complete', fetched: 1 });
  });

  it('a wrong password ends the run as auth-failed, nothing changed', async () => {
    const { user } = await newUser([testMessage(1, 'auth')]);
    const { out, adapters } = await outDir();
    const mailbox = dovecotMailbox(dovecot, user);
    const report = await run(mailbox, ports(adapters, { credentials: staticCredentials({ [user]: 'wrong' }) }));
    expect(report).toMatchObject({ stopReason: 'auth-failed', ok: false, fetched: 0 });
    expect(report.error?.code).toBe('AUTH_FAILED');
    expect(JSON.stringify(report)).not.toContain('wrong"');
    expect((await storedFiles(out, mailbox.id)).size).toBe(0);
  });

  it('dry run lists what would be fetched, skipped and deleted, and changes nothing', async () => {
    const { user } = await newUser([testMessage(1, 'dry'), testMessage(2, 'dry', 20_000)]);
    const { out, adapters } = await outDir();
    const mailbox = dovecotMailbox(dovecot, user, { maxMessageBytes: 10_000 });
    const report = await run(mailbox, ports(adapters), {}, { dryRun: true });
    expect(report.stopReason).toBe('dry-run');
    expect(report.plan?.fetch).toHaveLength(1);
    expect(report.plan?.skip).toHaveLength(1);
    expect((await storedFiles(out, mailbox.id)).size).toBe(0);
    expect(await eventsOf(out)).toEqual([]);
  });

  it('UIDL-reset guard: stops when a drained mailbox suddenly shows only unknown UIDLs, until accepted', async () => {
    const { user } = await newUser(Array.from({ length: 60 }, (_, i) => testMessage(i, 'reset')));
    const { adapters } = await outDir();
    const mailbox = dovecotMailbox(dovecot, user);
    expect(await run(mailbox, ports(adapters))).toMatchObject({ fetched: 60 });
    // The server "resets": the same mail comes back under new UIDLs.
    await dovecot.clearMailbox(user);
    await dovecot.deliverMany(user, Array.from({ length: 60 }, (_, i) => testMessage(i, 'reset')));
    const tripped = await run(mailbox, ports(adapters));
    expect(tripped).toMatchObject({ stopReason: 'uidl-reset-suspected', fetched: 0, ok: false });
    expect((await adapters.ledger.getMailboxState(mailbox.id)).uidlResetTrippedAt).toBeDefined();
    // Still tripped on the next run, until an operator accepts it.
    expect((await run(mailbox, ports(adapters))).stopReason).toBe('uidl-reset-suspected');
    await adapters.ledger.updateMailboxState(mailbox.id, { acceptUidlReset: true });
    expect(await run(mailbox, ports(adapters))).toMatchObject({ stopReason: 'complete', fetched: 60 });
  });
});
