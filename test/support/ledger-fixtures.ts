// Ledger entries and events for the local adapters' tests, derived from (mailbox, UIDL) alone,
// so that a test can rebuild exactly what a child process wrote.
import { createHash } from 'node:crypto';
import type { DrainEvent } from '../../lib/drain/events.js';
import { messageKey, storedEventId } from '../../lib/drain/keys.js';
import type { LedgerEntry } from '../../lib/drain/ports.js';

const BASE_TIME = Date.UTC(2025, 0, 1);

function hash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export function storedEvent(mailboxId: string, uidl: string): DrainEvent {
  const id = storedEventId(mailboxId, uidl);
  const sha256 = hash(uidl);
  const size = 1000 + (parseInt(sha256.slice(0, 4), 16) % 9000);
  const time = new Date(BASE_TIME + (parseInt(sha256.slice(4, 10), 16) % 1_000_000) * 1000).toISOString();
  return {
    id,
    detailType: 'Email Stored',
    time,
    detail: {
      schemaVersion: 1,
      id,
      mailboxId,
      uidl,
      storage: { type: 'file', path: `/out/${messageKey(mailboxId, uidl)}` },
      size,
      sha256,
      storedAt: time,
      metadata: {
        messageId: `<${sha256.slice(0, 16)}@example.test>`,
        date: time,
        from: [{ name: 'Zoë Ünïcode', address: 'zoe@example.test' }],
        to: [{ address: 'inbox@example.test' }],
        subject: `Quarterly report ${uidl} — “quoted” ✓`,
        attachments: [{ filename: 'report.pdf', contentType: 'application/pdf', size: 12_345 }],
      },
    },
  };
}

export function storedEntry(mailboxId: string, uidl: string): LedgerEntry {
  const event = storedEvent(mailboxId, uidl);
  if (event.detailType !== 'Email Stored') throw new Error('unreachable');
  return {
    mailboxId,
    uidl,
    status: 'stored',
    key: messageKey(mailboxId, uidl),
    sha256: event.detail.sha256,
    size: event.detail.size,
    firstSeenAt: Date.parse(event.time),
    event,
  };
}
