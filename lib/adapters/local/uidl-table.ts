/**
 * The UIDLs of a ledger index, looked up by string without a string per UIDL: the UIDLs' bytes
 * as the index holds them, and an open-addressing hash table of their slots. A load of 20,000
 * UIDLs into a `Map<string, number>` cost 12-50 ms here (a string and a hashed insertion each);
 * this costs one pass over the bytes. UIDLs that are not all ASCII (allowed, never seen from a
 * real server) go into a Map instead.
 */

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

export class UidlTable {
  /** Byte offset of each slot's UIDL in `bytes` (count + 1 entries: the last is the end). */
  private readonly starts: Uint32Array;
  /** Slot + 1 per bucket, 0 when empty (ASCII mode). */
  private readonly buckets: Int32Array | undefined;
  private readonly mask: number;
  /** UIDL to slot (when some UIDL is not ASCII). */
  private readonly map: Map<string, number> | undefined;

  /**
   * `bytes` holds the UIDLs one after another, `lengths` their byte lengths. Throws RangeError
   * when a UIDL occurs twice (an index never holds one twice: damaged).
   */
  constructor(
    private readonly bytes: Buffer,
    lengths: ArrayLike<number>,
    ascii: boolean,
  ) {
    const count = lengths.length;
    this.starts = new Uint32Array(count + 1);
    for (let i = 0; i < count; i++) this.starts[i + 1] = this.starts[i]! + lengths[i]!;
    if (!ascii) {
      this.map = new Map();
      this.buckets = undefined;
      this.mask = 0;
      for (let slot = 0; slot < count; slot++) {
        const uidl = this.uidlAt(slot);
        if (this.map.has(uidl)) throw new RangeError('a UIDL twice');
        this.map.set(uidl, slot);
      }
      return;
    }
    let size = 16;
    while (size < count * 2) size *= 2;
    this.buckets = new Int32Array(size);
    this.mask = size - 1;
    for (let slot = 0; slot < count; slot++) {
      const start = this.starts[slot]!;
      const end = this.starts[slot + 1]!;
      let h = FNV_OFFSET;
      for (let i = start; i < end; i++) h = Math.imul(h ^ bytes[i]!, FNV_PRIME);
      let b = h & this.mask;
      for (;;) {
        const held = this.buckets[b]!;
        if (held === 0) break;
        if (this.sameBytes(held - 1, start, end)) throw new RangeError('a UIDL twice');
        b = (b + 1) & this.mask;
      }
      this.buckets[b] = slot + 1;
    }
  }

  get count(): number {
    return this.starts.length - 1;
  }

  /** The slot of `uidl`, or undefined. */
  slotOf(uidl: string): number | undefined {
    if (this.map !== undefined) return this.map.get(uidl);
    const buckets = this.buckets!;
    let h = FNV_OFFSET;
    for (let i = 0; i < uidl.length; i++) {
      const c = uidl.charCodeAt(i);
      if (c > 0x7f) return undefined; // every UIDL here is ASCII
      h = Math.imul(h ^ c, FNV_PRIME);
    }
    let b = h & this.mask;
    for (;;) {
      const held = buckets[b]!;
      if (held === 0) return undefined;
      if (this.sameString(held - 1, uidl)) return held - 1;
      b = (b + 1) & this.mask;
    }
  }

  uidlAt(slot: number): string {
    return this.bytes.toString('utf8', this.starts[slot], this.starts[slot + 1]);
  }

  private sameString(slot: number, uidl: string): boolean {
    const start = this.starts[slot]!;
    if (this.starts[slot + 1]! - start !== uidl.length) return false;
    for (let i = 0; i < uidl.length; i++) if (this.bytes[start + i] !== uidl.charCodeAt(i)) return false;
    return true;
  }

  private sameBytes(slot: number, start: number, end: number): boolean {
    const s = this.starts[slot]!;
    if (this.starts[slot + 1]! - s !== end - start) return false;
    for (let i = 0; i < end - start; i++) if (this.bytes[s + i] !== this.bytes[start + i]) return false;
    return true;
  }
}
