/**
 * A first drain warms the file store up: its commit worker's thread boots during the POP3
 * handshake instead of at the first commit, and an idle process still exits.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CommitWorker } from '../../lib/adapters/local/commit-worker.js';
import { FileMessageStore } from '../../lib/adapters/local/file-store.js';

const run = promisify(execFile);
const COMMIT_WORKER = new URL('../../lib/adapters/local/commit-worker.ts', import.meta.url).href;

describe('CommitWorker.warmUp', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'popdrain-warm-up-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('starts the thread without a commit; the first commit then uses it', async () => {
    const worker = new CommitWorker();
    expect(worker.started).toBe(false);
    await worker.warmUp();
    expect(worker.started).toBe(true);
    const thread = (worker as unknown as { worker: unknown }).worker;
    expect(await readdir(dir)).toEqual([]);
    expect(await worker.commit({ temp: join(dir, '.t.part'), final: join(dir, 'a.eml'), data: [Buffer.from('x')], mode: 0o600 })).toEqual({ linked: true });
    expect((worker as unknown as { worker: unknown }).worker).toBe(thread);
    expect(await readFile(join(dir, 'a.eml'), 'utf8')).toBe('x');
    await worker.close();
  });

  it('FileMessageStore.warmUp starts its commit worker, and nothing else', async () => {
    const store = new FileMessageStore({ root: join(dir, 'store') });
    expect(store.commitWorker.started).toBe(false);
    store.warmUp();
    expect(store.commitWorker.started).toBe(true);
    await store.commitWorker.warmUp();
    expect(await readdir(dir)).toEqual([]);
    await store.commitWorker.close();
  });

  it('a process whose worker was warmed up and never used still exits on its own', async () => {
    // Were the thread ref'd, the child would never exit and the timeout would kill it.
    // (A script file, not `-e` with --input-type=module: that flag passes on to the eval'd
    // worker, which then cannot require().)
    const script = join(dir, 'warm-up.mts');
    await writeFile(
      script,
      `import { CommitWorker } from ${JSON.stringify(COMMIT_WORKER)};
      const worker = new CommitWorker();
      // Kept alive (by this timer) only until the thread is up: nothing else holds the process.
      const keepAlive = setInterval(() => {}, 1000);
      await worker.warmUp();
      clearInterval(keepAlive);
      const thread = (worker as unknown as { worker: import('node:worker_threads').Worker }).worker;
      thread.on('exit', (code) => console.log(JSON.stringify({ exit: code })));
      await new Promise((resolve) => setTimeout(resolve, 100));
      console.log(JSON.stringify({ started: worker.started, threadId: thread.threadId }));`,
    );
    const { stdout } = await run(process.execPath, ['--import', 'tsx', script], { timeout: 20_000 });
    // The thread was up and still running (no exit of its own) when the process ended.
    expect(stdout.trim().split('\n').map((l) => JSON.parse(l) as unknown)).toEqual([{ started: true, threadId: expect.any(Number) }]);
  });
});
