/**
 * The metadata assembled from the fields read, the attachments found and what was cut, within
 * its JSON size budget (MAX_METADATA_JSON_BYTES).
 */
import type { AttachmentSummary, MessageMetadata } from './events.js';
import { MAX_METADATA_JSON_BYTES, TRUNCATABLE_FIELDS, truncationBit } from './metadata-limits.js';
import type { HeaderFields } from './root-headers.js';

export function buildMetadata(fields: HeaderFields, attachments: AttachmentSummary[], truncatedBits: number): MessageMetadata {
  const metadata = {} as MessageMetadata;
  if (fields.messageId !== undefined) metadata.messageId = fields.messageId;
  if (fields.date !== undefined) metadata.date = fields.date;
  if (fields.from !== undefined) metadata.from = fields.from;
  if (fields.to !== undefined) metadata.to = fields.to;
  if (fields.cc !== undefined) metadata.cc = fields.cc;
  if (fields.subject !== undefined) metadata.subject = fields.subject;
  metadata.attachments = attachments;
  const bits = truncatedBits | fitJsonBudget(metadata);
  if (bits !== 0) metadata.truncated = TRUNCATABLE_FIELDS.filter((_, i) => (bits & (1 << i)) !== 0);
  return metadata;
}

type ListField = 'from' | 'to' | 'cc' | 'attachments';
const LIST_FIELDS: readonly ListField[] = ['from', 'to', 'cc', 'attachments'];
/** Room kept for `truncated` and the JSON punctuation not counted per entry. */
const JSON_SLACK_BYTES = 512;

/**
 * Drop entries from the end of the longest list until the JSON fits MAX_METADATA_JSON_BYTES.
 * Returns the truncation bits of the lists it shortened.
 */
function fitJsonBudget(metadata: MessageMetadata): number {
  // Cheap bound first: no character takes more than 6 bytes in JSON (a \u escape), no entry
  // more than 64 bytes of keys and punctuation. Ordinary mail ends here.
  let chars = (metadata.messageId?.length ?? 0) + (metadata.subject?.length ?? 0) + 32;
  let entries = 0;
  for (const list of [metadata.from, metadata.to, metadata.cc]) {
    if (!list) continue;
    entries += list.length;
    for (const a of list) chars += (a.name?.length ?? 0) + (a.address?.length ?? 0);
  }
  entries += metadata.attachments.length;
  for (const a of metadata.attachments) chars += (a.filename?.length ?? 0) + a.contentType.length;
  if (chars * 6 + entries * 64 + JSON_SLACK_BYTES <= MAX_METADATA_JSON_BYTES) return 0;

  const sizes = new Map<ListField, number[]>();
  const totals = new Map<ListField, number>();
  let total = jsonBytes({ ...metadata, from: [], to: [], cc: [], attachments: [] }) + JSON_SLACK_BYTES;
  for (const field of LIST_FIELDS) {
    const each = ((metadata[field] ?? []) as object[]).map((entry) => jsonBytes(entry) + 1);
    const sum = each.reduce((a, b) => a + b, 0);
    sizes.set(field, each);
    totals.set(field, sum);
    total += sum;
  }
  let bits = 0;
  while (total > MAX_METADATA_JSON_BYTES) {
    let longest: ListField | undefined;
    for (const field of LIST_FIELDS) {
      if (sizes.get(field)!.length > 0 && (longest === undefined || totals.get(field)! > totals.get(longest)!)) longest = field;
    }
    if (longest === undefined) break; // cannot happen: subject and Message-ID alone stay far below
    const dropped = sizes.get(longest)!.pop()!;
    totals.set(longest, totals.get(longest)! - dropped);
    total -= dropped;
    metadata[longest]!.pop();
    bits |= truncationBit(longest);
  }
  for (const field of ['from', 'to', 'cc'] as const) if (metadata[field]?.length === 0) delete metadata[field];
  return bits;
}

function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value), 'utf8');
}
