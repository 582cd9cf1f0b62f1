/**
 * Buffers that carried a commit batch's bytes to the commit worker and came back with its
 * answer (transferred both ways, never copied), kept for the next batches. Without it every
 * batch allocated fresh segments, freed only when the worker thread's heap was next collected:
 * garbage outside either heap that the process held for a while.
 *
 * Only the standard sizes are kept (powers of two from `minBytes` to `maxBytes`: the sizes a
 * batch asks for), up to `capacityBytes` in all; others are left to the collector.
 */
export class SegmentPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private pooledBytes = 0;

  constructor(
    private readonly minBytes: number,
    private readonly maxBytes: number,
    private readonly capacityBytes: number,
  ) {}

  /** A buffer of exactly `size` bytes (contents undefined): a kept one when there is one. */
  take(size: number): Buffer {
    const kept = this.free.get(size)?.pop();
    if (kept === undefined) return Buffer.allocUnsafeSlow(size);
    this.pooledBytes -= size;
    return Buffer.from(kept);
  }

  /** Buffers back from the worker: kept while they are of a standard size and there is room. */
  give(buffers: readonly ArrayBuffer[]): void {
    for (const buffer of buffers) {
      const size = buffer.byteLength;
      if (!standardSize(size, this.minBytes, this.maxBytes) || this.pooledBytes + size > this.capacityBytes) continue;
      let list = this.free.get(size);
      if (list === undefined) this.free.set(size, (list = []));
      list.push(buffer);
      this.pooledBytes += size;
    }
  }

  /** Bytes kept now. */
  get bytes(): number {
    return this.pooledBytes;
  }
}

/** `size` is `min` times a power of two, at most `max` (a detached buffer, 0 bytes, is not). */
export function standardSize(size: number, min: number, max: number): boolean {
  if (size < min || size > max || size % min !== 0) return false;
  const multiple = size / min;
  return (multiple & (multiple - 1)) === 0;
}
