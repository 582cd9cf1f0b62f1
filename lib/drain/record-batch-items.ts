/**
 * How many messages go to the ledger (and to the event sink, and into one "announced" mark) in
 * one call. Each call costs the same whatever it holds (for the local adapters: a stat, a write
 * and an fdatasync of the log or of events.jsonl), so a run with many messages in flight to its
 * store sends larger batches: with a local file store (256 in flight) a 20,000-message drain
 * made ~940 such calls with batches of 64. Remote stores keep 64 (S3's default concurrency is
 * 64; the DynamoDB ledger and the EventBridge sink split batches into requests of their own).
 */

/** The batch for a store with up to 64 messages in flight (and the smallest). */
export const LEDGER_BATCH_ITEMS = 64;
/** The largest batch, whatever the store's concurrency. */
export const MAX_RECORD_BATCH_ITEMS = 256;

/** Items per ledger/event batch for a run that keeps `storeConcurrency` messages in its store at once. */
export function recordBatchItems(storeConcurrency: number | undefined): number {
  if (storeConcurrency === undefined || !Number.isFinite(storeConcurrency)) return LEDGER_BATCH_ITEMS;
  return Math.min(MAX_RECORD_BATCH_ITEMS, Math.max(LEDGER_BATCH_ITEMS, Math.floor(storeConcurrency)));
}
