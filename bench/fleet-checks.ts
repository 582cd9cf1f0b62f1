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

/**
 * Of one mailbox's messages in the queue at a sample, how many wait to run: those not handed to
 * an invocation before the sample began. A request whose run has ended stays in the queue until
 * the rest of its batch has ended (the event source deletes after the invocation), so a mailbox
 * may count 2 (that one and the scheduler's next) with 1 waiting. A message given back by its
 * invocation (failed) counts as waiting, as does one taken after the sample began (an upper bound).
 */
export function waitingAtSample(messageIds: readonly string[], takenAt: (messageId: string) => number | undefined, sampledFrom: number): number {
  return messageIds.filter((id) => (takenAt(id) ?? Infinity) > sampledFrom).length;
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
