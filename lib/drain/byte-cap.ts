/**
 * How many bytes one message may send before it is cut off (not stored, not deleted, reported
 * with the bytes seen): the size cap, and the run's byte budget counted in received bytes. The
 * budget cuts only a message that also runs past its listed size: an honest message larger
 * than what is left of the budget still arrives whole (the first message always goes, so a
 * large one is never stuck), while a server that lies in LIST cannot send past the budget. Pure.
 */

/** A message may run this far past its listed size (servers count line ends differently). */
export const LISTED_SIZE_SLACK_BYTES = 4 * 1024;

export interface ByteCap {
  /** Bytes the message may send; Infinity when nothing caps it. */
  bytes: number;
  /** Which limit sets it. */
  by: 'size-cap' | 'byte-budget' | 'none';
}

export function messageByteCap(facts: {
  /** The size cap (--max-size), if any. */
  maxMessageBytes: number | undefined;
  /** The run's byte budget (--max-bytes); Infinity when none. */
  maxBytes: number;
  /** Bytes received so far in this run, stored or cut off. */
  received: number;
  /** The message's LIST size. */
  listed: number;
}): ByteCap {
  const sizeCap = facts.maxMessageBytes ?? Infinity;
  const budgetCap = Number.isFinite(facts.maxBytes) ? Math.max(facts.maxBytes - facts.received, facts.listed + LISTED_SIZE_SLACK_BYTES) : Infinity;
  if (sizeCap === Infinity && budgetCap === Infinity) return { bytes: Infinity, by: 'none' };
  return budgetCap < sizeCap ? { bytes: budgetCap, by: 'byte-budget' } : { bytes: sizeCap, by: 'size-cap' };
}
