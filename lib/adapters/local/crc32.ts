/**
 * CRC-32 (IEEE 802.3, as zlib and gzip compute it). Node's native `zlib.crc32` where it exists
 * (Node >= 20.15), a table-driven fallback otherwise; both give the same values. node:zlib is
 * loaded at the first call, not with this module (~7 ms of a CLI's start that the first ledger
 * read, run while the session is set up, hides).
 */
import { createRequire } from 'node:module';

let table: Uint32Array | undefined;

function crc32Table(): Uint32Array {
  if (table === undefined) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  return table;
}

/** @internal exported for tests: the JavaScript implementation (`previous`: the crc of the bytes before `data`). */
export function crc32Js(data: Uint8Array, previous = 0): number {
  const t = crc32Table();
  let crc = (previous ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) crc = t[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

type Crc32 = (data: Uint8Array, previous?: number) => number;
let implementation: Crc32 | undefined;

function loaded(): Crc32 {
  const native = (createRequire(import.meta.url)('node:zlib') as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;
  return typeof native === 'function' ? (d, previous = 0) => native(d, previous) >>> 0 : crc32Js;
}

/** The crc32 of `data`, or with `previous` (the crc32 of the bytes before it) of the whole. */
export function crc32(data: Uint8Array, previous = 0): number {
  return (implementation ??= loaded())(data, previous);
}
