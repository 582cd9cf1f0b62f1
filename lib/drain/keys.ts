/**
 * Names derived from (mailbox id, UIDL): store keys and event ids. A UIDL is server-chosen
 * text that may hold `/` or `..`, so it never appears in a key: a digest does.
 */
import { createHash } from 'node:crypto';
import { sha256Hex } from './sha256.js';

const MAILBOX_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Why `id` is not a valid mailbox id, or undefined when it is. */
export function mailboxIdProblem(id: string): string | undefined {
  if (!MAILBOX_ID.test(id)) {
    return 'must be 1-128 characters of letters, digits, ".", "_" or "-", starting with a letter or digit';
  }
  if (id.includes('..')) return 'must not contain ".."';
  return undefined;
}

/**
 * sha256 of `popdrain/v1`, then the kind, the mailbox id and the UIDL each after a NUL, as UTF-8
 * (one string, one call: it runs twice per message).
 */
function digest(kind: string, mailboxId: string, uidl: string): string {
  return sha256Hex(`popdrain/v1\0${kind}\0${mailboxId}\0${uidl}`);
}

/** Hex digest identifying one message of one mailbox. */
export function messageDigest(mailboxId: string, uidl: string): string {
  return digest('message', mailboxId, uidl);
}

/** The store key of a message: `<mailbox id>/<digest>.eml`. Adapters may add a prefix. */
export function messageKey(mailboxId: string, uidl: string): string {
  return messageKeyForDigest(mailboxId, messageDigest(mailboxId, uidl));
}

/** `messageKey` for a digest already computed with `messageDigest`. */
export function messageKeyForDigest(mailboxId: string, messageDigestHex: string): string {
  return `${mailboxId}/${messageDigestHex}.eml`;
}

/** Where asUuid lays out the id (one string made per id, from these bytes). */
const UUID_SCRATCH = Buffer.alloc(36);
const HEX_DIGITS = '0123456789abcdef';
/** For each character of the id: the index of the hex digit it copies, or -1 for a dash. */
const UUID_SOURCE = Int8Array.from([
  0, 1, 2, 3, 4, 5, 6, 7, -1, 8, 9, 10, 11, -1, 12, 13, 14, 15, -1, 16, 17, 18, 19, -1, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
]);

/**
 * RFC 9562 version 8 (custom) layout of the first 32 hex digits, so consumers can store it as
 * a UUID: `xxxxxxxx-xxxx-8xxx-Vxxx-xxxxxxxxxxxx`, the 13th digit replaced by the version 8 and
 * the 17th by the variant (its two low bits kept, 10 on top). Laid out byte by byte: one string
 * per id, not five slices and their concatenation.
 */
export function asUuid(hex: string): string {
  const b = UUID_SCRATCH;
  for (let i = 0; i < 36; i++) {
    const from = UUID_SOURCE[i]!;
    b[i] = from === -1 ? 0x2d : hex.charCodeAt(from);
  }
  b[14] = 0x38; // the version: 8
  b[19] = HEX_DIGITS.charCodeAt((parseInt(hex[16]!, 16) & 0x3) | 0x8);
  return b.toString('latin1', 0, 36);
}

/** The stable id of the `Email Stored` event of a message. */
export function storedEventId(mailboxId: string, uidl: string): string {
  return asUuid(digest('stored', mailboxId, uidl));
}

/** The stable id of the `Email Skipped` event of a message. */
export function skippedEventId(mailboxId: string, uidl: string): string {
  return asUuid(digest('skipped', mailboxId, uidl));
}

/**
 * The id the CLI gives a mailbox when none is configured: readable, from user, host and port,
 * with a short digest so distinct logins never share an id after sanitizing.
 */
export function deriveMailboxId(user: string, host: string, port: number): string {
  const readable = `${user}@${host}-${port}`
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '_')
    .replace(/\.{2,}/g, '.')
    .replace(/^[^a-z0-9]+/, '')
    .slice(0, 100);
  const tag = createHash('sha256').update(`${user}\0${host.toLowerCase()}\0${port}`).digest('hex').slice(0, 8);
  return `${readable || 'mailbox'}-${tag}`;
}
