// Event ids are laid out in bytes (keys.ts, asUuid): the same ids as the slices and template
// they replaced, for every value of the variant digit and for the ids of real messages.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { asUuid, skippedEventId, storedEventId } from '../../lib/drain/keys.js';

/** The layout as it was written before (commit cd99010). */
function sliced(hex: string): string {
  const variant = ((parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

describe('event ids', () => {
  it('lay out 2,000 digests as the slices did, every variant digit among them', () => {
    const variants = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const hex = createHash('sha256').update(`digest ${i}`).digest('hex');
      variants.add(hex[16]!);
      expect(asUuid(hex)).toBe(sliced(hex));
    }
    expect(variants.size).toBe(16);
  });

  it('are UUIDs of version 8 and variant 10, distinct per kind, stable per message', () => {
    const stored = storedEventId('box-1', 'uidl-7');
    expect(stored).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(storedEventId('box-1', 'uidl-7')).toBe(stored);
    expect(skippedEventId('box-1', 'uidl-7')).not.toBe(stored);
    const digest = createHash('sha256').update('popdrain/v1\0stored\0box-1\0uidl-7').digest('hex');
    expect(stored).toBe(sliced(digest));
  });
});
