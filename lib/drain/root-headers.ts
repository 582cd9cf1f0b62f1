/**
 * The root header block of a message read into the fields of its metadata (Message-ID, Date,
 * From, To, Cc, Subject), each cut to its limit, and whether the root is a single inline text
 * part (then the body holds nothing for the metadata and is not read).
 */
import { clip, parseAddressList } from './address-list.js';
import type { EmailAddress } from './events.js';
import { fieldNames, type HeaderBlock, type HeaderField } from './header-block.js';
import { parseMailDate } from './mail-date.js';
import { mailLibraries } from './mail-libraries.js';
import {
  MAX_ADDRESS_CHARS,
  MAX_ADDRESSES_PER_LIST,
  MAX_MESSAGE_ID_CHARS,
  MAX_NAME_CHARS,
  MAX_SUBJECT_CHARS,
  truncationBit,
} from './metadata-limits.js';
import { safely } from './read-safely.js';

export interface HeaderFields {
  messageId?: string;
  date?: string;
  from?: EmailAddress[];
  to?: EmailAddress[];
  cc?: EmailAddress[];
  subject?: string;
}

/** The root header fields read; the first of each, but every To and Cc, as mailparser reads them. */
export const ROOT_FIELDS = fieldNames([
  'message-id',
  'date',
  'from',
  'to',
  'cc',
  'subject',
  'content-type',
  'content-disposition',
]);

/**
 * A Content-Type (trimmed) that makes the root a single inline text part whatever else the
 * message says (no name parameter, nothing mailsplit could read differently). Other types,
 * however ordinary, go through the Splitter, which decides as mailparser would. No two
 * quantifiers here can match the same whitespace: a hostile value cannot make it backtrack.
 */
const SIMPLE_TEXT_TYPE =
  /^text\/(?:plain|html)(?:\s*;\s*(?:charset|format|delsp|reply-type)\s*=\s*(?:"[^"\\]*"|[^\s;"()\\]+))*\s*;?$/i;
const NON_ASCII = /[^\x00-\x7f]/;
const FOLD = /\r?\n[ \t]*|\r[ \t]*/g;

const ADDRESS_LIMITS = {
  maxAddresses: MAX_ADDRESSES_PER_LIST,
  maxNameChars: MAX_NAME_CHARS,
  maxAddressChars: MAX_ADDRESS_CHARS,
};

export interface RootHeaders {
  fields: HeaderFields;
  /** TRUNCATABLE_FIELDS bits of the fields that were cut. */
  truncated: number;
  /** The root is one inline text part: the body holds nothing for the metadata. */
  singleTextPart: boolean;
}

/** Throws LIBRARIES_NOT_LOADED when a field needs a library that is not loaded yet. */
export function readRootHeaders(block: HeaderBlock): RootHeaders {
  const bytes = block.bytes;
  const text = bytes.toString('latin1');
  const fields: HeaderFields = {};
  let truncated = 0;
  let messageId: HeaderField | undefined;
  let date: HeaderField | undefined;
  let from: HeaderField | undefined;
  let subject: HeaderField | undefined;
  let contentType: HeaderField | undefined;
  let disposition: HeaderField | undefined;
  let to: string[] | undefined;
  let cc: string[] | undefined;
  for (const field of block.fields) {
    switch (field.name) {
      case 'message-id':
        messageId ??= field;
        break;
      case 'date':
        date ??= field;
        break;
      case 'from':
        from ??= field;
        break;
      case 'to':
        (to ??= []).push(headerValue(text, bytes, field));
        break;
      case 'cc':
        (cc ??= []).push(headerValue(text, bytes, field));
        break;
      case 'subject':
        subject ??= field;
        break;
      case 'content-type':
        contentType ??= field;
        break;
      case 'content-disposition':
        disposition ??= field;
        break;
    }
  }

  if (messageId) {
    const id = normalizeMessageId(headerValue(text, bytes, messageId));
    if (id !== undefined) {
      if (id.length > MAX_MESSAGE_ID_CHARS) truncated |= truncationBit('messageId');
      fields.messageId = clip(id, MAX_MESSAGE_ID_CHARS);
    }
  }
  if (date) {
    const iso = safeMailDate(headerValue(text, bytes, date));
    if (iso) fields.date = iso;
  }
  if (from) {
    const parsed = safeAddressList([headerValue(text, bytes, from)]);
    if (parsed?.truncated) truncated |= truncationBit('from');
    if (parsed?.list) fields.from = parsed.list;
  }
  if (to) {
    const parsed = safeAddressList(to);
    if (parsed?.truncated) truncated |= truncationBit('to');
    if (parsed?.list) fields.to = parsed.list;
  }
  if (cc) {
    const parsed = safeAddressList(cc);
    if (parsed?.truncated) truncated |= truncationBit('cc');
    if (parsed?.list) fields.cc = parsed.list;
  }
  if (subject) {
    const raw = headerValue(text, bytes, subject);
    if (raw) {
      const decoded = raw.includes('=?') ? decodeWords(raw) : raw;
      if (decoded.length > MAX_SUBJECT_CHARS) truncated |= truncationBit('subject');
      fields.subject = clip(decoded, MAX_SUBJECT_CHARS);
    }
  }

  const type = contentType ? headerValue(text, bytes, contentType) : '';
  const disp = disposition ? headerValue(text, bytes, disposition) : '';
  const singleTextPart = (!disp || /^inline$/i.test(disp)) && (!type || SIMPLE_TEXT_TYPE.test(type));
  return { fields, truncated, singleTextPart };
}

/** `safely(() => parseMailDate(value))`, without a closure per message. */
function safeMailDate(value: string): string | undefined {
  try {
    return parseMailDate(value);
  } catch (error) {
    return rethrowIfNotLoaded(error);
  }
}

/** `safely(() => parseAddressList(values, ADDRESS_LIMITS))`, without a closure per message. */
function safeAddressList(values: readonly string[]): ReturnType<typeof parseAddressList> | undefined {
  try {
    return parseAddressList(values, ADDRESS_LIMITS);
  } catch (error) {
    return rethrowIfNotLoaded(error);
  }
}

/** As `safely`: LIBRARIES_NOT_LOADED goes through, anything else leaves the field out. */
function rethrowIfNotLoaded(error: unknown): undefined {
  return safely(() => {
    throw error;
  });
}

/**
 * A header field's value, unfolded and trimmed, read as mailsplit reads header lines: the
 * bytes as UTF-8 when they are valid UTF-8, else as Latin-1 (raw 8-bit headers mostly are).
 * `text` is the whole block as Latin-1 (one byte, one character).
 */
function headerValue(text: string, bytes: Buffer, field: HeaderField): string {
  // What trim() would leave of ASCII text, found before slicing: a one-line ASCII value (most
  // are) costs one string, not a slice with its line end, an unfolded copy and a trimmed one.
  let start = text.indexOf(':', field.start) + 1;
  let end = field.end;
  while (start < end && isAsciiSpace(text.charCodeAt(start))) start++;
  while (end > start && isAsciiSpace(text.charCodeAt(end - 1))) end--;
  const inner = text.slice(start, end);
  if (NON_ASCII.test(inner)) return decodedHeaderValue(text, bytes, field);
  // The folds are inside: each becomes one space between two other characters.
  return inner.includes('\n') || inner.includes('\r') ? inner.replace(FOLD, ' ') : inner;
}

/** Whitespace and line ends as trim() sees them, of the ASCII range (tab, LF, VT, FF, CR, space). */
function isAsciiSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

/** headerValue of a value with non-ASCII bytes (or characters trim() removes, like NBSP). */
function decodedHeaderValue(text: string, bytes: Buffer, field: HeaderField): string {
  let value = text.slice(text.indexOf(':', field.start) + 1, field.end);
  if (NON_ASCII.test(value)) {
    const utf8 = bytes.toString('utf8', field.start, field.end);
    if (!utf8.includes('\uFFFD')) value = utf8.slice(utf8.indexOf(':') + 1);
  }
  if (value.includes('\n') || value.includes('\r')) value = value.replace(FOLD, ' ');
  return value.trim();
}

/** RFC 2047 encoded words decoded (any charset libmime knows); the text as is if that fails. */
function decodeWords(text: string): string {
  const { libmime } = mailLibraries();
  try {
    return libmime.decodeWords(text);
  } catch {
    return text;
  }
}

/** The first `<...>` of the value, or the whole value in angle brackets (mailparser's form). */
function normalizeMessageId(value: string): string | undefined {
  if (!value) return undefined;
  const bracketed = /<[^<>]+>/.exec(value);
  if (bracketed) return bracketed[0];
  const bare = value.replace(/^<+|>+$/g, '').trim();
  return bare ? `<${bare}>` : undefined;
}
