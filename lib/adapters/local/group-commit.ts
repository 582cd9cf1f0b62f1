/**
 * Group commit: callers that arrive while a flush (a write and its fsync) is in flight gather
 * into the next batch, which is flushed as one as soon as the current one is done. One fsync
 * then makes a whole batch durable, however many callers it holds.
 */

interface Batch<T> {
  items: T[];
  promise: Promise<void>;
  resolve: () => void;
  reject: (error: unknown) => void;
}

export class GroupCommit<T> {
  private next: Batch<T> | undefined;
  private running = false;
  private idle: Promise<void> = Promise.resolve();
  private markIdle: (() => void) | undefined;

  /** `flush` makes a batch durable; the batch's callers resolve when it does, or all reject. */
  constructor(private readonly flush: (items: T[]) => Promise<void>) {}

  /**
   * Add `item` to the batch being gathered; resolves once a flush that holds it succeeded.
   * The first caller after an idle period waits one event-loop turn (setImmediate) so that
   * callers of the same burst share its flush.
   */
  submit(item: T): Promise<void> {
    let batch = this.next;
    if (batch === undefined) {
      let resolve!: () => void;
      let reject!: (error: unknown) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      batch = { items: [], promise, resolve, reject };
      this.next = batch;
      if (!this.running) {
        this.running = true;
        this.idle = new Promise((res) => (this.markIdle = res));
        setImmediate(() => void this.run());
      }
    }
    batch.items.push(item);
    return batch.promise;
  }

  /** Resolves when nothing is queued or in flight (for close()). */
  drained(): Promise<void> {
    return this.idle;
  }

  private async run(): Promise<void> {
    for (let batch = this.next; batch !== undefined; batch = this.next) {
      this.next = undefined;
      try {
        await this.flush(batch.items);
        batch.resolve();
      } catch (error) {
        batch.reject(error);
      }
    }
    this.running = false;
    this.markIdle?.();
  }
}
