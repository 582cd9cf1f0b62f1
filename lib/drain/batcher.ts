/**
 * Collects items added one at a time and hands them to `flush` in batches: when `maxItems`
 * are waiting, or `maxDelayMs` after the first one arrived, or when asked. Each `add` resolves
 * with its own item's result; `push` calls back instead (no promise per item). Used to group
 * ledger writes and event publishing.
 */

/**
 * Where `push` reports an item's result: `resolve` or `reject`, once; `reject` also after a
 * `resolve` that threw (see `push`).
 */
export interface BatchCallback<O> {
  resolve(value: O): void;
  reject(error: unknown): void;
}

export class Batcher<I, O> {
  /** The items waiting, and where each one's result goes (parallel arrays: no object per item). */
  private items: I[] = [];
  private callbacks: Array<BatchCallback<O>> = [];
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private closing = false;

  /**
   * `onDefect` hears of an exception thrown by an item's `reject` (see `push`); without it,
   * the exception is rethrown from the batch's completion, where only `drain()` may see it.
   */
  constructor(
    private readonly flushBatch: (items: I[]) => Promise<O[]>,
    private readonly maxItems: number,
    private readonly maxDelayMs: number,
    private readonly onDefect?: (error: unknown) => void,
  ) {}

  /**
   * No stream of items is coming any more (the last ones trickle in): from now on a partial
   * batch goes out at the end of the turn it was started in, not `maxDelayMs` later.
   */
  closingTime(): void {
    this.closing = true;
    if (this.timer !== undefined) this.flush();
  }

  add(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => this.push(item, { resolve, reject }));
  }

  /**
   * Add an item; its batch's result for it goes to `callback` (in the turn the batch completes).
   * When `resolve` throws, `reject` is called with what it threw (so whoever waits on the item
   * hears of it instead of waiting forever); the other items of the batch are not affected.
   * An exception thrown by `reject` itself goes to `onDefect` (see the constructor).
   */
  push(item: I, callback: BatchCallback<O>): void {
    this.items.push(item);
    this.callbacks.push(callback);
    if (this.items.length >= this.maxItems) this.flush();
    else if (this.closing) this.immediate ??= setImmediate(() => this.flush());
    else if (this.timer === undefined) this.timer = setTimeout(() => this.flush(), this.maxDelayMs);
  }

  /** Send what is waiting now. */
  flush(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.immediate !== undefined) {
      clearImmediate(this.immediate);
      this.immediate = undefined;
    }
    if (this.items.length === 0) return;
    const items = this.items;
    const batch = this.callbacks;
    this.items = [];
    this.callbacks = [];
    let flushed: Promise<O[]>;
    try {
      flushed = this.flushBatch(items);
    } catch (error) {
      flushed = Promise.reject(error);
    }
    const run = flushed.then(
      (results) => {
        this.inFlight.delete(run);
        let defect: { error: unknown } | undefined;
        for (let i = 0; i < batch.length; i++) {
          const callback = batch[i]!;
          try {
            callback.resolve(results[i] as O);
          } catch (error) {
            // The item's continuation broke: it fails like an item whose batch failed, and the
            // other items of the batch still get their results.
            try {
              callback.reject(error);
            } catch (again) {
              defect ??= { error: again };
            }
          }
        }
        if (defect !== undefined) this.defect(defect.error);
      },
      (error: unknown) => {
        this.inFlight.delete(run);
        let defect: { error: unknown } | undefined;
        for (const callback of batch) {
          try {
            callback.reject(error);
          } catch (again) {
            defect ??= { error: again };
          }
        }
        if (defect !== undefined) this.defect(defect.error);
      },
    );
    this.inFlight.add(run);
  }

  private defect(error: unknown): void {
    if (this.onDefect === undefined) throw error;
    this.onDefect(error);
  }

  /** Flush and wait until every batch sent so far has completed. */
  async drain(): Promise<void> {
    this.flush();
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }
}

/**
 * A counting semaphore for bounded concurrency (or bounded memory: `n` permits per byte).
 * Waiters are served in order; a request for more permits than exist waits until all are free.
 */
export class Semaphore {
  private available: number;
  private readonly queue: Array<{ n: number; resolve: () => void }> = [];

  constructor(private readonly permits: number) {
    this.available = permits;
  }

  async acquire(n = 1): Promise<void> {
    if (this.tryAcquire(n)) return;
    await new Promise<void>((resolve) => this.queue.push({ n: Math.min(n, this.permits), resolve }));
  }

  /** Take `n` permits if they are free now and nobody waits; false otherwise (nothing taken). */
  tryAcquire(n = 1): boolean {
    const wanted = Math.min(n, this.permits);
    if (this.queue.length > 0 || this.available < wanted) return false;
    this.available -= wanted;
    return true;
  }

  release(n = 1): void {
    this.available += Math.min(n, this.permits);
    while (this.queue.length > 0 && this.queue[0]!.n <= this.available) {
      const next = this.queue.shift()!;
      this.available -= next.n;
      next.resolve();
    }
  }
}
