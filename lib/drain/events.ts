/**
 * The events popdrain emits, as a subscriber receives them: `source: "popdrain"`, a
 * detail-type, and a detail whose shape is versioned (`schemaVersion`) and documented as JSON
 * Schema in schemas/popdrain-events.schema.json. Ids are stable: the same message always
 * gets the same `id`, however often it is announced.
 */
import type { StoreRef } from './ports.js';
import type { StopReason } from './report.js';

export const EVENT_SOURCE = 'popdrain';
export const EVENT_SCHEMA_VERSION = 1;

export type DetailType = 'Email Stored' | 'Email Skipped' | 'Mailbox Drained';

export interface EmailAddress {
  name?: string;
  address?: string;
}

export interface AttachmentSummary {
  filename?: string;
  contentType: string;
  /** Decoded size in bytes (after base64/quoted-printable). */
  size: number;
}

/** What the event says about the message itself (from its headers and MIME structure). */
export interface MessageMetadata {
  messageId?: string;
  /** ISO 8601, when the Date header parses. */
  date?: string;
  from?: EmailAddress[];
  to?: EmailAddress[];
  cc?: EmailAddress[];
  subject?: string;
  attachments: AttachmentSummary[];
  /** Names of fields that were shortened or cut to keep the event within its size limit. */
  truncated?: string[];
}

export interface EmailStoredDetail {
  schemaVersion: 1;
  id: string;
  mailboxId: string;
  uidl: string;
  storage: StoreRef;
  size: number;
  sha256: string;
  /** ISO 8601: when popdrain stored the message. */
  storedAt: string;
  metadata: MessageMetadata;
  /** Set when the metadata could not be extracted; the message itself is stored intact. */
  metadataError?: string;
}

export interface EmailSkippedDetail {
  schemaVersion: 1;
  id: string;
  mailboxId: string;
  uidl: string;
  /** `too-large`: over the size cap; `unreadable`: the server refused its RETR for good. */
  reason: 'too-large' | 'unreadable';
  /** Size the server reported (LIST), or the bytes received when it sent more than the cap. */
  size: number;
  /** The configured cap it exceeded (too-large only). */
  limit?: number;
  /** The server's answer (unreadable only). */
  error?: string;
  /** ISO 8601: when popdrain first saw it. */
  seenAt: string;
}

export interface MailboxDrainedDetail {
  schemaVersion: 1;
  /** The run id. */
  id: string;
  mailboxId: string;
  stopReason: StopReason;
  moreRemaining: boolean;
  serverMessages: number;
  fetched: number;
  fetchedBytes: number;
  skipped: number;
  deleted: number;
  announced: number;
  failures: number;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
}

export type DrainEvent =
  | { id: string; detailType: 'Email Stored'; time: string; detail: EmailStoredDetail }
  | { id: string; detailType: 'Email Skipped'; time: string; detail: EmailSkippedDetail }
  | { id: string; detailType: 'Mailbox Drained'; time: string; detail: MailboxDrainedDetail };

/** The envelope a subscriber sees (EventBridge's `source`, `detail-type`, `detail`). */
export interface EventEnvelope {
  source: typeof EVENT_SOURCE;
  'detail-type': DetailType;
  time: string;
  detail: DrainEvent['detail'];
}

export function toEnvelope(event: DrainEvent): EventEnvelope {
  return { source: EVENT_SOURCE, 'detail-type': event.detailType, time: event.time, detail: event.detail };
}

/**
 * The JSON text of details written once and still to be written as an envelope: a new
 * message's event goes first into its ledger entry, then to the event file (or the bus), and
 * its detail is serialized once for both. Details are values: nothing changes one after it
 * was made. The envelope takes the text out, so the map only ever holds details in between.
 */
const detailTexts = new WeakMap<object, string>();

/** `JSON.stringify(event)`; the detail's text is kept for its envelope (envelopeJson). */
export function eventJson(event: DrainEvent): string {
  let detail = detailTexts.get(event.detail);
  if (detail === undefined) {
    detail = JSON.stringify(event.detail);
    detailTexts.set(event.detail, detail);
  }
  return `{"id":${JSON.stringify(event.id)},"detailType":${JSON.stringify(event.detailType)},"time":${JSON.stringify(event.time)},"detail":${detail}}`;
}

/** `JSON.stringify(detail)` for the event's envelope: the text eventJson kept (taken out), else made now. */
export function detailJson(detail: DrainEvent['detail']): string {
  const kept = detailTexts.get(detail);
  if (kept === undefined) return JSON.stringify(detail);
  detailTexts.delete(detail);
  return kept;
}

/** `JSON.stringify({ id: event.id, ...toEnvelope(event) })`, the detail's text from detailJson. */
export function envelopeJson(event: DrainEvent): string {
  return `{"id":${JSON.stringify(event.id)},"source":"${EVENT_SOURCE}","detail-type":${JSON.stringify(event.detailType)},"time":${JSON.stringify(event.time)},"detail":${detailJson(event.detail)}}`;
}

/**
 * EventBridge's limit for one PutEvents entry is 256 KiB (detail, detail-type, source, ...).
 * Our details stay far below it by construction (metadata.ts truncates fields); this bound is
 * what the sinks check before sending.
 */
export const MAX_EVENT_ENTRY_BYTES = 256 * 1024;
