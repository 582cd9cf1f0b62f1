/**
 * Lying and hostile POP3 servers (issue 10), scripted on loopback with the test server and
 * driven through drainMailbox over in-memory ports: nothing is deleted unless what is stored is
 * what it is, one bad message does not block a mailbox, caps count the bytes received.
 */
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileLedger } from '../../lib/adapters/local/file-ledger.js';
import { FileMessageStore } from '../../lib/adapters/local/file-store.js';
import { drainMailbox, type DrainBudget, type DrainOptions } from '../../lib/drain/drain-mailbox.js';
import { DEFAULT_UIDL_RESET_GUARD, type MailboxConfig } from '../../lib/drain/mailbox.js';
import { respondWith, startPop3Server, type MailboxMessage, type Pop3ServerOptions, type Pop3TestServer } from '../../lib/testing/pop3-server/index.js';
import type { DrainPorts } from '../../lib/drain/ports.js';
import { memoryPorts } from '../support/memory-ports.js';
import { strictJsonProblem } from '../support/strict-json.js';

const servers: Pop3TestServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

const HEADERS = 'From: a@example.com\r\nSubject: same\r\nMessage-ID: <same@example.com>\r\n\r\n';

function mail(body: string): Buffer {
  return Buffer.from(`${HEADERS}${body}\r\n`, 'latin1');
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

function run(mailbox: MailboxConfig, ports: DrainPorts, budget: DrainBudget = {}, options: DrainOptions = {}) {
  return drainMailbox(mailbox, ports, budget, { leaseTtlMs: 60_000, ...options });
}

describe('nothing is deleted unless what is stored is what it is', () => {
  it('without UIDL, a second message with the same headers and size is not deleted under the first one`s id', async () => {
    const first = mail('body A');
    const second = mail('body B'); // same headers, same size, other bytes
    const s = await server([{ bytes: first }, { bytes: second }], { features: { uidl: false } });
    const ports = memoryPorts();
    const r1 = await run(mailboxOf(s), ports, { maxMessages: 1 });
    expect(r1).toMatchObject({ fetched: 1, deleted: 1 });
    expect(s.mailboxes.alice!.filter((m) => m.deleted !== true).map((m) => m.bytes)).toEqual([second]);

    const r2 = await run(mailboxOf(s), ports);
    expect(r2.deleted).toBe(0);
    expect(s.mailboxes.alice!.filter((m) => m.deleted !== true).map((m) => m.bytes)).toEqual([second]);
    expect(r2.failures).toEqual([expect.objectContaining({ code: 'STORE_CONFLICT', uidl: expect.stringMatching(/^~hdr-/) })]);
  });

  it('a reused UIDL listed at another size is not deleted unseen; the stored messages keep their keys', async () => {
    const drop: MailboxMessage[] = [
      { bytes: mail('one'), uid: 'u001' },
      { bytes: mail('two'), uid: 'u002' },
    ];
    const s = await server(drop);
    const ports = memoryPorts();
    expect(await run(mailboxOf(s), ports)).toMatchObject({ fetched: 2, deleted: 2 });
    const stored = ports.ledger.entry('mbx-alice', 'u001')!;
    const newcomer: MailboxMessage = { bytes: mail('a new and larger message that reuses the first UIDL'), uid: 'u001' };
    s.mailboxes.alice!.push(newcomer);

    const r2 = await run(mailboxOf(s), ports);
    expect(r2.deleted).toBe(0);
    expect(newcomer.deleted).not.toBe(true);
    expect(r2.failures).toEqual([expect.objectContaining({ uidl: 'u001', code: 'STORE_CONFLICT', retryable: false })]);
    expect(ports.ledger.entry('mbx-alice', 'u001')).toEqual(stored);
  });

  it('a known UIDL listed at another size whose bytes are those stored is deleted (retrieved and compared)', async () => {
    const bytes = mail('same bytes');
    const s = await server([{ bytes, uid: 'u1' }]);
    const ports = memoryPorts();
    await run(mailboxOf(s, { deletePolicy: { mode: 'keep' } }), ports);
    // A server whose LIST counts differently from what it sends (Dovecot and a missing final newline).
    const entry = ports.ledger.entry('mbx-alice', 'u1')!;
    ports.ledger.entries.set(`mbx-alice\u0000u1`, { ...entry, size: entry.size + 2 });
    const r2 = await run(mailboxOf(s), ports);
    expect(r2.failures).toEqual([]);
    expect(s.mailboxes.alice!.every((m) => m.deleted === true)).toBe(true);
  });
});

describe('one bad message does not block a mailbox', () => {
  const drop = (): MailboxMessage[] => [1, 2, 3, 4].map((i) => ({ bytes: mail(`message ${i}`), uid: `u${i}` }));

  it('a message whose RETR fails for good ([SYS/PERM]) is left, reported under its UIDL, announced once as skipped; the rest drains', async () => {
    const s = await server(drop(), { hooks: respondWith('RETR 2', '-ERR [SYS/PERM] corrupt message file') });
    const ports = memoryPorts();
    const r1 = await run(mailboxOf(s), ports);
    expect(r1).toMatchObject({ fetched: 3, deleted: 3, skipped: 1 });
    expect(r1.failures.map((f) => [f.uidl, f.code])).toEqual([['u2', 'SYS_PERM']]);
    expect(s.mailboxes.alice!.filter((m) => m.deleted !== true).map((m) => m.uid)).toEqual(['u2']);
    const skipped = ports.events.published.filter((e) => e.detailType === 'Email Skipped');
    expect(skipped.map((e) => e.detail)).toEqual([expect.objectContaining({ uidl: 'u2', reason: 'unreadable', error: expect.stringContaining('corrupt message file') })]);

    const r2 = await run(mailboxOf(s), ports);
    expect(r2).toMatchObject({ fetched: 0, stopReason: 'complete' });
    expect(ports.events.published.filter((e) => e.detailType === 'Email Skipped')).toHaveLength(1);
  });

  it('a plain -ERR to one RETR leaves that message for a later run and drains the rest', async () => {
    const s = await server(drop(), { hooks: respondWith('RETR 1', '-ERR try later', { times: 1 }) });
    const ports = memoryPorts();
    const r1 = await run(mailboxOf(s), ports);
    expect(r1).toMatchObject({ fetched: 3, deleted: 3, skipped: 0 });
    expect(r1.failures.map((f) => [f.uidl, f.code])).toEqual([['u1', 'COMMAND_FAILED']]);
    const r2 = await run(mailboxOf(s), ports);
    expect(r2).toMatchObject({ fetched: 1, deleted: 1, failures: [] });
    expect(s.mailboxes.alice!.every((m) => m.deleted === true)).toBe(true);
  });

  it('a RETR refused with [SYS/TEMP] stops the run, and the failure names the UIDL, only that one', async () => {
    const s = await server(drop(), { hooks: respondWith('RETR 3', '-ERR [SYS/TEMP] busy') });
    const ports = memoryPorts();
    const r1 = await run(mailboxOf(s), ports);
    expect(r1.stopReason).toBe('server-error');
    expect(r1.error).toMatchObject({ uidl: 'u3', code: 'SYS_TEMP', phase: 'transaction' });
    expect(r1.failures.filter((f) => f.uidl !== undefined && f.uidl !== 'u3')).toEqual([]);
    expect(s.mailboxes.alice!.filter((m) => m.deleted !== true).map((m) => m.uid)).toEqual(['u3', 'u4']);
  });
});

describe('every event is strict JSON in valid UTF-8', () => {
  it('an encoded word that decodes to a lone surrogate becomes U+FFFD; the event passes a strict parser', async () => {
    const bytes = Buffer.from('From: =?UTF-16BE?B?2D0=?= <a@example.com>\r\nSubject: =?UTF-16BE?B?2D0=?= x\r\n\r\nbody\r\n', 'latin1');
    const s = await server([{ bytes, uid: 'u1' }]);
    const ports = memoryPorts();
    const report = await run(mailboxOf(s), ports);
    expect(report).toMatchObject({ fetched: 1, failures: [] });
    const stored = ports.events.published.filter((e) => e.detailType === 'Email Stored');
    expect(stored).toHaveLength(1);
    expect(JSON.stringify(stored[0]!.detail)).toContain('\ufffd');
    expect(strictJsonProblem(JSON.stringify(stored[0]))).toBeUndefined();
  });

  it('the strict check refuses what jq refuses', () => {
    expect(strictJsonProblem(JSON.stringify({ s: '\ud83d' }))).toBeDefined();
    expect(strictJsonProblem(JSON.stringify({ s: '\ude00' }))).toBeDefined();
    expect(strictJsonProblem(JSON.stringify({ s: '\ud83d\ude00 ok' }))).toBeUndefined();
  });
});

describe('caps hold against the bytes received, not the listing', () => {
  /** LIST lies: every message is listed at `listed` bytes. */
  const lyingList = (count: number, listed: number) =>
    respondWith('LIST', ['+OK', ...Array.from({ length: count }, (_, i) => `${i + 1} ${listed}`), '.']);

  it.each([
    ['streamed past the cap', false, 200_000],
    ['received whole, a little over the listed size', true, 1_300],
    ['received whole then streamed', true, 200_000],
  ])('a message listed under --max-size that sends more (%s) is not stored, not deleted, announced skipped with the size seen', async (_name, put, realSize) => {
    const big = Buffer.concat([Buffer.from(`${HEADERS}`), Buffer.alloc(realSize, 'x'), Buffer.from('\r\n')]);
    const small = mail('small');
    const s = await server([{ bytes: big, uid: 'liar' }, { bytes: small, uid: 'ok' }], { hooks: lyingList(2, 1_000) });
    const ports = memoryPorts({ store: { put } });
    const report = await run(mailboxOf(s, { maxMessageBytes: 1_200 }), ports);
    expect(report).toMatchObject({ fetched: 1, deleted: 1, skipped: 1 });
    expect(report.failures.map((f) => [f.uidl, f.code])).toEqual([['liar', 'LIMIT_EXCEEDED']]);
    expect(s.mailboxes.alice!.filter((m) => m.deleted !== true).map((m) => m.uid)).toEqual(['liar']);
    expect([...ports.store.objects.keys()]).toHaveLength(1);
    const skipped = ports.events.published.filter((e) => e.detailType === 'Email Skipped');
    expect(skipped).toHaveLength(1);
    expect(skipped[0]!.detail).toMatchObject({ uidl: 'liar', reason: 'too-large', limit: 1_200 });
    expect((skipped[0]!.detail as { size: number }).size).toBeGreaterThan(1_200);
  });

  it('the byte budget counts every byte received, of messages cut off at the cap too', async () => {
    const big = (i: number) => Buffer.concat([Buffer.from(HEADERS), Buffer.alloc(100_000, 'a'.charCodeAt(0) + i), Buffer.from('\r\n')]);
    const s = await server([1, 2, 3, 4, 5].map((i) => ({ bytes: big(i), uid: `b${i}` })), { hooks: lyingList(5, 1_000) });
    const ports = memoryPorts({ store: { put: false } });
    const report = await run(mailboxOf(s, { maxMessageBytes: 50_000 }), ports, { maxBytes: 120_000 });
    expect(report).toMatchObject({ stopReason: 'max-bytes', fetched: 0 });
    expect(report.skipped).toBeGreaterThanOrEqual(2);
    expect(report.skipped).toBeLessThan(5);
    expect(s.mailboxes.alice!.every((m) => m.deleted !== true)).toBe(true);
  });
});

describe('announced marks keep up with publishing', () => {
  it('never more than one batch (64) of events is published but not marked announced, however slow the marks', async () => {
    const drop: MailboxMessage[] = Array.from({ length: 400 }, (_, i) => ({ bytes: mail(`m${i}`), uid: `u${i}` }));
    const s = await server(drop);
    const ports = memoryPorts();
    const markAnnounced = ports.ledger.markAnnounced.bind(ports.ledger);
    ports.ledger.markAnnounced = async (mailboxId, uidls, at) => {
      await new Promise((r) => setTimeout(r, 15));
      return markAnnounced(mailboxId, uidls, at);
    };
    let worst = 0;
    const publish = ports.events.publish.bind(ports.events);
    ports.events.publish = async (events) => {
      const unmarked = ports.events.published.filter((e) => ports.ledger.entry('mbx-alice', (e.detail as { uidl: string }).uidl)?.announcedAt === undefined).length;
      // What a kill -9 now would have announced and not marked: the next run announces those again.
      worst = Math.max(worst, unmarked + events.length);
      return publish(events);
    };
    const report = await run(mailboxOf(s, { deletePolicy: { mode: 'keep' } }), ports);
    expect(report).toMatchObject({ fetched: 400, announced: 400 });
    expect(worst).toBeLessThanOrEqual(64);
  });
});

describe('a lost ledger is loud', () => {
  it.each([
    ['deleted', (path: string) => rm(path, { force: true })],
    ['emptied', (path: string) => writeFile(path, '')],
    // Garbage, not a torn tail: random bytes (made of many lines), or one record corrupted in the middle.
    ['filled with garbage', (path: string) => writeFile(path, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 256)))],
    [
      'corrupted in the middle',
      async (path: string) => {
        const data = await readFile(path);
        const second = data.indexOf(0x0a) + 1;
        data[second + 20] = data[second + 20]! ^ 0x01;
        await writeFile(path, data);
      },
    ],
  ])('a local ledger %s while the store holds the mailbox: the run says so and announces nothing again', async (_name, lose) => {
    const dir = await mkdtemp(join(tmpdir(), 'popdrain-lost-ledger-'));
    try {
      const s = await server([1, 2, 3].map((i) => ({ bytes: mail(`m${i}`), uid: `u${i}` })));
      const ports = () => ({ ...memoryPorts(), store: new FileMessageStore({ root: join(dir, 'store') }), ledger: new FileLedger({ dir: join(dir, 'ledger') }) });
      const first = ports();
      const events = first.events;
      expect(await run(mailboxOf(s, { deletePolicy: { mode: 'keep' } }), first)).toMatchObject({ fetched: 3, announced: 3 });
      const ledgerFile = (await readdir(join(dir, 'ledger'))).find((n) => n.endsWith('.ledger'))!;
      await lose(join(dir, 'ledger', ledgerFile));

      const second = { ...ports(), events };
      const report = await run(mailboxOf(s, { deletePolicy: { mode: 'keep' } }), second);
      expect(report.failures).toEqual([expect.objectContaining({ code: 'LEDGER_FAILED', message: expect.stringContaining('ledger was lost') })]);
      expect(events.published.filter((e) => e.detailType === 'Email Stored')).toHaveLength(3);
      // The ledger is rebuilt: a third run knows every message.
      expect(await run(mailboxOf(s, { deletePolicy: { mode: 'keep' } }), { ...ports(), events })).toMatchObject({ fetched: 0, alreadyKnown: 3, failures: [] });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a first run that stored messages but died before its first record is not a lost ledger: the next run announces them', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'popdrain-first-run-'));
    try {
      const s = await server([1, 2, 3].map((i) => ({ bytes: mail(`m${i}`), uid: `u${i}` })));
      const ports = () => ({ ...memoryPorts(), store: new FileMessageStore({ root: join(dir, 'store') }), ledger: new FileLedger({ dir: join(dir, 'ledger') }) });
      // The first run's records never reach the ledger (as if killed between store and record).
      const first = ports();
      const ledger = first.ledger;
      const failing = new Proxy(ledger, {
        get: (target, name, receiver) =>
          name === 'record' ? () => Promise.reject(new Error('killed before the record')) : (Reflect.get(target, name, receiver) as unknown),
      });
      await run(mailboxOf(s, { deletePolicy: { mode: 'keep' } }), { ...first, ledger: failing });
      expect((await readdir(join(dir, 'store'), { recursive: true })).filter((n) => String(n).endsWith('.eml')).length).toBeGreaterThan(0);
      expect(first.events.published.filter((e) => e.detailType === 'Email Stored')).toHaveLength(0);
      expect((await new FileLedger({ dir: join(dir, 'ledger') }).getMailboxState(mailboxOf(s).id)).firstRunStartedAt).toEqual(expect.any(Number));

      const second = ports();
      const report = await run(mailboxOf(s, { deletePolicy: { mode: 'keep' } }), second);
      expect(report.failures).toEqual([]);
      expect(second.events.published.filter((e) => e.detailType === 'Email Stored')).toHaveLength(3);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
