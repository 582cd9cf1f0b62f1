import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { formatFingerprint, matchesPin, parseFingerprint } from '../../lib/pop3/certificate-pin.js';

const bytes = createHash('sha256').update('a certificate').digest();
const printed = formatFingerprint(bytes);
const other = createHash('sha256').update('another certificate').digest();

describe('certificate pins', () => {
  it('prints 32 upper-case hex pairs joined by colons (Node fingerprint256 form)', () => {
    expect(printed).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  });

  it('parses the printed form, lower case, no colons and a sha256: prefix to the same bytes', () => {
    for (const form of [printed, printed.toLowerCase(), printed.replace(/:/g, ''), `sha256:${printed}`, ` ${printed}\n`]) {
      expect(parseFingerprint(form)?.equals(bytes), form).toBe(true);
    }
  });

  it('refuses what is not a SHA-256 fingerprint', () => {
    for (const bad of ['', 'zz', printed.slice(3), `${printed}:00`, printed.replace(/^../, 'GG'), createHash('sha1').update('x').digest('hex')]) {
      expect(parseFingerprint(bad), bad).toBeUndefined();
    }
  });

  it('matches when one of the pins is the presented fingerprint, else not', () => {
    expect(matchesPin(printed, [bytes])).toBe(true);
    expect(matchesPin(printed, [other, bytes])).toBe(true);
    expect(matchesPin(printed, [other])).toBe(false);
    expect(matchesPin(printed, [])).toBe(false);
    expect(matchesPin(undefined, [bytes])).toBe(false);
    expect(matchesPin('not a fingerprint', [bytes])).toBe(false);
  });
});
