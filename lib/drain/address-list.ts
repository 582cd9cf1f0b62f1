/**
 * Address header values (From, To, Cc) as a flat list of `{ name?, address? }`: groups are
 * flattened, RFC 2047 encoded words in names decoded (any charset libmime knows), addresses
 * kept as written. Parsing is nodemailer's addressparser, the one mailparser uses; the common
 * shapes (`a@b`, `Name <a@b>`, `"Name" <a@b>`, and comma lists of those) take a shortcut that
 * gives the same result several times faster, without loading the libraries at all
 * (test/unit/metadata.test.ts checks they agree). Anything else needs mailLibraries(), which
 * throws LIBRARIES_NOT_LOADED until they are loaded.
 */
import type { EmailAddress } from './events.js';
import { mailLibraries } from './mail-libraries.js';

export interface AddressListLimits {
  maxAddresses: number;
  maxNameChars: number;
  maxAddressChars: number;
}

export interface AddressList {
  /** Undefined when the values hold no address at all (absent, empty, `undisclosed:;`). */
  list: EmailAddress[] | undefined;
  /** Some entry was shortened or left out to respect the limits. */
  truncated: boolean;
}

interface RawAddress {
  name: string;
  address: string;
}

const ATOM = "A-Za-z0-9!#$%&'*+/^_`{|}~.\\-";
/** A plain local@domain: no quotes, comments, brackets, `=` or `?` (nothing to decode). */
const ADDR_SPEC = `[${ATOM}]+@[A-Za-z0-9.\\-]+`;
const BARE = new RegExp(`^${ADDR_SPEC}$`);
/** `Words like these <a@b>` or `"Quoted" <a@b>`, single spaces only. */
const NAMED = new RegExp(`^(?:"([^"\\\\\\r\\n]*)"|([${ATOM}=?]+(?: [${ATOM}=?]+)*)) <(${ADDR_SPEC})>$`);
const ENCODED_WORD = /=\?[^?]+\?[bq]\?[^?]*\?=/i;

/** Parse the values of one address header (each occurrence of it, in order). */
export function parseAddressList(values: readonly string[], limits: AddressListLimits): AddressList {
  const list: EmailAddress[] = [];
  let truncated = false;
  outer: for (const value of values) {
    const parsed = parseValue(value);
    for (const item of parsed) {
      const entry: EmailAddress = {};
      const name = item.name ? decodeName(item.name) : '';
      if (name) {
        if (name.length > limits.maxNameChars) truncated = true;
        entry.name = clip(name, limits.maxNameChars);
      }
      const address = readAddressSpec(item.address);
      if (address) {
        if (address.length > limits.maxAddressChars) truncated = true;
        entry.address = clip(address, limits.maxAddressChars);
      }
      if (entry.name === undefined && entry.address === undefined) continue;
      if (list.length === limits.maxAddresses) {
        truncated = true;
        break outer;
      }
      list.push(entry);
    }
  }
  return { list: list.length > 0 ? list : undefined, truncated };
}

/** addressparser's mailboxes (groups flattened), through the shortcut when the value allows. */
export function parseValue(value: string): RawAddress[] {
  const fast = parseSimple(value);
  if (fast) return fast;
  const { addressparser } = mailLibraries();
  try {
    return addressparser(value, { flatten: true });
  } catch {
    return [];
  }
}

/** The shortcut: undefined unless every comma-separated piece is one of the plain shapes. */
export function parseSimple(value: string): RawAddress[] | undefined {
  const trimmed = value.trim();
  if (!trimmed) return [];
  if (!trimmed.includes(',')) {
    const one = parseOne(trimmed);
    return one ? [one] : undefined;
  }
  // Split at the commas outside quoted names (the shapes allow no escapes inside quotes).
  const out: RawAddress[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i <= trimmed.length; i++) {
    const c = trimmed.charCodeAt(i);
    if (c === 0x22) quoted = !quoted;
    else if ((c === 0x2c && !quoted) || i === trimmed.length) {
      const one = parseOne(trimmed.slice(start, i).trim());
      if (!one) return undefined;
      out.push(one);
      start = i + 1;
    }
  }
  return out;
}

function parseOne(text: string): RawAddress | undefined {
  if (BARE.test(text)) return { name: '', address: text };
  const m = NAMED.exec(text);
  if (!m) return undefined;
  return { name: (m[1] ?? m[2] ?? '').trim(), address: m[3]! };
}

function decodeName(name: string): string {
  if (!name.includes('=?')) return name.trim();
  const { libmime } = mailLibraries();
  try {
    return libmime.decodeWords(name).trim();
  } catch {
    return name.trim();
  }
}

/**
 * The address as written (an internationalized domain stays in its ASCII form, the one every
 * server accepts). RFC 2047 keeps encoded words out of addresses; one that hides in it counts
 * only if it decodes to a plain local@domain, so an encoded word cannot smuggle in an address.
 */
function readAddressSpec(address: string): string {
  const value = address.trim();
  if (!value || !ENCODED_WORD.test(value)) return value;
  const { libmime } = mailLibraries();
  let decoded: string;
  try {
    decoded = libmime.decodeWords(value);
  } catch {
    return '';
  }
  return /^[^\s@]+@[^\s@]+$/.test(decoded) && !decoded.includes('=?') ? decoded : '';
}

/** Cut to at most `max` UTF-16 units without splitting a surrogate pair. */
export function clip(value: string, max: number): string {
  if (value.length <= max) return value;
  let end = max;
  const last = value.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return value.slice(0, end);
}
