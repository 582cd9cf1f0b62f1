/**
 * The commit worker's thread runs under small V8 heap limits (commit-worker.ts,
 * WORKER_OLD_GENERATION_MB): the largest batches it can be given still commit whole, since the
 * messages' bytes travel in transferred ArrayBuffers, outside the limited heap, and a batch's
 * item list is small. A limit too small for the thread shows here as a rejected commit (the
 * thread dies with ERR_WORKER_OUT_OF_MEMORY).
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CommitWorker } from '../../lib/adapters/local/commit-worker.js';

/** tmpfs when there is one: these tests are about the thread's memory, not the disk's speed. */
const BASE = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
const MiB = 1024 * 1024;
/** Messages a batch takes (MAX_BATCH in commit-worker.ts). */
const BATCH = 64;

const digest = (data: Buffer | readonly Buffer[]): string => {
  const h = createHash('sha256');
  for (const chunk of Buffer.isBuffer(data) ? [data] : data) h.update(chunk);
  return h.digest('hex');
};

describe('CommitWorker under its heap limits', () => {
  let dir: string;
  let worker: CommitWorker;
  beforeEach(async () => {
    dir = await mkdtemp(join(BASE, 'popdrain-commit-limits-'));
    worker = new CommitWorker();
  });
  afterEach(async () => {
    await worker.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('runs its thread with an old-generation limit', async () => {
    await worker.warmUp();
    const thread = (worker as unknown as { worker: { resourceLimits: { maxOldGenerationSizeMb: number } } }).worker;
    expect(thread.resourceLimits.maxOldGenerationSizeMb).toBeGreaterThan(0);
    expect(thread.resourceLimits.maxOldGenerationSizeMb).toBeLessThanOrEqual(64);
  });

  it(`commits a whole batch of ${BATCH} messages of 2 MiB each (128 MiB, more than the thread's heap may hold)`, async () => {
    const messages = Array.from({ length: BATCH }, (_, i) => {
      const data = Buffer.allocUnsafe(2 * MiB);
      data.fill(i);
      data.writeUInt32BE(i * 2654435761 >>> 0, 12345);
      // Two chunks, as a message received in pieces arrives.
      return [data.subarray(0, MiB / 2), data.subarray(MiB / 2)];
    });
    // All in one turn of the event loop: one full batch.
    const results = await Promise.all(
      messages.map((data, i) => worker.commit({ temp: join(dir, `.t${i}.part`), final: join(dir, `m${i}.eml`), data, mode: 0o600 })),
    );
    expect(results).toEqual(messages.map(() => ({ linked: true })));
    for (const i of [0, 31, 63]) expect(digest(await readFile(join(dir, `m${i}.eml`)))).toBe(digest(messages[i]!));
    expect((await readdir(dir)).filter((n) => n.endsWith('.part'))).toEqual([]);
  }, 60_000);

  it('commits 6,400 messages with long names in one burst (100 batches, several in flight)', async () => {
    // Names near the longest a file name may be (255 bytes): the item lists are as large as
    // they get, and the thread collects its heap many times over.
    const stem = 'x'.repeat(200);
    const count = 100 * BATCH;
    const results = await Promise.all(
      Array.from({ length: count }, (_, i) =>
        worker.commit({ temp: join(dir, `.${stem}-${i}.part`), final: join(dir, `${stem}-${i}.eml`), data: [Buffer.from(`message ${i}\r\n`)], mode: 0o600 }),
      ),
    );
    expect(results.filter((r) => !('linked' in r) || !r.linked)).toEqual([]);
    expect((await readdir(dir)).filter((n) => n.endsWith('.eml'))).toHaveLength(count);
    expect(await readFile(join(dir, `${stem}-4321.eml`), 'utf8')).toBe('message 4321\r\n');
  }, 60_000);
});
