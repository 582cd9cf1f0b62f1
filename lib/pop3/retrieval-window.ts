/**
 * Which messages of a `retrieve()` to request ahead of the consumer: at most `lookahead`
 * commands and (beyond the first) `maxBytesAhead` bytes by listed size, each message counted
 * before it is requested, and only those the caller's `admit` lets go; topped up in batches
 * once half the lookahead is used, so commands reach the wire in groups rather than one per
 * consumed message. A decision over counts; the client sends what it returns.
 */
import type { RetrieveItem } from './client-options.js';

export class RetrievalWindow {
  private readonly iterator: Iterator<RetrieveItem>;
  private exhausted = false;
  /** An item fetched from the iterator but not requested yet (it did not fit). */
  private held: RetrieveItem | undefined;
  /** Requested and not yet taken by the consumer. */
  private ahead = 0;
  private bytesAhead = 0;

  constructor(
    items: Iterable<RetrieveItem>,
    private readonly lookahead: number,
    private readonly maxBytesAhead: number,
    private readonly admit: (item: RetrieveItem) => boolean = () => true,
  ) {
    this.iterator = items[Symbol.iterator]();
  }

  /** The items to request now (none while enough are ahead). */
  refill(): RetrieveItem[] {
    const out: RetrieveItem[] = [];
    if (this.ahead > 0 && this.ahead > this.lookahead >> 1 && this.bytesAhead < this.maxBytesAhead >> 1) return out;
    while (!this.exhausted && this.ahead < this.lookahead) {
      let item = this.held;
      if (item === undefined) {
        const next = this.iterator.next();
        if (next.done === true) {
          this.exhausted = true;
          break;
        }
        item = next.value;
      }
      const size = item.size ?? 0;
      if (this.ahead > 0 && this.bytesAhead + size > this.maxBytesAhead) {
        this.held = item; // requested once enough of what is ahead has been taken
        break;
      }
      this.held = undefined;
      if (!this.admit(item)) {
        this.exhausted = true;
        break;
      }
      out.push(item);
      this.ahead += 1;
      this.bytesAhead += size;
    }
    return out;
  }

  /** The consumer took `item` (the oldest requested). */
  taken(item: RetrieveItem): void {
    this.ahead -= 1;
    this.bytesAhead -= item.size ?? 0;
  }
}
