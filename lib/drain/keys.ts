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

/** Where asUuid lays out the id: the hex digest first, then the id from it (one string made per id). */
const UUID_SCRATCH = Buffer.alloc(64 + 36);
const HEX_DIGITS = '0123456789abcdef';

/**
 * RFC 9562 version 8 (custom) layout of the first 32 hex digits, so consumers can store it as
 * a UUID: `xxxxxxxx-xxxx-8xxx-Vxxx-xxxxxxxxxxxx`, the 13th digit replaced by the version 8 and
 * the 17th by the variant (its two low bits kept, 10 on top). Laid out in bytes: one string per
 * id, not five slices and their concatenation.
 */
export function asUuid(hex: string): string {
  const b = UUID_SCRATCH;
  b.write(hex, 0, 32, 'latin1');
  const out = 64;
  b.copy(b, out, 0, 8);
  b[out + 8] = 0x2d; // -
  b.copy(b, out + 9, 8, 12);
  b[out + 13] = 0x2d;
  b[out + 14] = 0x38; // 8
  b.copy(b, out + 15, 13, 16);
  b[out + 18] = 0x2d;
  b[out + 19] = HEX_DIGITS.charCodeAt((parseInt(hex[16]!, 16) & 0x3) | 0x8);
  b.copy(b, out + 20, 17, 20);
  b[out + 23] = 0x2d;
  b.copy(b, out + 24, 20, 32);
  return b.toString('latin1', out, out + 36);
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
