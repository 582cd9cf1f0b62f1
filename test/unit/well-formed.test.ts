// Strict JSON in valid UTF-8: lone surrogates become U+FFFD (lib/drain/well-formed.ts).
import { describe, expect, it } from 'vitest';
import { wellFormed, wellFormedText } from '../../lib/drain/well-formed.js';

const HIGH = '\ud83d';
const LOW = '\ude00';
const PAIR = '\ud83d\ude00';

describe('wellFormedText', () => {
  it('replaces each lone surrogate, keeps pairs and other text', () => {
    expect(wellFormedText(`a${HIGH}b`)).toBe('a\ufffdb');
    expect(wellFormedText(`a${LOW}b`)).toBe('a\ufffdb');
    expect(wellFormedText(`${LOW}${HIGH}`)).toBe('\ufffd\ufffd');
    expect(wellFormedText(`${HIGH}${HIGH}${LOW}`)).toBe(`\ufffd${PAIR}`);
    expect(wellFormedText(`x${PAIR}é`)).toBe(`x${PAIR}é`);
    expect(wellFormedText('')).toBe('');
  });
});

describe('wellFormed', () => {
  it('returns a well-formed value itself, not a copy', () => {
    const value = { subject: `hi ${PAIR}`, from: [{ name: 'Zoë', address: 'z@example.com' }], attachments: [], size: 3, none: null };
    expect(wellFormed(value)).toBe(value);
    expect(wellFormed(value.from)).toBe(value.from);
  });

  it('copies only what holds a lone surrogate, however deep', () => {
    const clean = [{ address: 'a@example.com' }];
    const value = { subject: 'fine', to: clean, from: [{ name: `bad${HIGH}`, address: 'b@example.com' }], n: 1 };
    const out = wellFormed(value);
    expect(out).not.toBe(value);
    expect(out).toEqual({ subject: 'fine', to: clean, from: [{ name: 'bad\ufffd', address: 'b@example.com' }], n: 1 });
    expect(out.to).toBe(clean);
    expect(value.from[0]!.name).toBe(`bad${HIGH}`); // the input is left as it was
    expect(wellFormed(`${LOW}`)).toBe('\ufffd');
  });

  it('leaves a value whose only lone surrogate is in a key as it was (as before: values decide the copy)', () => {
    const value = { [`k${HIGH}`]: 'v' };
    expect(wellFormed(value)).toBe(value);
  });
});
