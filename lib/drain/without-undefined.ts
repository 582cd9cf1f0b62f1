/**
 * The object without its keys whose value is undefined (a copy; key order kept). For objects
 * that leave the engine as JSON or events, where an absent key and `"key": undefined` differ
 * to a deep-equality check or a schema; elsewhere an undefined optional field is just absent.
 */
export function withoutUndefined<T extends object>(value: T): T {
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) if (v !== undefined) out[key] = v;
  return out as T;
}
