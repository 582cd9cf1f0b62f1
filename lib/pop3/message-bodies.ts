/**
 * The bodies of RETR and TOP: streamed to the caller with backpressure on the socket, or
 * received whole (`RetrieveOptions.collectUpTo`) as the socket's chunks and handed over at the
 * end, unless the body runs well past its listed size (then it is streamed after all). Bodies
 * received whole have backpressure too: once those handed over and not yet claimed by the
 * consumer pass `maxUnclaimedBytes`, the socket is paused until claims bring them to half.
 */
import { Readable } from 'node:stream';
import { COLLECT_SLACK_BYTES } from './limits.js';
import type { StreamPending } from './pending.js';

/** A message (or TOP excerpt) as it streams from the server: exactly the served bytes. */
export interface MessageStream {
  number: number;
  /** The text after +OK (often the size). */
  statusText: string;
  /** The bytes; backpressure applies to the socket. Consume or destroy it. */
  stream: Readable;
  /**
   * Set when the message was received whole (`RetrieveOptions.collectUpTo`): its bytes, as
   * they came (sub-arrays of the socket's chunks, not copied). `stream` then reads them (it is
   * made on first access).
   */
  body?: readonly Buffer[];
}

/**
 * A body being received whole, up to `limit` bytes: the framer's sub-arrays of the socket's
 * chunks, kept as they are. A socket chunk is a buffer of its own, of the size read (Node
 * gives each TLS record, each TCP read, its own): keeping a view of it holds no more than the
 * chunk, and most of a chunk is message bytes. Copying each body into one buffer of its listed
 * size cost a fresh allocation (page faults) and a copy per message, before the store copies
 * it again.
 */
interface Collected {
  statusText: string;
  chunks: Buffer[];
  bytes: number;
  limit: number;
}

/** The body of a RETR/TOP after its +OK: streamed, or being received whole. */
export type ReceivingBody = { mode: 'stream'; stream: BodyStream } | { mode: 'whole'; collected: Collected };

/** What the bodies need of the socket. */
export interface FlowControl {
  pause(): void;
  resume(): void;
}

const noop = (): void => {};

class BodyStream extends Readable {
  /** The command whose body this is, while it is still being received. */
  pending: StreamPending | undefined;
  constructor(
    private readonly owner: MessageBodies,
    highWaterMark: number,
  ) {
    super({ highWaterMark });
  }
  override _read(): void {
    this.owner.streamWantsData(this);
  }
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.owner.streamDestroyed(this);
    callback(error);
  }
}

/** A message received whole: its chunks, and a stream over them for callers that want one. */
class WholeMessage implements MessageStream {
  private readable: Readable | undefined;
  constructor(
    readonly number: number,
    readonly statusText: string,
    readonly body: readonly Buffer[],
  ) {}
  get stream(): Readable {
    this.readable ??= Readable.from(this.body, { objectMode: false });
    return this.readable;
  }
}

export class MessageBodies {
  /** Streams whose consumer is behind: while any is, the socket stays paused. */
  private readonly fullStreams = new Set<BodyStream>();
  /** Bytes of bodies received whole and handed over, not claimed yet (`StreamPending.held`). */
  private unclaimedBytes = 0;
  /** Bytes of bodies being received whole (not complete yet). */
  private collectingBytes = 0;
  /** The socket is paused because too many unclaimed bytes are held. */
  private tooMuchUnclaimed = false;

  constructor(
    private readonly socket: FlowControl,
    private readonly highWaterMark: number,
    private readonly maxUnclaimedBytes: number,
  ) {}

  /** A consumer holds the socket back (the server's silence is then not its fault). */
  get holdingBack(): boolean {
    return this.fullStreams.size > 0 || this.tooMuchUnclaimed;
  }

  /** Bytes of bodies received whole that the consumer has not claimed, complete or not. */
  get heldBytes(): number {
    return this.unclaimedBytes + this.collectingBytes;
  }

  /** The +OK to a RETR/TOP arrived: receive its body whole, or give it a stream now. */
  begin(pending: StreamPending, statusText: string): void {
    if (pending.discard) return;
    const size = pending.collectSize;
    if (size === undefined) {
      this.startStream(pending, statusText);
      return;
    }
    pending.body = {
      mode: 'whole',
      collected: { statusText, chunks: [], bytes: 0, limit: size + COLLECT_SLACK_BYTES },
    };
  }

  /** Unstuffed body bytes. */
  data(pending: StreamPending, data: Buffer): void {
    if (pending.discard) return;
    const body = pending.body;
    if (body?.mode === 'whole') {
      const collected = body.collected;
      collected.bytes += data.length;
      if (collected.bytes <= collected.limit) {
        this.collectingBytes += data.length;
        collected.chunks.push(data);
        return;
      }
      // Longer than its listing said: stream it after all, so backpressure applies again.
      this.collectingBytes -= collected.bytes - data.length;
      const stream = this.startStream(pending, collected.statusText);
      for (const chunk of collected.chunks) this.push(stream, chunk);
      this.pushUnlessDestroyed(stream, data);
      return;
    }
    if (body?.mode === 'stream') this.pushUnlessDestroyed(body.stream, data);
  }

  /** The terminator was read: hand over a body received whole, or end its stream. */
  end(pending: StreamPending): void {
    const body = pending.body;
    if (body?.mode === 'whole') {
      pending.body = undefined;
      const bytes = body.collected.bytes;
      this.collectingBytes -= bytes;
      pending.held = bytes;
      this.unclaimedBytes += bytes;
      // Paused between two responses, and only when the consumer has something to take.
      if (!this.tooMuchUnclaimed && this.unclaimedBytes > this.maxUnclaimedBytes) {
        this.tooMuchUnclaimed = true;
        this.socket.pause();
      }
      pending.deliver(new WholeMessage(pending.messageNumber, body.collected.statusText, body.collected.chunks));
    } else if (body?.mode === 'stream') {
      body.stream.pending = undefined;
      if (!body.stream.destroyed) body.stream.push(null);
    }
  }

  /**
   * The consumer took the message received whole for `pending`: its bytes are no longer held
   * for it, and the socket resumes once what is left is half the bound (and no stream is full).
   */
  claim(pending: StreamPending): void {
    if (pending.held === undefined || pending.held === 0) return;
    this.unclaimedBytes -= pending.held;
    pending.held = 0;
    if (this.tooMuchUnclaimed && this.unclaimedBytes <= this.maxUnclaimedBytes >> 1) {
      this.tooMuchUnclaimed = false;
      if (this.fullStreams.size === 0) this.socket.resume();
    }
  }

  /** The consumer does not want this body (any more): read and drop it. */
  discard(pending: StreamPending): void {
    pending.discard = true;
    this.claim(pending);
    const body = pending.body;
    if (body?.mode === 'whole') {
      this.collectingBytes -= body.collected.bytes;
      pending.body = undefined;
    } else if (body?.mode === 'stream' && !body.stream.destroyed) body.stream.destroy();
  }

  /** The session failed: a stream still being read ends with `error`. */
  fail(pending: StreamPending, error: Error): void {
    const body = pending.body;
    if (body?.mode !== 'stream') return;
    const stream = body.stream;
    if (!stream.destroyed && !stream.readableEnded) {
      // A consumer that has not attached yet sees the error through the stream's state
      // (stream.errored, pipeline(), finished()) instead of an uncaught 'error' event.
      if (stream.listenerCount('error') === 0) stream.on('error', noop);
      stream.destroy(error);
    }
  }

  /** Forget what held the socket back (the session is over). */
  clear(): void {
    this.fullStreams.clear();
    this.unclaimedBytes = 0;
    this.collectingBytes = 0;
    this.tooMuchUnclaimed = false;
  }

  /** A stream's consumer wants more: resume the socket once no stream is full and not too much is held. */
  streamWantsData(stream: BodyStream): void {
    if (this.fullStreams.delete(stream) && this.fullStreams.size === 0 && !this.tooMuchUnclaimed) this.socket.resume();
  }

  /** A stream was destroyed (by its consumer, or after it ended): drop the rest of its body. */
  streamDestroyed(stream: BodyStream): void {
    if (stream.pending !== undefined) {
      stream.pending.discard = true;
      stream.pending = undefined;
    }
    this.streamWantsData(stream);
  }

  /** Give the body of a RETR/TOP its stream and hand it to the caller. */
  private startStream(pending: StreamPending, statusText: string): BodyStream {
    const stream = new BodyStream(this, this.highWaterMark);
    stream.pending = pending;
    pending.body = { mode: 'stream', stream };
    pending.deliver({ number: pending.messageNumber, statusText, stream });
    return stream;
  }

  private pushUnlessDestroyed(stream: BodyStream, data: Buffer): void {
    if (!stream.destroyed) this.push(stream, data);
  }

  private push(stream: BodyStream, data: Buffer): void {
    if (!stream.push(data)) {
      this.fullStreams.add(stream);
      this.socket.pause();
    }
  }
}
