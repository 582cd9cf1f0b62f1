/** Messages on their way through the store, the ledger and the bus: how many, and the first unexpected error. */
export class InFlight {
  private count = 0;
  private failure: { error: unknown } | undefined;
  private wake: (() => void) | undefined;

  start(): void {
    this.count += 1;
  }

  end(): void {
    this.count -= 1;
    if (this.count === 0 && this.wake !== undefined) {
      const wake = this.wake;
      this.wake = undefined;
      wake();
    }
  }

  fail(error: unknown): void {
    this.failure ??= { error };
  }

  /** Resolves when none is left; rejects with the first error `fail` was given. */
  async idle(): Promise<void> {
    if (this.count > 0) await new Promise<void>((resolve) => (this.wake = resolve));
    if (this.failure !== undefined) throw this.failure.error;
  }
}
