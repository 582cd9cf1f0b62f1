/**
 * Events are strict JSON in valid UTF-8: a string holding a lone UTF-16 surrogate (an encoded
 * word in UTF-16 cut in half, say) would be written as `"\ud83d"`, which strict parsers (jq)
 * and every UTF-8 encoder refuse. Each lone surrogate becomes U+FFFD; everything else stays.
 */

/** A high surrogate not followed by a low one, or a low one not preceded by a high one (code units). */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** `text` with each lone surrogate replaced by U+FFFD. */
export function wellFormedText(text: string): string {
  return text.replace(LONE_SURROGATE, '\uFFFD');
}

/** `value` with every string in it well-formed (a copy where something changed). Pure. */
export function wellFormed<T>(value: T): T {
  if (typeof value === 'string') return wellFormedText(value) as T;
  if (Array.isArray(value)) {
    let changed = false;
    const out = value.map((v) => {
      const w = wellFormed(v);
      if (w !== v) changed = true;
      return w;
    });
    return (changed ? out : value) as T;
  }
  if (value !== null && typeof value === 'object') {
    let changed = false;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const w = wellFormed(v);
      if (w !== v) changed = true;
      out[wellFormed(k)] = w;
    }
    return (changed ? out : value) as T;
  }
  return value;
}
