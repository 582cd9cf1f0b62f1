// The engine's batching and its bounds: Batcher (promise and callback forms) and Semaphore.
import { describe, expect, it } from 'vitest';
import { Batcher, Semaphore } from '../../lib/drain/batcher.js';

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('Batcher', () => {
  it('hands items to flush in batches of maxItems and gives each its own result, by promise or callback', async () => {
    const batches: number[][] = [];
    const batcher = new Batcher(async (items: number[]) => {
      batches.push(items);
      return items.map((i) => i * 10);
    }, 3, 1_000);
    const results: Array<number | string> = [];
    const viaPromise = [batcher.add(1), batcher.add(2)];
    batcher.push(3, { resolve: (v) => results.push(v), reject: () => results.push('rejected') });
    batcher.push(4, { resolve: (v) => results.push(v), reject: () => results.push('rejected') });
    expect(await Promise.all(viaPromise)).toEqual([10, 20]);
    await batcher.drain();
    expect(batches).toEqual([[1, 2, 3], [4]]);
    expect(results).toEqual([30, 40]);
  });

  it('flushes a partial batch after maxDelayMs', async () => {
    const batches: string[][] = [];
    const batcher = new Batcher(async (items: string[]) => {
      batches.push(items);
      return items;
    }, 64, 5);
    const result = batcher.add('a');
    expect(batches).toEqual([]);
    expect(await result).toBe('a');
    expect(batches).toEqual([['a']]);
  });

  it('rejects every item of a batch whose flush fails, thrown at once or later', async () => {
    const failing = new Batcher<number, number>(() => {
      throw new Error('at once');
    }, 2, 1_000);
    const rejected: string[] = [];
    failing.push(1, { resolve: () => rejected.push('resolved'), reject: (e) => rejected.push((e as Error).message) });
    await expect(failing.add(2)).rejects.toThrow('at once');
    expect(rejected).toEqual(['at once']);
    const later = new Batcher<number, number>(async () => Promise.reject(new Error('later')), 2, 1_000);
    await expect(Promise.all([later.add(1), later.add(2)])).rejects.toThrow('later');
    await later.drain();
  });

  it('a resolve callback that throws gets its reject instead; the rest of the batch is unaffected', async () => {
    const batcher = new Batcher(async (items: number[]) => items.map((i) => i + 1), 3, 1_000);
    const heard: string[] = [];
    batcher.push(1, { resolve: (v) => heard.push(`1 resolved ${v}`), reject: () => heard.push('1 rejected') });
    batcher.push(2, {
      resolve: () => {
        throw new Error('continuation broke');
      },
      reject: (e) => heard.push(`2 rejected: ${(e as Error).message}`),
    });
    batcher.push(3, { resolve: (v) => heard.push(`3 resolved ${v}`), reject: () => heard.push('3 rejected') });
    await batcher.drain();
    expect(heard).toEqual(['1 resolved 2', '2 rejected: continuation broke', '3 resolved 4']);
  });

  it('rethrows only when reject itself throws, after every other item was called', async () => {
    const batcher = new Batcher(async (items: number[]) => items, 2, 1_000);
    const heard: number[] = [];
    const broken = {
      resolve: () => {
        throw new Error('resolve broke');
      },
      reject: () => {
        throw new Error('reject broke too');
      },
    };
    batcher.push(1, broken);
    batcher.push(2, { resolve: (v) => heard.push(v), reject: () => heard.push(-1) });
    await expect(batcher.drain()).rejects.toThrow('reject broke too');
    expect(heard).toEqual([2]);
  });

  it('hands an exception thrown by reject to onDefect when given, instead of rethrowing it', async () => {
    const defects: string[] = [];
    const batcher = new Batcher(async (items: number[]) => items, 2, 1_000, (e) => defects.push((e as Error).message));
    const heard: number[] = [];
    batcher.push(1, {
      resolve: () => {
        throw new Error('resolve broke');
      },
      reject: () => {
        throw new Error('reject broke too');
      },
    });
    batcher.push(2, { resolve: (v) => heard.push(v), reject: () => heard.push(-1) });
    await batcher.drain();
    expect(heard).toEqual([2]);
    expect(defects).toEqual(['reject broke too']);
  });

  it('drain waits for batches under way, including ones their callbacks add', async () => {
    const order: string[] = [];
    const second = new Batcher(async (items: string[]) => {
      await tick();
      order.push(`second ${items.join(',')}`);
      return items;
    }, 10, 1_000);
    const first = new Batcher(async (items: string[]) => {
      await tick();
      order.push(`first ${items.join(',')}`);
      return items;
    }, 10, 1_000);
    for (const item of ['a', 'b']) {
      first.push(item, { resolve: (v) => second.push(v, { resolve: () => order.push(`done ${v}`), reject: () => undefined }), reject: () => undefined });
    }
    await first.drain();
    await second.drain();
    expect(order).toEqual(['first a,b', 'second a,b', 'done a', 'done b']);
  });
});

describe('Semaphore', () => {
  it('gives permits in order of asking, by weight, and never more than it has', async () => {
    const s = new Semaphore(10);
    expect(s.tryAcquire(6)).toBe(true);
    expect(s.tryAcquire(5)).toBe(false);
    const got: string[] = [];
    const big = s.acquire(8).then(() => got.push('big'));
    // A request that would fit now still waits behind the one before it.
    expect(s.tryAcquire(1)).toBe(false);
    const small = s.acquire(1).then(() => got.push('small'));
    await tick();
    expect(got).toEqual([]);
    s.release(6);
    await tick();
    expect(got).toEqual(['big', 'small']);
    expect(s.tryAcquire(2)).toBe(false);
    s.release(9);
    expect(s.tryAcquire(10)).toBe(true);
    await Promise.all([big, small]);
  });

  it('lets a request larger than the whole have everything, once everything is free', async () => {
    const s = new Semaphore(4);
    expect(s.tryAcquire()).toBe(true);
    let done = false;
    const huge = s.acquire(100).then(() => (done = true));
    await tick();
    expect(done).toBe(false);
    s.release();
    await huge;
    expect(done).toBe(true);
    expect(s.tryAcquire()).toBe(false);
    s.release(100);
    expect(s.tryAcquire(4)).toBe(true);
  });
});
