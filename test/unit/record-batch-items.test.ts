// How many messages go to the ledger and the event sink in one call, by the store's concurrency.
import { describe, expect, it } from 'vitest';
import { LEDGER_BATCH_ITEMS, MAX_RECORD_BATCH_ITEMS, recordBatchItems } from '../../lib/drain/record-batch-items.js';

describe('recordBatchItems', () => {
  it('is 64 for the engine default and the remote stores (8, 64 in flight), and when not told', () => {
    expect(LEDGER_BATCH_ITEMS).toBe(64);
    expect(recordBatchItems(undefined)).toBe(64);
    expect(recordBatchItems(1)).toBe(64);
    expect(recordBatchItems(8)).toBe(64);
    expect(recordBatchItems(64)).toBe(64);
  });

  it('follows the store concurrency above 64, up to 256', () => {
    expect(recordBatchItems(100)).toBe(100);
    expect(recordBatchItems(256)).toBe(256);
    expect(recordBatchItems(10_000)).toBe(MAX_RECORD_BATCH_ITEMS);
    expect(MAX_RECORD_BATCH_ITEMS).toBe(256);
  });

  it('takes whole numbers and ignores nonsense', () => {
    expect(recordBatchItems(100.7)).toBe(100);
    expect(recordBatchItems(Number.NaN)).toBe(64);
    expect(recordBatchItems(Number.POSITIVE_INFINITY)).toBe(64);
    expect(recordBatchItems(-5)).toBe(64);
  });
});
