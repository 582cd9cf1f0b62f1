/**
 * Certificate pinning: the SHA-256 fingerprints a user trusts for a server, in the form
 * `popdrain check` prints (hex pairs joined by colons; case, colons and a `sha256:` prefix are
 * optional), compared in constant time with the leaf certificate the server presented.
 */
import { timingSafeEqual } from 'node:crypto';

const SHA256_BYTES = 32;

/** The 32 bytes of a fingerprint, or undefined when `text` is not a SHA-256 fingerprint. */
export function parseFingerprint(text: string): Buffer | undefined {
  const hex = text.trim().replace(/^sha-?256[:=]/i, '').replace(/[:\s]/g, '');
  if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== SHA256_BYTES * 2) return undefined;
  return Buffer.from(hex, 'hex');
}

/** The printed form (upper-case hex pairs joined by colons) of 32 fingerprint bytes. */
export function formatFingerprint(bytes: Buffer): string {
  return (bytes.toString('hex').toUpperCase().match(/../g) ?? []).join(':');
}

/**
 * Whether the presented fingerprint (Node's `fingerprint256` form) equals one of the pins.
 * Every pin is compared, each in constant time, so the time taken says nothing of which matched.
 */
export function matchesPin(presented: string | undefined, pins: readonly Buffer[]): boolean {
  const actual = presented === undefined ? undefined : parseFingerprint(presented);
  if (actual === undefined) return false;
  let matched = false;
  for (const pin of pins) {
    if (pin.length === SHA256_BYTES && timingSafeEqual(pin, actual)) matched = true;
  }
  return matched;
}
