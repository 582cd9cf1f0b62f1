/**
 * The state machine that reads a message's bytes into its metadata: the root header block
 * first, then (unless the root is a single text part) the MIME structure through mailsplit's
 * Splitter, counting each attachment's decoded size as it passes.
 */
import type { Transform } from 'node:stream';
import type { SplitterChunk } from '@zone-eu/mailsplit';
import { createDecodedSizeCounter, type DecodedSizeCounter } from './decoded-size.js';
import type { AttachmentSummary, MessageMetadata } from './events.js';
import { HEADER_LINE_MIN_COST, type HeaderBlock, HeaderBlockReader } from './header-block.js';
import { LIBRARIES_NOT_LOADED, loadMailLibraries, mailLibraries } from './mail-libraries.js';
import { buildMetadata } from './metadata-assembly.js';
import { MAX_ATTACHMENTS, MAX_MIME_DEPTH, MAX_MIME_PARTS, truncationBit } from './metadata-limits.js';
import { depthOf, isAttachment, type PartNode, summarizeAttachment } from './mime-parts.js';
import { type HeaderFields, readRootHeaders, ROOT_FIELDS } from './root-headers.js';

type SplitterStream = InstanceType<(typeof import('@zone-eu/mailsplit'))['Splitter']>;
export type WriteCallback = (error?: Error | null) => void;

/** Reading the root header block. */
const HEAD = 0;
/** Waiting for the mail libraries to load, the root header block read. */
const LOADING = 1;
/** A single text part (most mail): the body needs no reading. */
const SKIP_BODY = 2;
/** Anything else: the body goes through mailsplit's Splitter. */
const SPLIT = 3;
/** The structure walk was given up (limits, a splitter error): the rest is not read. */
const IGNORE_REST = 4;

const noop = (): void => {};

/**
 * Reads a message's bytes into its metadata: `write` each chunk in order, waiting for its
 * callback (called at once unless the mail libraries load or mailsplit works on the bytes),
 * then `end`. No stream: MetadataStream wraps it as one, readMetadata feeds it a whole message.
 */
export class MetadataReader {
  destroyed = false;
  private phase = HEAD;
  private readonly header: HeaderBlockReader;
  private block: HeaderBlock | undefined;
  /** Bit i set: TRUNCATABLE_FIELDS[i] was cut. */
  private truncated = 0;
  private fields: HeaderFields = {};
  private readonly attachments: AttachmentSummary[] = [];
  /** The attachment whose body is being counted. */
  private counting: { summary: AttachmentSummary; counter: DecodedSizeCounter; node: PartNode } | undefined;
  private splitter: SplitterStream | undefined;
  /** Callbacks held while the splitter works on our data. */
  private pendingWrite: WriteCallback | undefined;
  private pendingFinal: WriteCallback | undefined;
  private metadata: MessageMetadata | undefined;
  private failure: Error | undefined;
  private settle: { resolve(m: MessageMetadata): void; reject(e: Error): void } | undefined;
  private resultPromise: Promise<MessageMetadata> | undefined;

  constructor(private readonly maxHeaderBytes: number) {
    this.header = new HeaderBlockReader(maxHeaderBytes, ROOT_FIELDS);
  }

  /** The metadata when it is known already (the message was read at once), else undefined. */
  metadataNow(): MessageMetadata | undefined {
    return this.metadata;
  }

  result(): Promise<MessageMetadata> {
    this.resultPromise ??= new Promise<MessageMetadata>((resolve, reject) => {
      if (this.metadata) resolve(this.metadata);
      else if (this.failure) reject(this.failure);
      else this.settle = { resolve, reject };
    });
    return this.resultPromise;
  }

  write(chunk: Buffer, callback: WriteCallback): void {
    if (this.phase !== HEAD) return this.writeBody(chunk, callback);
    const bodyStart = this.header.push(chunk);
    if (bodyStart === -1) return callback();
    this.block ??= this.header.finish();
    if (this.tryReadRoot()) {
      // Read at once (most messages): the body's first bytes go on only to a splitter (no
      // closure and no view of the rest of the chunk otherwise).
      return bodyStart === chunk.length || (this.phase as number) !== SPLIT ? callback() : this.writeBody(chunk.subarray(bodyStart), callback);
    }
    const rest = bodyStart === chunk.length ? undefined : chunk.subarray(bodyStart);
    this.waitForLibraries(() => (rest ? this.writeBody(rest, callback) : callback()));
  }

  end(callback: WriteCallback): void {
    if (this.phase === HEAD) this.startBody(() => this.endBody(callback)); // all header, no body
    else this.endBody(callback);
  }

  /** Stop: the result rejects unless it is known already. */
  destroy(error: Error | null): void {
    this.destroyed = true;
    if (!this.metadata && !this.failure) this.fail(error ?? new Error('the metadata stream was destroyed before the message ended'));
    this.dropSplitter();
  }

  private writeBody(chunk: Buffer, callback: WriteCallback): void {
    if (this.phase !== SPLIT) return callback();
    this.pendingWrite = callback;
    this.splitter!.write(chunk, () => this.releaseWrite(callback));
  }

  private endBody(callback: WriteCallback): void {
    if (this.phase !== SPLIT) return this.complete(callback);
    this.pendingFinal = callback;
    this.splitter!.end();
  }

  /**
   * The root header block is complete: read it and decide how to read the body, then `next()`.
   * When that needs the mail libraries and they are not loaded yet, load them first (the write
   * callback waits, so the writer waits too).
   */
  private startBody(next: () => void): void {
    this.block ??= this.header.finish();
    if (this.tryReadRoot()) return next();
    this.waitForLibraries(next);
  }

  /** The root headers need the mail libraries: load them, read the root, then `next()`. */
  private waitForLibraries(next: () => void): void {
    this.phase = LOADING;
    loadMailLibraries().then(
      () => {
        if (this.destroyed) return;
        if (!this.tryReadRoot()) this.fail(new Error('the mail libraries did not load'));
        next();
      },
      (error: unknown) => {
        if (this.destroyed) return;
        this.fail(asError(error));
        this.phase = IGNORE_REST;
        next();
      },
    );
  }

  /** Read the root headers; false when that needs the mail libraries, not loaded yet. */
  private tryReadRoot(): boolean {
    try {
      this.readRoot(this.block!);
      return true;
    } catch (error) {
      if (error === LIBRARIES_NOT_LOADED) return false;
      // Not broken mail (that never throws) but a defect: report it as a metadata failure.
      this.fail(asError(error));
      this.phase = IGNORE_REST;
      return true;
    }
  }

  /** Read the root headers and set the phase. Throws LIBRARIES_NOT_LOADED before any change. */
  private readRoot(block: HeaderBlock): void {
    const root = readRootHeaders(block);
    let splitter: SplitterStream | undefined;
    if (!root.singleTextPart) {
      const { Splitter } = mailLibraries().mailsplit;
      splitter = new Splitter({ maxHeadSize: this.maxHeaderBytes + HEADER_LINE_MIN_COST, maxChildNodes: MAX_MIME_PARTS });
    }
    this.fields = root.fields;
    this.truncated |= root.truncated | (block.truncated ? truncationBit('headers') : 0);
    this.block = undefined; // the splitter (if any) has its own reference
    if (!splitter) {
      this.phase = SKIP_BODY;
      return;
    }
    this.phase = SPLIT;
    splitter.on('data', (data: SplitterChunk) => this.onPart(data));
    // (mailsplit's typings declare only the 'data' event)
    const events = splitter as unknown as Transform;
    events.on('error', () => this.giveUpStructure());
    events.on('end', () => this.onSplitEnd());
    this.splitter = splitter;
    splitter.write(block.bytes);
  }

  private onPart(data: SplitterChunk): void {
    if (this.phase !== SPLIT) return;
    try {
      this.readPart(data);
    } catch {
      // Runs inside mailsplit's callbacks, where a throw would be uncaught: a part that makes
      // a library throw ends the walk like any part mailsplit refuses.
      this.giveUpStructure();
    }
  }

  private readPart(data: SplitterChunk): void {
    if (data.type === 'node') {
      this.finishAttachment();
      if (depthOf(data) > MAX_MIME_DEPTH) return this.giveUpStructure();
      // Containers: multiparts, and message/rfc822 parts mailsplit walks into.
      if (data.multipart || data.messageNode) return;
      if (!isAttachment(data)) return;
      if (this.attachments.length === MAX_ATTACHMENTS) return this.giveUpStructure();
      const { summary, cut } = summarizeAttachment(data);
      if (cut) this.truncated |= truncationBit('attachments');
      this.attachments.push(summary);
      this.counting = { summary, counter: createDecodedSizeCounter(data.encoding), node: data };
    } else if (data.type === 'body' && this.counting?.node === data.node) {
      this.counting.counter.write(data.value);
    }
  }

  private finishAttachment(): void {
    if (!this.counting) return;
    this.counting.summary.size = this.counting.counter.end();
    this.counting = undefined;
  }

  private releaseWrite(callback: WriteCallback): void {
    if (this.pendingWrite !== callback) return; // released already by giveUpStructure()
    this.pendingWrite = undefined;
    callback();
  }

  private onSplitEnd(): void {
    if (this.phase !== SPLIT) return;
    this.finishAttachment();
    this.phase = IGNORE_REST;
    this.dropSplitter();
    const final = this.pendingFinal;
    this.pendingFinal = undefined;
    if (final) this.complete(final);
  }

  /**
   * Stop walking the MIME structure (too deep, too many parts or attachments, or mailsplit
   * gave up on the input): keep what was found, mark the list incomplete, and let the rest of
   * the bytes through unread.
   */
  private giveUpStructure(): void {
    if (this.phase !== SPLIT) return;
    this.phase = IGNORE_REST;
    this.truncated |= truncationBit('attachments');
    this.finishAttachment();
    this.dropSplitter();
    const write = this.pendingWrite;
    this.pendingWrite = undefined;
    const final = this.pendingFinal;
    this.pendingFinal = undefined;
    write?.();
    if (final) this.complete(final);
  }

  private dropSplitter(): void {
    const splitter = this.splitter;
    if (!splitter) return;
    this.splitter = undefined;
    const events = splitter as unknown as Transform;
    events.removeAllListeners();
    events.on('error', noop);
    events.destroy();
  }

  private complete(callback: WriteCallback): void {
    if (this.failure) return callback();
    try {
      this.metadata = buildMetadata(this.fields, this.attachments, this.truncated);
    } catch (error) {
      this.fail(asError(error)); // a defect, as above
      return callback();
    }
    this.settle?.resolve(this.metadata);
    callback();
  }

  private fail(error: Error): void {
    if (this.failure || this.metadata) return;
    this.failure = error;
    this.settle?.reject(error);
  }
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
