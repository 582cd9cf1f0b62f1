/**
 * Collects items added one at a time and hands them to `flush` in batches: when `maxItems`
 * are waiting, or `maxDelayMs` after the first one arrived, or when asked. Each `add` resolves
 * with its own item's result. Used to group ledger writes and event publishing.
 */

interface Waiting<I, O> {
  item: I;
  resolve(value: O): void;
  reject(error: unknown): void;
}

export class Batcher<I, O> {
  private waiting: Array<Waiting<I, O>> = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly flushBatch: (items: I[]) => Promise<O[]>,
    private readonly maxItems: number,
    private readonly maxDelayMs: number,
  ) {}

  add(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      if (this.waiting.length >= this.maxItems) this.flush();
      else if (this.timer === undefined) this.timer = setTimeout(() => this.flush(), this.maxDelayMs);
    });
  }

  /** Send what is waiting now. */
  flush(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.waiting.length === 0) return;
    const batch = this.waiting;
    this.waiting = [];
    const run = (async () => {
      try {
        const results = await this.flushBatch(batch.map((w) => w.item));
        batch.forEach((w, i) => w.resolve(results[i] as O));
      } catch (error) {
        for (const w of batch) w.reject(error);
      }
    })();
    this.inFlight.add(run);
    void run.finally(() => this.inFlight.delete(run));
  }

  /** Flush and wait until every batch sent so far has completed. */
  async drain(): Promise<void> {
    this.flush();
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }
}

/** A counting semaphore for bounded concurrency. */
export class Semaphore {
  private available: number;
  private readonly queue: Array<() => void> = [];

  constructor(permits: number) {
    this.available = permits;
  }

  async acquire(): Promise<void> {
    if (this.available > 0) {
      this.available -= 1;
      return;
    }
    await new Promise<void>((resolve) => this.queue.push(resolve));
  }

  release(): void {
    const next = this.queue.shift();
    if (next !== undefined) next();
    else this.available += 1;
  }
}
