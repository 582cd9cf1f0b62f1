// When the metadata of a message cannot be read at all (here: the mail libraries fail to load),
// the drain still stores and announces the message, reports METADATA_FAILED, and leaves no
// promise rejection unhandled, whether the store is slow, fails, or succeeds at once.
// The scripted POP3 server runs in process on loopback; readMetadata is replaced for this file.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

vi.mock('../../lib/drain/metadata.js', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../lib/drain/metadata.js')>()),
  readMetadata: () => Promise.reject(new Error('cannot load the mail libraries')),
}));

const { createLocalAdapters } = await import('../../lib/adapters/local/index.js');
const { drainMailbox } = await import('../../lib/drain/drain-mailbox.js');
const { DrainError } = await import('../../lib/drain/errors.js');
const { DEFAULT_UIDL_RESET_GUARD } = await import('../../lib/drain/mailbox.js');
const { startPop3Server } = await import('../support/script-server.js');
const { eventsOf, staticCredentials } = await import('../../testkit/fixtures/drain-fixtures.js');
type MailboxConfig = import('../../lib/drain/mailbox.js').MailboxConfig;
type MessageStore = import('../../lib/drain/ports.js').MessageStore;

const PASSWORD = 'metadata-failure-password';
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};
beforeAll(() => {
  process.on('unhandledRejection', onUnhandled);
});
afterAll(() => {
  process.off('unhandledRejection', onUnhandled);
});
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function message(i: number): Buffer {
  return Buffer.from(`From: a${i}@example.com\r\nTo: b@example.com\r\nSubject: m${i}\r\nMessage-ID: <m${i}@example.com>\r\n\r\nbody ${i}\r\n`);
}

async function setUp(count: number) {
  const server = await startPop3Server({
    users: { jane: { password: PASSWORD } },
    mailboxes: { jane: Array.from({ length: count }, (_, i) => ({ bytes: message(i), uid: `u${i}` })) },
  });
  const out = await mkdtemp(join(tmpdir(), 'popdrain-metadata-failure-'));
  const adapters = createLocalAdapters({ out });
  cleanups.push(async () => {
    await adapters.close();
    await server.close();
    await rm(out, { recursive: true, force: true });
  });
  const mailbox: MailboxConfig = {
    id: 'metadata-failure',
    host: server.host,
    port: server.port,
    tls: 'insecure-plaintext',
    user: 'jane',
    secret: { type: 'env', variable: 'UNUSED' },
    mechanism: 'auto',
    deletePolicy: { mode: 'delete' },
    uidlResetGuard: DEFAULT_UIDL_RESET_GUARD,
  };
  return { server, out, adapters, mailbox, credentials: staticCredentials({ jane: PASSWORD }) };
}

const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 50));

describe('metadata that cannot be read', () => {
  it('a slow store: every message stored and announced with metadataError, METADATA_FAILED reported, nothing unhandled', async () => {
    const { out, adapters, mailbox, credentials } = await setUp(5);
    const slow: MessageStore = {
      refFor: (key) => adapters.store.refFor(key),
      open: (key, info) => adapters.store.open(key, info),
      put: async (key, info, chunks, summary) => {
        await new Promise((resolve) => setTimeout(resolve, 20));
        return adapters.store.put!(key, info, chunks, summary);
      },
    };
    const report = await drainMailbox(mailbox, { store: slow, ledger: adapters.ledger, events: adapters.events, credentials }, {}, { leaseTtlMs: 10_000 });
    await settle();
    expect(unhandled).toEqual([]);
    expect(report).toMatchObject({ fetched: 5, announced: 5, deleted: 5 });
    expect(report.failures.map((f) => f.code)).toEqual(Array(5).fill('METADATA_FAILED'));
    const stored = (await eventsOf(out)).filter((e) => e['detail-type'] === 'Email Stored');
    expect(stored).toHaveLength(5);
    for (const e of stored) expect((e.detail as { metadataError?: string }).metadataError).toContain('cannot load the mail libraries');
  });

  it('a store that fails: STORE_FAILED reported, nothing deleted, nothing unhandled', async () => {
    const { server, adapters, mailbox, credentials } = await setUp(3);
    const failing: MessageStore = {
      refFor: (key) => adapters.store.refFor(key),
      open: () => Promise.reject(new DrainError('STORE_FAILED', 'disk on fire', { phase: 'store', retryable: true })),
      put: () => Promise.reject(new DrainError('STORE_FAILED', 'disk on fire', { phase: 'store', retryable: true })),
    };
    const report = await drainMailbox(mailbox, { store: failing, ledger: adapters.ledger, events: adapters.events, credentials }, {}, { leaseTtlMs: 10_000 });
    await settle();
    expect(unhandled).toEqual([]);
    expect(report).toMatchObject({ announced: 0, deleted: 0 });
    expect(report.failures.some((f) => f.code === 'STORE_FAILED')).toBe(true);
    expect(server.mailboxes.jane!.filter((m) => m.deleted !== true)).toHaveLength(3);
  });
});
