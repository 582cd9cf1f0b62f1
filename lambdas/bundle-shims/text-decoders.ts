/**
 * Charset decoding on Node's built-in `TextDecoder` (ICU), for the Lambda bundles: the shims
 * beside this file stand in for iconv-lite and encoding-japanese there (see
 * infra/constructs/lambda-bundle.ts), which saves some 570 KiB of tables per bundle.
 *
 * Names resolve as iconv-lite resolves them (case and punctuation do not matter), decoding
 * follows iconv-lite where Node's decoder differs from it: single-byte charsets decode through
 * a table made from ICU's with iconv-lite's differences (singleByteTable: Node 20 decodes
 * windows-1252 as ISO-8859-1, undefined code page bytes are U+FFFD); FIXES for ICU's Shift_JIS;
 * UTF-16 and UTF-32 without a byte order read a BOM or guess from the first 100 characters
 * (iconv-lite's rule); UTF-32 is decoded here, Node has no decoder for it.
 */

/** An incremental decoder, shaped like iconv-lite's. */
export interface ChunkDecoder {
  write(chunk: Uint8Array): string;
  end(): string | undefined;
}

/** One resolved charset: the same object for every name of it. */
export interface Charset {
  readonly name: string;
  createDecoder(): ChunkDecoder;
}

/** iconv-lite's canonical form of a name. */
export function canonicalName(name: string): string {
  return String(name)
    .toLowerCase()
    .replace(/:\d{4}$|[^0-9a-z]/g, '');
}

/** WHATWG labels for canonical names that are not labels themselves. */
function labelCandidates(name: string, canonical: string): string[] {
  const rewritten = canonical
    .replace(/^(?:windows|cp|win)(12\d\d|874)$/, 'windows-$1')
    .replace(/^iso8859(\d+)$/, 'iso-8859-$1')
    .replace(/^(?:shiftjis|sjis|mskanji|windows31j|cp932)$/, 'shift_jis')
    .replace(/^(?:eucjp)$/, 'euc-jp')
    .replace(/^(?:euckr|cp949|ksc56011987)$/, 'euc-kr')
    .replace(/^iso2022jp$/, 'iso-2022-jp')
    .replace(/^koi8([ru])$/, 'koi8-$1')
    .replace(/^utf16(le|be)$/, 'utf-16$1')
    .replace(/^ucs2$/, 'utf-16le')
    .replace(/^utf8$/, 'utf-8');
  return [name.trim(), canonical, rewritten];
}

/** The single-byte charsets of the WHATWG encoding standard, which ICU decodes. */
const SINGLE_BYTE = /^(?:ibm866|iso-8859-\d+(?:-i)?|koi8-[ru]|macintosh|windows-\d+|x-mac-cyrillic)$/;

/** windows-1252's 0x80-0x9F as iconv-lite maps them (U+FFFD where the code page has no character). */
const WINDOWS_1252_HIGH = [
  0x20ac, 0xfffd, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0xfffd, 0x017d, 0xfffd,
  0xfffd, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0xfffd, 0x017e, 0x0178,
];

/** Single bytes where iconv-lite's table differs from ICU's, beyond the rule in singleByteTable. */
const SINGLE_BYTE_OVERRIDES: Record<string, Record<number, number>> = {
  'windows-1253': { 0xaa: 0xfffd },
  'windows-1255': { 0xca: 0x05ba },
  macintosh: { 0xbd: 0x2126, 0xdb: 0x00a4, 0xf0: 0xfffd }, // iconv-lite has Mac OS Roman before the euro
  ibm866: { 0x1a: 0x1a, 0x1c: 0x1c, 0x7f: 0x7f }, // ICU swaps these controls (IBM's mapping)
};

/**
 * The 256 characters of a single-byte charset: ICU's, except that a byte a windows code page
 * leaves undefined is U+FFFD as in iconv-lite (ICU gives the C1 control or a private-use
 * character of it), and Node 20's windows-1252 (decoded as ISO-8859-1) takes the table above.
 */
function singleByteTable(encoding: string): Uint16Array {
  const table = new Uint16Array(256);
  const text = new TextDecoder(encoding).decode(Uint8Array.from({ length: 256 }, (_, i) => i));
  for (let byte = 0; byte < 256; byte++) {
    let code = text.charCodeAt(byte);
    if (encoding.startsWith('windows-') && ((code >= 0x80 && code < 0xa0) || (code >= 0xe000 && code < 0xf900))) code = 0xfffd;
    if (encoding === 'windows-1252' && byte >= 0x80 && byte < 0xa0) code = WINDOWS_1252_HIGH[byte - 0x80]!;
    table[byte] = SINGLE_BYTE_OVERRIDES[encoding]?.[byte] ?? code;
  }
  return table;
}

function singleByte(table: Uint16Array): ChunkDecoder {
  return {
    write(chunk) {
      let out = '';
      for (const byte of chunk) out += String.fromCharCode(table[byte]!);
      return out;
    },
    end: () => undefined,
  };
}

function textDecoder(label: string, fix: (text: string) => string = (text) => text): ChunkDecoder {
  const decoder = new TextDecoder(label);
  return {
    write: (chunk) => fix(decoder.decode(chunk, { stream: true })),
    end: () => fix(decoder.decode()) || undefined,
  };
}

/**
 * ICU's Shift_JIS swaps 0x1A, 0x1C and 0x7F (IBM's control mapping); iconv-lite does not. The
 * fix acts on characters only those single bytes decode to.
 */
const FIXES: Record<string, (text: string) => string> = {
  shift_jis: (text) => text.replace(/[\x1a\x1c\x7f]/g, (c) => ({ '\x1c': '\x1a', '\x7f': '\x1c', '\x1a': '\x7f' })[c]!),
};

/** UTF-32 (Node has no decoder): whole code units, the rest waits; an invalid unit is U+FFFD. */
function utf32(bigEndian: boolean): ChunkDecoder {
  let rest = new Uint8Array(0);
  let first = true;
  const decode = (bytes: Uint8Array): string => {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let out = '';
    for (let i = 0; i + 4 <= bytes.length; i += 4) {
      const code = view.getUint32(i, !bigEndian);
      if (first && code === 0xfeff) {
        first = false;
        continue;
      }
      first = false;
      out += code > 0x10ffff || (code >= 0xd800 && code < 0xe000) ? '\ufffd' : String.fromCodePoint(code);
    }
    return out;
  };
  return {
    write(chunk) {
      const bytes = concat(rest, chunk);
      const whole = bytes.length - (bytes.length % 4);
      rest = bytes.slice(whole);
      return decode(bytes.subarray(0, whole));
    },
    end() {
      const tail = rest.length > 0 ? '\ufffd' : '';
      rest = new Uint8Array(0);
      return tail || undefined;
    },
  };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** iconv-lite's byte-order guess for UTF-16 (ASCII-looking units) and UTF-32 (valid BMP units). */
export function guessBigEndian(head: Uint8Array, unit: 2 | 4): boolean {
  if (unit === 2) {
    if (head[0] === 0xff && head[1] === 0xfe) return false;
    if (head[0] === 0xfe && head[1] === 0xff) return true;
    let be = 0;
    let le = 0;
    for (let i = 0; i + 2 <= head.length && i < 200; i += 2) {
      if (head[i] === 0 && head[i + 1] !== 0) be++;
      if (head[i] !== 0 && head[i + 1] === 0) le++;
    }
    return be > le;
  }
  if (head[0] === 0xff && head[1] === 0xfe && head[2] === 0 && head[3] === 0) return false;
  if (head[0] === 0 && head[1] === 0 && head[2] === 0xfe && head[3] === 0xff) return true;
  let be = 0;
  let le = 0;
  for (let i = 0; i + 4 <= head.length && i < 400; i += 4) {
    const [b0, b1, b2, b3] = [head[i]!, head[i + 1]!, head[i + 2]!, head[i + 3]!];
    if (b0 !== 0 || b1 > 0x10) be--;
    if (b3 !== 0 || b2 > 0x10) le--;
    if (b0 === 0 && b1 === 0 && (b2 !== 0 || b3 !== 0)) be++;
    if ((b0 !== 0 || b1 !== 0) && b2 === 0 && b3 === 0) le++;
  }
  return be > le;
}

/** A decoder that picks its byte order from the first chunk it is given. */
function guessing(unit: 2 | 4): ChunkDecoder {
  let inner: ChunkDecoder | undefined;
  const pick = (head: Uint8Array): ChunkDecoder => {
    const bigEndian = guessBigEndian(head, unit);
    return unit === 2 ? textDecoder(bigEndian ? 'utf-16be' : 'utf-16le') : utf32(bigEndian);
  };
  return {
    write: (chunk) => (inner ??= pick(chunk)).write(chunk),
    end: () => inner?.end(),
  };
}

const charsets = new Map<string, Charset>();

function charset(name: string, createDecoder: () => ChunkDecoder): Charset {
  let found = charsets.get(name);
  if (found === undefined) charsets.set(name, (found = { name, createDecoder }));
  return found;
}

/** Names of codecs iconv-lite has that are not charsets; libmime refuses them by identity. */
const NOT_CHARSETS: Record<string, string> = { utf7: 'utf7', unicode11utf7: 'utf7', utf7imap: 'utf7imap', base64: 'base64', hex: 'hex' };

/** The charset a name stands for, or undefined when neither iconv-lite's rules nor ICU know it. */
export function resolveCharset(name: string): Charset | undefined {
  const canonical = canonicalName(name);
  const notCharset = NOT_CHARSETS[canonical];
  if (notCharset !== undefined) return charset(notCharset, () => textDecoder('utf-8'));
  if (canonical === 'utf16') return charset('utf-16', () => guessing(2));
  if (canonical === 'utf32' || canonical === 'ucs4') return charset('utf-32', () => guessing(4));
  if (canonical === 'utf32le') return charset('utf-32le', () => utf32(false));
  if (canonical === 'utf32be') return charset('utf-32be', () => utf32(true));
  for (const label of labelCandidates(name, canonical)) {
    let encoding: string;
    try {
      encoding = new TextDecoder(label).encoding;
    } catch {
      continue;
    }
    if (SINGLE_BYTE.test(encoding)) {
      let table: Uint16Array | undefined;
      return charset(encoding, () => singleByte((table ??= singleByteTable(encoding))));
    }
    return charset(encoding, () => textDecoder(encoding, FIXES[encoding]));
  }
  return undefined;
}
