/**
 * The simulation's verdicts, from what the servers saw rather than from popdrain's ledger. Pure:
 * Dovecot's log text and digests in, figures out.
 */

/**
 * Failed login attempts per user, as Dovecot's login process logged them: one line per
 * connection that ended after failed authentication, `... (auth failed, N attempts in S secs):
 * user=<NAME>, ...`, counted as N attempts.
 */
export function failedLoginAttempts(log: string): Map<string, number> {
  const out = new Map<string, number>();
  const re = /pop3-login: [^\n]*\(auth failed, (\d+) attempts? in \d+ secs?\): user=<([^>]*)>/g;
  for (const m of log.matchAll(re)) out.set(m[2]!, (out.get(m[2]!) ?? 0) + Number(m[1]));
  return out;
}

export interface StoredComparison {
  /** Messages Dovecot held that have no stored object. */
  missing: number;
  /** Stored objects beyond one per message Dovecot held (a message stored twice counts once here). */
  duplicates: number;
  /** Stored objects matching no message Dovecot held (bytes differ, or never delivered). */
  unexpected: number;
}

/** Compares the sha256 digests of what Dovecot held with those of the stored objects (multisets). */
export function compareStored(held: readonly string[], stored: readonly string[]): StoredComparison {
  const left = new Map<string, number>();
  for (const h of held) left.set(h, (left.get(h) ?? 0) + 1);
  let duplicates = 0;
  let unexpected = 0;
  const heldSet = new Set(held);
  for (const s of stored) {
    const n = left.get(s) ?? 0;
    if (n > 0) left.set(s, n - 1);
    else if (heldSet.has(s)) duplicates += 1;
    else unexpected += 1;
  }
  let missing = 0;
  for (const n of left.values()) missing += n;
  return { missing, duplicates, unexpected };
}
