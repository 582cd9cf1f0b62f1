/**
 * SASLprep (RFC 4013) for SCRAM passwords and user names, as far as it matters in practice:
 * non-ASCII spaces become U+0020, characters "commonly mapped to nothing" are removed, the
 * result is NFKC-normalized, and control characters are refused. Pure-ASCII printable input
 * (nearly every real password) passes unchanged.
 */
import { SaslError } from './mechanism.js';

// RFC 3454 C.1.2 (non-ASCII space characters).
const NON_ASCII_SPACE = /[\u00a0\u1680\u2000-\u200b\u202f\u205f\u3000]/g;
// RFC 3454 B.1 (commonly mapped to nothing).
const MAPPED_TO_NOTHING = /[\u00ad\u034f\u1806\u180b-\u180d\u200c\u200d\u2060\ufe00-\ufe0f\ufeff]/g;
// RFC 3454 C.2 control characters (ASCII and non-ASCII) and C.3 private use, C.9 tagging.
const PROHIBITED = /[\u0000-\u001f\u007f-\u009f\u06dd\u070f\u180e\u200e\u200f\u2028-\u202e\u2060-\u2063\u206a-\u206f\ufeff\ufff9-\ufffc\ue000-\uf8ff]/;

export function saslprep(input: string): string {
  if (/^[\x20-\x7e]*$/.test(input)) return input;
  const mapped = input.replace(NON_ASCII_SPACE, ' ').replace(MAPPED_TO_NOTHING, '').normalize('NFKC');
  if (PROHIBITED.test(mapped)) throw new SaslError('user name or password contains characters SASLprep prohibits (control or private-use characters)');
  return mapped;
}
