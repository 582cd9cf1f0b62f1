// The commit worker's segments, handed back and used again (lib/adapters/local/segment-pool.ts).
import { describe, expect, it } from 'vitest';
import { SegmentPool, standardSize } from '../../lib/adapters/local/segment-pool.js';

const KIB = 1024;

describe('standardSize', () => {
  it('is the minimum times a power of two, up to the maximum', () => {
    expect([64, 128, 256, 512, 1024].map((k) => standardSize(k * KIB, 64 * KIB, 1024 * KIB))).toEqual([true, true, true, true, true]);
    expect(standardSize(192 * KIB, 64 * KIB, 1024 * KIB)).toBe(false);
    expect(standardSize(2048 * KIB, 64 * KIB, 1024 * KIB)).toBe(false);
    expect(standardSize(32 * KIB, 64 * KIB, 1024 * KIB)).toBe(false);
    expect(standardSize(0, 64 * KIB, 1024 * KIB)).toBe(false);
    expect(standardSize(64 * KIB + 1, 64 * KIB, 1024 * KIB)).toBe(false);
  });
});

describe('SegmentPool', () => {
  it('gives back a buffer it was given, of the size asked for, and a new one when it has none', () => {
    const pool = new SegmentPool(64 * KIB, 1024 * KIB, 1024 * KIB);
    const first = pool.take(64 * KIB);
    expect(first.length).toBe(64 * KIB);
    first[0] = 42;
    pool.give([first.buffer as ArrayBuffer]);
    expect(pool.bytes).toBe(64 * KIB);
    const again = pool.take(64 * KIB);
    expect(again.buffer).toBe(first.buffer);
    expect(again[0]).toBe(42);
    expect(pool.bytes).toBe(0);
    const other = pool.take(128 * KIB);
    expect(other.length).toBe(128 * KIB);
    expect(other.buffer).not.toBe(first.buffer);
  });

  it('keeps only standard sizes, within its capacity', () => {
    const pool = new SegmentPool(64 * KIB, 1024 * KIB, 256 * KIB);
    pool.give([new ArrayBuffer(100 * KIB), new ArrayBuffer(2048 * KIB), new ArrayBuffer(0)]);
    expect(pool.bytes).toBe(0);
    pool.give([new ArrayBuffer(128 * KIB), new ArrayBuffer(128 * KIB), new ArrayBuffer(64 * KIB)]);
    expect(pool.bytes).toBe(256 * KIB);
    const kept = pool.take(64 * KIB);
    expect(kept.length).toBe(64 * KIB);
    expect(pool.bytes).toBe(256 * KIB);
  });
});
