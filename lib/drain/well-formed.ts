/**
 * Events are strict JSON in valid UTF-8: a string holding a lone UTF-16 surrogate (an encoded
 * word in UTF-16 cut in half, say) would be written as `"\ud83d"`, which strict parsers (jq)
 * and every UTF-8 encoder refuse. Each lone surrogate becomes U+FFFD; everything else stays.
 */

/** A high surrogate not followed by a low one, or a low one not preceded by a high one (code units). */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** The same test, for `test()` (a global regex keeps state between calls). */
const HAS_LONE_SURROGATE = new RegExp(LONE_SURROGATE.source);

/** Whether `text` holds no lone surrogate: String.prototype.isWellFormed (Node >= 20) or the regex. */
const isWellFormedText: (text: string) => boolean =
  typeof (String.prototype as { isWellFormed?: unknown }).isWellFormed === 'function'
    ? (text) => (text as string & { isWellFormed(): boolean }).isWellFormed()
    : (text) => !HAS_LONE_SURROGATE.test(text);

/** `text` with each lone surrogate replaced by U+FFFD. */
export function wellFormedText(text: string): string {
  return isWellFormedText(text) ? text : text.replace(LONE_SURROGATE, '\uFFFD');
}

/** Whether every string in `value` (keys too) is well-formed: a walk that allocates nothing. */
function allWellFormed(value: unknown): boolean {
  if (typeof value === 'string') return isWellFormedText(value);
  if (Array.isArray(value)) {
    for (const v of value) if (!allWellFormed(v)) return false;
    return true;
  }
  if (value !== null && typeof value === 'object') {
    for (const k in value) {
      if (!Object.prototype.hasOwnProperty.call(value, k)) continue;
      if (!isWellFormedText(k) || !allWellFormed((value as Record<string, unknown>)[k])) return false;
    }
  }
  return true;
}

/**
 * `value` with every string in it well-formed (a copy where something changed). Pure. Most
 * values are well-formed already: they are returned as they are after one walk that copies
 * nothing.
 */
export function wellFormed<T>(value: T): T {
  if (allWellFormed(value)) return value;
  return wellFormedCopy(value);
}

function wellFormedCopy<T>(value: T): T {
  if (typeof value === 'string') return wellFormedText(value) as T;
  if (Array.isArray(value)) {
    let changed = false;
    const out = value.map((v) => {
      const w = wellFormedCopy(v);
      if (w !== v) changed = true;
      return w;
    });
    return (changed ? out : value) as T;
  }
  if (value !== null && typeof value === 'object') {
    let changed = false;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const w = wellFormedCopy(v);
      if (w !== v) changed = true;
      out[wellFormedText(k)] = w;
    }
    return (changed ? out : value) as T;
  }
  return value;
}
