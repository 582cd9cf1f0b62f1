/**
 * How many mailboxes one drainer invocation drains at once: the batch's groups, capped by the
 * function's memory. A pure decision, unit-tested (test/unit/drain-slots.test.ts).
 *
 * What one run may hold in memory at worst (lib/drain/message-pipeline.ts, lib/adapters/aws/
 * s3-store.ts): 32 MiB of messages received whole that the store has not made durable yet, and
 * up to `DEFAULT_S3_STORE_CONCURRENCY` (64) streamed messages of at most 1 MiB each spooled in
 * memory while they upload: 96 MiB. Multipart uploads (messages over 5 MiB) take slots of the
 * one S3 store the invocation shares, 2 at once of (2 + 2) x 5 MiB, across all its runs; they
 * are in the fixed part with the runtime, the bundle and the SDK clients. A run of a few small
 * messages holds far less, but an out-of-memory kill ends every run of the invocation, so the
 * cap is set by the worst case: 8 runs at once in 1,024 MB, 10 in 1,280 MB or more.
 */

/** The worst case of one run: whole messages in flight plus streamed messages spooled in memory. */
export const RUN_MEMORY_WORST_MIB = 32 + 64;
/** Node, the bundle, the SDK clients and their sockets, and the shared multipart slots (2 x 4 x 5 MiB). */
export const FIXED_MEMORY_MIB = 256;

/** Runs at once: one per group, at most what the memory holds at worst, at least one. */
export function drainSlots(groups: number, memoryMib: number): number {
  const byMemory = Math.floor((memoryMib - FIXED_MEMORY_MIB) / RUN_MEMORY_WORST_MIB);
  return Math.max(1, Math.min(groups, byMemory));
}
