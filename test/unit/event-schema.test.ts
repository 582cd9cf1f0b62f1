import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  toEnvelope,
  type DrainEvent,
  type EmailSkippedDetail,
  type EmailStoredDetail,
  type MailboxDrainedDetail,
  type MessageMetadata,
} from '../../lib/drain/events.js';
import { skippedEventId, storedEventId, messageKey } from '../../lib/drain/keys.js';
import * as limits from '../../lib/drain/metadata.js';
import { createMetadataExtractor } from '../../lib/drain/metadata.js';
import { EVENT_SCHEMA_PATH, validateEventEnvelope } from '../support/event-schema.js';
import { CORPUS, OVER_LIMITS, simpleText } from '../../testkit/fixtures/mail-corpus.js';

const TIME = '2026-11-26T12:00:01.250Z';

function stored(metadata: MessageMetadata = simpleText.expected!): EmailStoredDetail {
  return {
    schemaVersion: 1,
    id: storedEventId('support', '000001a4.5f3e2d1c'),
    mailboxId: 'support',
    uidl: '000001a4.5f3e2d1c',
    storage: { type: 's3', bucket: 'mail-archive', key: `prefix/${messageKey('support', '000001a4.5f3e2d1c')}`, versionId: '3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY' },
    size: 48213,
    sha256: '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
    storedAt: TIME,
    metadata,
  };
}

function skipped(): EmailSkippedDetail {
  return {
    schemaVersion: 1,
    id: skippedEventId('support', '000001a5'),
    mailboxId: 'support',
    uidl: '000001a5',
    reason: 'too-large',
    size: 73_400_320,
    limit: 52_428_800,
    seenAt: TIME,
  };
}

function drained(): MailboxDrainedDetail {
  return {
    schemaVersion: 1,
    id: '3b7c6f0e-9d2a-4c1b-8e5f-0a1b2c3d4e5f',
    mailboxId: 'support',
    stopReason: 'complete',
    moreRemaining: false,
    serverMessages: 12,
    fetched: 11,
    fetchedBytes: 1_048_576,
    skipped: 1,
    deleted: 11,
    announced: 12,
    failures: 0,
    startedAt: '2026-11-26T12:00:00.000Z',
    finishedAt: '2026-11-26T12:00:03.500Z',
    durationMs: 3500,
  };
}

function envelope(event: DrainEvent): unknown {
  return JSON.parse(JSON.stringify(toEnvelope(event)));
}

const storedEnvelope = (detail: unknown): unknown => ({ source: 'popdrain', 'detail-type': 'Email Stored', time: TIME, detail });

async function metadataOf(message: Buffer, options?: { maxHeaderBytes?: number }): Promise<MessageMetadata> {
  const extractor = createMetadataExtractor(options);
  extractor.stream.end(message);
  return extractor.result();
}

describe('the event schema accepts', () => {
  it('each detail type, as toEnvelope() makes it', () => {
    const events: DrainEvent[] = [
      { id: stored().id, detailType: 'Email Stored', time: TIME, detail: stored() },
      { id: stored().id, detailType: 'Email Stored', time: TIME, detail: { ...stored(), storage: { type: 'file', path: '/var/mail/support/x.eml' } } },
      { id: stored().id, detailType: 'Email Stored', time: TIME, detail: { ...stored(), storage: { type: 'mda', program: 'procmail', key: messageKey('support', '000001a4.5f3e2d1c') } } },
      { id: stored().id, detailType: 'Email Stored', time: TIME, detail: { ...stored({ attachments: [] }), metadataError: 'mailsplit: boom' } },
      { id: skipped().id, detailType: 'Email Skipped', time: TIME, detail: skipped() },
      { id: drained().id, detailType: 'Mailbox Drained', time: TIME, detail: drained() },
    ];
    for (const event of events) expect(validateEventEnvelope(envelope(event)), event.detailType).toEqual([]);
  });

  it('the fields EventBridge adds to the envelope', () => {
    const delivered = {
      version: '0',
      id: '6a7e8feb-b491-4cf7-a9f1-bf3703467718',
      'detail-type': 'Mailbox Drained',
      source: 'popdrain',
      account: '111122223333',
      time: '2026-11-26T12:00:03Z',
      region: 'eu-west-1',
      resources: [],
      detail: drained(),
    };
    expect(validateEventEnvelope(delivered)).toEqual([]);
  });

  it('its own examples', () => {
    const schema = JSON.parse(readFileSync(EVENT_SCHEMA_PATH, 'utf8')) as { $defs: Record<string, { examples?: unknown[] }> };
    const types: Array<[string, string]> = [
      ['Email Stored', 'EmailStoredDetail'],
      ['Email Skipped', 'EmailSkippedDetail'],
      ['Mailbox Drained', 'MailboxDrainedDetail'],
    ];
    for (const [detailType, def] of types) {
      const examples = schema.$defs[def]?.examples ?? [];
      expect(examples.length, def).toBeGreaterThan(0);
      for (const detail of examples) expect(validateEventEnvelope({ source: 'popdrain', 'detail-type': detailType, time: TIME, detail })).toEqual([]);
    }
  });

  it('an Email Stored detail built from every metadata test case', async () => {
    for (const entry of [...CORPUS, ...OVER_LIMITS]) {
      const metadata = await metadataOf(entry.message, entry.options);
      expect(validateEventEnvelope(storedEnvelope(stored(metadata))), entry.name).toEqual([]);
    }
  });
});

describe('the event schema documents', () => {
  it('the limits the extractor applies', () => {
    const schema = JSON.parse(readFileSync(EVENT_SCHEMA_PATH, 'utf8')) as { $defs: Record<string, any> };
    const { MessageMetadata, EmailAddress, AddressList, AttachmentSummary } = schema.$defs;
    expect(MessageMetadata.properties.subject.maxLength).toBe(limits.MAX_SUBJECT_CHARS);
    expect(MessageMetadata.properties.messageId.maxLength).toBe(limits.MAX_MESSAGE_ID_CHARS);
    expect(MessageMetadata.properties.attachments.maxItems).toBe(limits.MAX_ATTACHMENTS);
    expect(MessageMetadata.properties.truncated.items.enum).toEqual([...limits.TRUNCATABLE_FIELDS]);
    expect(AddressList.maxItems).toBe(limits.MAX_ADDRESSES_PER_LIST);
    expect(EmailAddress.properties.name.maxLength).toBe(limits.MAX_NAME_CHARS);
    expect(EmailAddress.properties.address.maxLength).toBe(limits.MAX_ADDRESS_CHARS);
    expect(AttachmentSummary.properties.filename.maxLength).toBe(limits.MAX_FILENAME_CHARS);
    expect(AttachmentSummary.properties.contentType.maxLength).toBe(limits.MAX_CONTENT_TYPE_CHARS);
  });
});

describe('the event schema refuses', () => {
  const cases: Array<[string, (e: Record<string, any>) => void]> = [
    ['a missing id', (e) => delete e.detail.id],
    ['an id that is no stable event id', (e) => (e.detail.id = 'abc')],
    ['schemaVersion 2', (e) => (e.detail.schemaVersion = 2)],
    ['schemaVersion as a string', (e) => (e.detail.schemaVersion = '1')],
    ['s3 storage without a bucket', (e) => delete e.detail.storage.bucket],
    ['s3 storage with a path', (e) => (e.detail.storage.path = '/x.eml')],
    ['file storage with a bucket', (e) => (e.detail.storage = { type: 'file', path: '/x.eml', bucket: 'b' })],
    ['mda storage without a program', (e) => (e.detail.storage = { type: 'mda', key: 'support/x.eml' })],
    ['mda storage with a path', (e) => (e.detail.storage = { type: 'mda', program: 'procmail', key: 'support/x.eml', path: '/x' })],
    ['another storage type', (e) => (e.detail.storage = { type: 'gcs', bucket: 'b', key: 'k' })],
    ['an extra property in the detail', (e) => (e.detail.extra = 1)],
    ['an extra property in the metadata', (e) => (e.detail.metadata.headers = {})],
    ['an extra property in an address', (e) => (e.detail.metadata.from[0].group = 'x')],
    ['an empty address', (e) => (e.detail.metadata.from[0] = {})],
    ['an extra property in an attachment', (e) => (e.detail.metadata.attachments = [{ contentType: 'a/b', size: 1, data: 'x' }])],
    ['an attachment without a size', (e) => (e.detail.metadata.attachments = [{ contentType: 'a/b' }])],
    ['a negative size', (e) => (e.detail.size = -1)],
    ['a fractional size', (e) => (e.detail.size = 1.5)],
    ['metadata without attachments', (e) => delete e.detail.metadata.attachments],
    ['a subject over 1,000 characters', (e) => (e.detail.metadata.subject = 's'.repeat(1001))],
    ['101 addresses', (e) => (e.detail.metadata.to = Array.from({ length: 101 }, () => ({ address: 'a@b' })))],
    ['an unknown truncated name', (e) => (e.detail.metadata.truncated = ['body'])],
    ['a date that is no date', (e) => (e.detail.metadata.date = 'Thu, 26 Nov 2026 12:00:00 +0000')],
    ['an upper-case sha256', (e) => (e.detail.sha256 = e.detail.sha256.toUpperCase())],
    ['a mailbox id with ".."', (e) => (e.detail.mailboxId = 'a..b')],
    ['a UIDL with a space', (e) => (e.detail.uidl = 'a b')],
    ['another source', (e) => (e.source = 'aws.s3')],
    ['an unknown detail-type', (e) => (e['detail-type'] = 'Email Deleted')],
    ['a missing time', (e) => delete e.time],
    ['the detail of another type', (e) => (e.detail = drained())],
  ];
  for (const [name, spoil] of cases) {
    it(name, () => {
      const event = JSON.parse(JSON.stringify(storedEnvelope(stored()))) as Record<string, any>;
      spoil(event);
      expect(validateEventEnvelope(event)).not.toEqual([]);
    });
  }

  it('an Email Skipped or Mailbox Drained detail with a field missing or extra', () => {
    const skip = { source: 'popdrain', 'detail-type': 'Email Skipped', time: TIME, detail: { ...skipped(), reason: 'too-old' } };
    expect(validateEventEnvelope(skip)).not.toEqual([]);
    const { durationMs: _omitted, ...partial } = drained();
    expect(validateEventEnvelope({ source: 'popdrain', 'detail-type': 'Mailbox Drained', time: TIME, detail: partial })).not.toEqual([]);
    expect(
      validateEventEnvelope({ source: 'popdrain', 'detail-type': 'Mailbox Drained', time: TIME, detail: { ...drained(), knownOnServer: 3 } }),
    ).not.toEqual([]);
  });
});
