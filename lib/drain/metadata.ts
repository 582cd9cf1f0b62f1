/**
 * The `metadata` of an `Email Stored` event, read from a message while its bytes stream past,
 * in memory bounded whatever the message's shape.
 *
 * - The root header block is collected by HeaderBlockReader within `maxHeaderBytes` (fields
 *   that do not fit are dropped whole: `truncated: ["headers"]`) and decoded with the
 *   libraries mailparser is built on: libmime (RFC 2047 encoded words in any charset) and
 *   nodemailer's addressparser (see address-list.ts). mailparser itself is not used: it keeps
 *   text bodies whole, and it takes ~190 ms to import. The libraries themselves load on first
 *   need (mail-libraries.ts): plain messages never wait for them.
 * - A message whose root is a single inline text part (most mail) needs nothing more: its
 *   body is not read at all.
 * - Anything else is walked with mailsplit's Splitter (mailparser's own MIME splitter) as a
 *   stream; the body of each attachment is counted as it passes (decoded size, see
 *   decoded-size.ts) and never kept.
 * - Every field is cut to a limit (metadata-limits.ts) so the event can never outgrow an EventBridge entry;
 *   `truncated` names what was cut or is incomplete.
 *
 * Broken mail never makes `result()` reject: whatever could be read is returned. It rejects
 * only when the stream was destroyed before it ended (and on a defect of this module).
 *
 * The parts, in reading order: metadata-limits.ts (every limit), metadata-reader.ts (the state
 * machine), root-headers.ts (the root header fields), mime-parts.ts (attachments),
 * metadata-assembly.ts (the result within its JSON budget).
 */
import { Writable } from 'node:stream';
import type { MessageMetadata } from './events.js';
import { DEFAULT_MAX_HEADER_BYTES, MIN_MAX_HEADER_BYTES } from './metadata-limits.js';
import { MetadataReader, type WriteCallback } from './metadata-reader.js';

export {
  DEFAULT_MAX_HEADER_BYTES,
  MAX_ADDRESS_CHARS,
  MAX_ADDRESSES_PER_LIST,
  MAX_ATTACHMENTS,
  MAX_CONTENT_TYPE_CHARS,
  MAX_FILENAME_CHARS,
  MAX_MESSAGE_ID_CHARS,
  MAX_METADATA_JSON_BYTES,
  MAX_MIME_DEPTH,
  MAX_MIME_PARTS,
  MAX_NAME_CHARS,
  MAX_SUBJECT_CHARS,
  MIN_MAX_HEADER_BYTES,
  TRUNCATABLE_FIELDS,
  type TruncatedField,
} from './metadata-limits.js';


export interface MetadataExtractor {
  /** Write the message's exact bytes here, honouring `write()` returning false, then end it. */
  readonly stream: Writable;
  /** The metadata, once `stream` has ended. Rejects only if `stream` was destroyed first. */
  result(): Promise<MessageMetadata>;
}

export interface MetadataExtractorOptions {
  /**
   * Most bytes of the root header block kept for parsing; fields past it are dropped whole and
   * `truncated` lists `"headers"`. The MIME structure is still walked.
   * @default 262144 (256 KiB)
   */
  maxHeaderBytes?: number;
}

export function createMetadataExtractor(options: MetadataExtractorOptions = {}): MetadataExtractor {
  const stream = new MetadataStream(maxHeaderBytesOf(options));
  return { stream, result: () => stream.reader.result() };
}

/**
 * The metadata of a message whose bytes are all at hand (`chunks`, in order), without a
 * stream: what createMetadataExtractor gives for the same bytes. Most messages are read at
 * once: then the metadata itself is returned, not a promise (no promise and no continuation
 * per message on the drain's path); otherwise (the mail libraries load first, or mailsplit
 * works on the body) a promise of it, which rejects only on a defect of this module.
 */
export function readMetadata(chunks: readonly Buffer[], options: MetadataExtractorOptions = {}): MessageMetadata | Promise<MessageMetadata> {
  const reader = new MetadataReader(maxHeaderBytesOf(options));
  let next = 0;
  // Chunks are written one after the other; a callback that comes at once continues the loop
  // here (no recursion, however many chunks), one that comes later continues it from there.
  let looping = false;
  let calledBack = false;
  const feed = (): void => {
    looping = true;
    do {
      calledBack = false;
      if (next < chunks.length) reader.write(chunks[next++]!, onWritten);
      else {
        reader.end(noop);
        break;
      }
    } while (calledBack);
    looping = false;
  };
  const onWritten = (): void => {
    if (looping) calledBack = true;
    else feed();
  };
  feed();
  return reader.metadataNow() ?? reader.result();
}

function maxHeaderBytesOf(options: MetadataExtractorOptions): number {
  const maxHeaderBytes = options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  if (!Number.isSafeInteger(maxHeaderBytes) || maxHeaderBytes < MIN_MAX_HEADER_BYTES) {
    throw new RangeError(`maxHeaderBytes must be an integer >= ${MIN_MAX_HEADER_BYTES}, got ${maxHeaderBytes}`);
  }
  return maxHeaderBytes;
}

/** MetadataReader as a Writable stream (createMetadataExtractor). */
class MetadataStream extends Writable {
  readonly reader: MetadataReader;

  constructor(maxHeaderBytes: number) {
    // Nothing to release at the end: no close event, no destroy after finish (cheaper per message).
    super({ autoDestroy: false, emitClose: false });
    this.reader = new MetadataReader(maxHeaderBytes);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: WriteCallback): void {
    this.reader.write(chunk, callback);
  }

  override _final(callback: WriteCallback): void {
    this.reader.end(callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.reader.destroy(error);
    callback(error);
  }
}

const noop = (): void => {};
