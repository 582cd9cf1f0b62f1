/**
 * The limits on the `metadata` of an `Email Stored` event, and the fields `truncated` can name.
 * schemas/popdrain-events.schema.json states the same numbers.
 */

/** Default cap on the root header block kept for parsing (`maxHeaderBytes`). */
export const DEFAULT_MAX_HEADER_BYTES = 256 * 1024;
/** The smallest `maxHeaderBytes` accepted. */
export const MIN_MAX_HEADER_BYTES = 1024;
export const MAX_SUBJECT_CHARS = 1000;
/** RFC 5322's line limit; a real Message-ID is far shorter. */
export const MAX_MESSAGE_ID_CHARS = 998;
export const MAX_NAME_CHARS = 320;
export const MAX_ADDRESS_CHARS = 320;
export const MAX_ADDRESSES_PER_LIST = 100;
export const MAX_ATTACHMENTS = 100;
export const MAX_FILENAME_CHARS = 255;
export const MAX_CONTENT_TYPE_CHARS = 255;
/**
 * The metadata as JSON (UTF-8) never exceeds this, half of an EventBridge entry. The limits
 * per field alone do not ensure it: 3 lists of 100 addresses of 2 x 320 characters are
 * 192,000 characters, and a control character takes 6 bytes in JSON. Past it, entries are
 * dropped from the end of the longest list.
 */
export const MAX_METADATA_JSON_BYTES = 128 * 1024;
/** MIME parts nested deeper than this end the structure walk (`truncated: ["attachments"]`). */
export const MAX_MIME_DEPTH = 32;
/** MIME parts (containers included) walked at most, as mailsplit's `maxChildNodes`. */
export const MAX_MIME_PARTS = 20_000;

/** What `truncated` can name, in the order it lists them. */
export const TRUNCATABLE_FIELDS = ['headers', 'messageId', 'subject', 'from', 'to', 'cc', 'attachments'] as const;
export type TruncatedField = (typeof TRUNCATABLE_FIELDS)[number];

/** The bit of `field` in a set of truncated fields (bit i: TRUNCATABLE_FIELDS[i]). */
export function truncationBit(field: TruncatedField): number {
  return 1 << TRUNCATABLE_FIELDS.indexOf(field);
}
