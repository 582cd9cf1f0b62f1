/**
 * The UIDLs of a ledger index, looked up by string without a string per UIDL: the UIDLs' UTF-8
 * bytes one after another, the offset where each slot's bytes start, and an open-addressing hash
 * table of the slots (FNV-1a over the bytes, linear probing, a power-of-two size at least twice
 * the count, so a probe always ends at an empty bucket).
 *
 * The index file holds all three as they are here (ledger-index-codec.ts), so a load builds
 * nothing per UIDL: `UidlTable.build` hashes every UIDL once, when the index is written; a load
 * views the file's arrays (`new UidlTable(...)`). A hit is always confirmed by comparing the
 * UIDL's bytes, never by the hash alone: a damaged table can only fail to find a UIDL.
 */

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** The FNV-1a hash of `bytes[start, end)` (as a uint32). */
export function fnv1a(bytes: Uint8Array, start: number, end: number): number {
  let h = FNV_OFFSET;
  for (let i = start; i < end; i++) h = Math.imul(h ^ bytes[i]!, FNV_PRIME);
  return h >>> 0;
}

/** The table size for `count` UIDLs: a power of two, at least 16 and at least twice the count. */
export function tableSizeFor(count: number): number {
  let size = 16;
  while (size < count * 2) size *= 2;
  return size;
}

export class UidlTable {
  /**
   * `bytes` holds the UIDLs one after another; slot i's are `bytes[starts[i], starts[i + 1])`;
   * `buckets` (a power-of-two length greater than the count) holds slot + 1, 0 when empty, as
   * `build` laid it out. Not checked here beyond what a lookup needs to stay in bounds
   * (ledger-index-codec.ts checks the shape; the index's checksum covers the contents).
   */
  /** `bytes` as a Buffer (a view), for decoding a slot's UIDL. */
  private readonly text: Buffer;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly starts: Uint32Array,
    private readonly buckets: Uint32Array,
  ) {
    this.text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  }

  /**
   * The table of `uidls`' UTF-8 bytes (`bytes`, one after another, `starts` as above). Throws
   * RangeError when a UIDL occurs twice.
   */
  static build(bytes: Uint8Array, starts: Uint32Array): UidlTable {
    const count = starts.length - 1;
    const buckets = new Uint32Array(tableSizeFor(count));
    const mask = buckets.length - 1;
    const table = new UidlTable(bytes, starts, buckets);
    for (let slot = 0; slot < count; slot++) {
      const start = starts[slot]!;
      const end = starts[slot + 1]!;
      let b = fnv1a(bytes, start, end) & mask;
      for (;;) {
        const held = buckets[b]!;
        if (held === 0) break;
        if (table.sameBytes(held - 1, bytes, start, end)) throw new RangeError('a UIDL twice');
        b = (b + 1) & mask;
      }
      buckets[b] = slot + 1;
    }
    return table;
  }

  get count(): number {
    return this.starts.length - 1;
  }

  /** The arrays the index file holds (ledger-index-codec.ts). */
  parts(): { bytes: Uint8Array; starts: Uint32Array; buckets: Uint32Array } {
    return { bytes: this.bytes, starts: this.starts, buckets: this.buckets };
  }

  /** The slot of `uidl`, or undefined. */
  slotOf(uidl: string): number | undefined {
    const mask = this.buckets.length - 1;
    let h = FNV_OFFSET;
    for (let i = 0; i < uidl.length; i++) {
      const c = uidl.charCodeAt(i);
      if (c > 0x7f) return this.slotOfBytes(Buffer.from(uidl, 'utf8')); // rare: hash its UTF-8 bytes
      h = Math.imul(h ^ c, FNV_PRIME);
    }
    let b = (h >>> 0) & mask;
    for (;;) {
      const held = this.buckets[b]!;
      if (held === 0) return undefined;
      if (this.sameString(held - 1, uidl)) return held - 1;
      b = (b + 1) & mask;
    }
  }

  /** The slot of the UIDL whose UTF-8 bytes are `bytes[start, end)`, or undefined. */
  slotOfBytes(bytes: Uint8Array, start = 0, end = bytes.length): number | undefined {
    const mask = this.buckets.length - 1;
    let b = fnv1a(bytes, start, end) & mask;
    for (;;) {
      const held = this.buckets[b]!;
      if (held === 0) return undefined;
      if (this.sameBytes(held - 1, bytes, start, end)) return held - 1;
      b = (b + 1) & mask;
    }
  }

  uidlAt(slot: number): string {
    return this.text.toString('utf8', this.starts[slot], this.starts[slot + 1]);
  }

  /** Whether slot's UIDL is `uidl` (ASCII: one byte per character). */
  private sameString(slot: number, uidl: string): boolean {
    const start = this.starts[slot]!;
    if (this.starts[slot + 1]! - start !== uidl.length) return false;
    for (let i = 0; i < uidl.length; i++) if (this.bytes[start + i] !== uidl.charCodeAt(i)) return false;
    return true;
  }

  private sameBytes(slot: number, other: Uint8Array, start: number, end: number): boolean {
    const s = this.starts[slot]!;
    if (this.starts[slot + 1]! - s !== end - start) return false;
    for (let i = 0; i < end - start; i++) if (this.bytes[s + i] !== other[start + i]) return false;
    return true;
  }
}
