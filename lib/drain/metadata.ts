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
 * - Every field is cut to a limit (below) so the event can never outgrow an EventBridge entry;
 *   `truncated` names what was cut or is incomplete.
 *
 * Broken mail never makes `result()` reject: whatever could be read is returned. It rejects
 * only when the stream was destroyed before it ended (and on a defect of this module).
 */
import { type Transform, Writable } from 'node:stream';
import type { SplitterChunk } from '@zone-eu/mailsplit';
import { clip, parseAddressList } from './address-list.js';
import { createDecodedSizeCounter, type DecodedSizeCounter } from './decoded-size.js';
import type { AttachmentSummary, EmailAddress, MessageMetadata } from './events.js';
import { fieldNames, HEADER_LINE_MIN_COST, type HeaderBlock, HeaderBlockReader, type HeaderField } from './header-block.js';
import { parseMailDate } from './mail-date.js';
import { LIBRARIES_NOT_LOADED, loadMailLibraries, mailLibraries } from './mail-libraries.js';

// -------------------------------------------------------------------------------------------
// Limits. schemas/popdrain-events.schema.json states the same numbers.

/** Default cap on the root header block kept for parsing (`maxHeaderBytes`). */
export const DEFAULT_MAX_HEADER_BYTES = 256 * 1024;
/** The smallest `maxHeaderBytes` accepted. */
export const MIN_MAX_HEADER_BYTES = 1024;
export const MAX_SUBJECT_CHARS = 1000;
/** RFC 5322's line limit; a real Message-ID is far shorter. */
export const MAX_MESSAGE_ID_CHARS = 998;
export const MAX_NAME_CHARS = 320;
export const MAX_ADDRESS_CHARS = 320;
export const MAX_ADDRESSES_PER_LIST = 100;
export const MAX_ATTACHMENTS = 100;
export const MAX_FILENAME_CHARS = 255;
export const MAX_CONTENT_TYPE_CHARS = 255;
/**
 * The metadata as JSON (UTF-8) never exceeds this, half of an EventBridge entry. The limits
 * per field alone do not ensure it: 3 lists of 100 addresses of 2 x 320 characters are
 * 192,000 characters, and a control character takes 6 bytes in JSON. Past it, entries are
 * dropped from the end of the longest list.
 */
export const MAX_METADATA_JSON_BYTES = 128 * 1024;
/** MIME parts nested deeper than this end the structure walk (`truncated: ["attachments"]`). */
export const MAX_MIME_DEPTH = 32;
/** MIME parts (containers included) walked at most, as mailsplit's `maxChildNodes`. */
export const MAX_MIME_PARTS = 20_000;

/** What `truncated` can name, in the order it lists them. */
export const TRUNCATABLE_FIELDS = ['headers', 'messageId', 'subject', 'from', 'to', 'cc', 'attachments'] as const;
export type TruncatedField = (typeof TRUNCATABLE_FIELDS)[number];

// -------------------------------------------------------------------------------------------

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
 * once (the promise is already settled); rejects only on a defect of this module.
 */
export function readMetadata(chunks: readonly Buffer[], options: MetadataExtractorOptions = {}): Promise<MessageMetadata> {
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
  return reader.result();
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

// -------------------------------------------------------------------------------------------

type PartNode = Extract<SplitterChunk, { type: 'node' }>;
type SplitterStream = InstanceType<(typeof import('@zone-eu/mailsplit'))['Splitter']>;
type WriteCallback = (error?: Error | null) => void;

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
class MetadataReader {
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
    const rest = bodyStart === chunk.length ? undefined : chunk.subarray(bodyStart);
    this.startBody(() => (rest ? this.writeBody(rest, callback) : callback()));
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
    this.truncated |= root.truncated | (block.truncated ? bit('headers') : 0);
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
      if (cut) this.truncated |= bit('attachments');
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
    this.truncated |= bit('attachments');
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

// -------------------------------------------------------------------------------------------
// Root headers

interface HeaderFields {
  messageId?: string;
  date?: string;
  from?: EmailAddress[];
  to?: EmailAddress[];
  cc?: EmailAddress[];
  subject?: string;
}

/** The root header fields read; the first of each, but every To and Cc, as mailparser reads them. */
const ROOT_FIELDS = fieldNames([
  'message-id',
  'date',
  'from',
  'to',
  'cc',
  'subject',
  'content-type',
  'content-disposition',
]);

/**
 * A Content-Type (trimmed) that makes the root a single inline text part whatever else the
 * message says (no name parameter, nothing mailsplit could read differently). Other types,
 * however ordinary, go through the Splitter, which decides as mailparser would. No two
 * quantifiers here can match the same whitespace: a hostile value cannot make it backtrack.
 */
const SIMPLE_TEXT_TYPE =
  /^text\/(?:plain|html)(?:\s*;\s*(?:charset|format|delsp|reply-type)\s*=\s*(?:"[^"\\]*"|[^\s;"()\\]+))*\s*;?$/i;
const NON_ASCII = /[^\x00-\x7f]/;
const FOLD = /\r?\n[ \t]*|\r[ \t]*/g;

const ADDRESS_LIMITS = {
  maxAddresses: MAX_ADDRESSES_PER_LIST,
  maxNameChars: MAX_NAME_CHARS,
  maxAddressChars: MAX_ADDRESS_CHARS,
};

interface RootHeaders {
  fields: HeaderFields;
  /** TRUNCATABLE_FIELDS bits of the fields that were cut. */
  truncated: number;
  /** The root is one inline text part: the body holds nothing for the metadata. */
  singleTextPart: boolean;
}

/** Throws LIBRARIES_NOT_LOADED when a field needs a library that is not loaded yet. */
function readRootHeaders(block: HeaderBlock): RootHeaders {
  const bytes = block.bytes;
  const text = bytes.toString('latin1');
  const fields: HeaderFields = {};
  let truncated = 0;
  let messageId: HeaderField | undefined;
  let date: HeaderField | undefined;
  let from: HeaderField | undefined;
  let subject: HeaderField | undefined;
  let contentType: HeaderField | undefined;
  let disposition: HeaderField | undefined;
  let to: string[] | undefined;
  let cc: string[] | undefined;
  for (const field of block.fields) {
    switch (field.name) {
      case 'message-id':
        messageId ??= field;
        break;
      case 'date':
        date ??= field;
        break;
      case 'from':
        from ??= field;
        break;
      case 'to':
        (to ??= []).push(headerValue(text, bytes, field));
        break;
      case 'cc':
        (cc ??= []).push(headerValue(text, bytes, field));
        break;
      case 'subject':
        subject ??= field;
        break;
      case 'content-type':
        contentType ??= field;
        break;
      case 'content-disposition':
        disposition ??= field;
        break;
    }
  }

  if (messageId) {
    const id = normalizeMessageId(headerValue(text, bytes, messageId));
    if (id !== undefined) {
      if (id.length > MAX_MESSAGE_ID_CHARS) truncated |= bit('messageId');
      fields.messageId = clip(id, MAX_MESSAGE_ID_CHARS);
    }
  }
  if (date) {
    const iso = safely(() => parseMailDate(headerValue(text, bytes, date)));
    if (iso) fields.date = iso;
  }
  if (from) {
    const parsed = safely(() => parseAddressList([headerValue(text, bytes, from)], ADDRESS_LIMITS));
    if (parsed?.truncated) truncated |= bit('from');
    if (parsed?.list) fields.from = parsed.list;
  }
  if (to) {
    const parsed = safely(() => parseAddressList(to, ADDRESS_LIMITS));
    if (parsed?.truncated) truncated |= bit('to');
    if (parsed?.list) fields.to = parsed.list;
  }
  if (cc) {
    const parsed = safely(() => parseAddressList(cc, ADDRESS_LIMITS));
    if (parsed?.truncated) truncated |= bit('cc');
    if (parsed?.list) fields.cc = parsed.list;
  }
  if (subject) {
    const raw = headerValue(text, bytes, subject);
    if (raw) {
      const decoded = raw.includes('=?') ? decodeWords(raw) : raw;
      if (decoded.length > MAX_SUBJECT_CHARS) truncated |= bit('subject');
      fields.subject = clip(decoded, MAX_SUBJECT_CHARS);
    }
  }

  const type = contentType ? headerValue(text, bytes, contentType) : '';
  const disp = disposition ? headerValue(text, bytes, disposition) : '';
  const singleTextPart = (!disp || /^inline$/i.test(disp)) && (!type || SIMPLE_TEXT_TYPE.test(type));
  return { fields, truncated, singleTextPart };
}

/**
 * A header field's value, unfolded and trimmed, read as mailsplit reads header lines: the
 * bytes as UTF-8 when they are valid UTF-8, else as Latin-1 (raw 8-bit headers mostly are).
 * `text` is the whole block as Latin-1 (one byte, one character).
 */
function headerValue(text: string, bytes: Buffer, field: HeaderField): string {
  let value = text.slice(text.indexOf(':', field.start) + 1, field.end);
  if (NON_ASCII.test(value)) {
    const utf8 = bytes.toString('utf8', field.start, field.end);
    if (!utf8.includes('\uFFFD')) value = utf8.slice(utf8.indexOf(':') + 1);
  }
  if (value.includes('\n') || value.includes('\r')) value = value.replace(FOLD, ' ');
  return value.trim();
}

/** RFC 2047 encoded words decoded (any charset libmime knows); the text as is if that fails. */
function decodeWords(text: string): string {
  const { libmime } = mailLibraries();
  try {
    return libmime.decodeWords(text);
  } catch {
    return text;
  }
}

/** The first `<...>` of the value, or the whole value in angle brackets (mailparser's form). */
function normalizeMessageId(value: string): string | undefined {
  if (!value) return undefined;
  const bracketed = /<[^<>]+>/.exec(value);
  if (bracketed) return bracketed[0];
  const bare = value.replace(/^<+|>+$/g, '').trim();
  return bare ? `<${bare}>` : undefined;
}

// -------------------------------------------------------------------------------------------
// Parts

/** Leaf types mailparser shows as the message text rather than as attachments. */
const BODY_TYPES: ReadonlySet<string> = new Set(['text/plain', 'text/html', 'message/delivery-status']);

function depthOf(node: PartNode): number {
  let depth = 0;
  for (let p = node.parentNode; p; p = p.parentNode) if (++depth > MAX_MIME_DEPTH) break;
  return depth;
}

/**
 * mailparser's notion, and a file name: a leaf is an attachment when its disposition is
 * anything but inline, when it has a file name (mailparser would show a named text part as
 * text), or when it is not a text type mailparser shows as the message body.
 */
function isAttachment(node: PartNode): boolean {
  if (node.disposition && node.disposition !== 'inline') return true;
  if (node.filename) return true;
  return !BODY_TYPES.has(node.contentType || 'text/plain');
}

function summarizeAttachment(node: PartNode): { summary: AttachmentSummary; cut: boolean } {
  const filename = node.filename || undefined;
  let contentType = node.contentType || 'text/plain';
  if (contentType === 'application/octet-stream' && filename) {
    // as mailparser does: a better type from the file name's extension, when it knows one
    contentType = safely(() => mailLibraries().libmime.detectMimeType(filename)) || contentType;
  }
  const cut = contentType.length > MAX_CONTENT_TYPE_CHARS || (filename !== undefined && filename.length > MAX_FILENAME_CHARS);
  const summary = {} as AttachmentSummary;
  if (filename !== undefined) summary.filename = clip(filename, MAX_FILENAME_CHARS);
  summary.contentType = clip(contentType, MAX_CONTENT_TYPE_CHARS);
  summary.size = 0;
  return { summary, cut };
}

// -------------------------------------------------------------------------------------------
// Assembly and the size budget

function buildMetadata(fields: HeaderFields, attachments: AttachmentSummary[], truncatedBits: number): MessageMetadata {
  const metadata = {} as MessageMetadata;
  if (fields.messageId !== undefined) metadata.messageId = fields.messageId;
  if (fields.date !== undefined) metadata.date = fields.date;
  if (fields.from !== undefined) metadata.from = fields.from;
  if (fields.to !== undefined) metadata.to = fields.to;
  if (fields.cc !== undefined) metadata.cc = fields.cc;
  if (fields.subject !== undefined) metadata.subject = fields.subject;
  metadata.attachments = attachments;
  const bits = truncatedBits | fitJsonBudget(metadata);
  if (bits !== 0) metadata.truncated = TRUNCATABLE_FIELDS.filter((_, i) => (bits & (1 << i)) !== 0);
  return metadata;
}

type ListField = 'from' | 'to' | 'cc' | 'attachments';
const LIST_FIELDS: readonly ListField[] = ['from', 'to', 'cc', 'attachments'];
/** Room kept for `truncated` and the JSON punctuation not counted per entry. */
const JSON_SLACK_BYTES = 512;

/**
 * Drop entries from the end of the longest list until the JSON fits MAX_METADATA_JSON_BYTES.
 * Returns the truncation bits of the lists it shortened.
 */
function fitJsonBudget(metadata: MessageMetadata): number {
  // Cheap bound first: no character takes more than 6 bytes in JSON (a \u escape), no entry
  // more than 64 bytes of keys and punctuation. Ordinary mail ends here.
  let chars = (metadata.messageId?.length ?? 0) + (metadata.subject?.length ?? 0) + 32;
  let entries = 0;
  for (const list of [metadata.from, metadata.to, metadata.cc]) {
    if (!list) continue;
    entries += list.length;
    for (const a of list) chars += (a.name?.length ?? 0) + (a.address?.length ?? 0);
  }
  entries += metadata.attachments.length;
  for (const a of metadata.attachments) chars += (a.filename?.length ?? 0) + a.contentType.length;
  if (chars * 6 + entries * 64 + JSON_SLACK_BYTES <= MAX_METADATA_JSON_BYTES) return 0;

  const sizes = new Map<ListField, number[]>();
  const totals = new Map<ListField, number>();
  let total = jsonBytes({ ...metadata, from: [], to: [], cc: [], attachments: [] }) + JSON_SLACK_BYTES;
  for (const field of LIST_FIELDS) {
    const each = ((metadata[field] ?? []) as object[]).map((entry) => jsonBytes(entry) + 1);
    const sum = each.reduce((a, b) => a + b, 0);
    sizes.set(field, each);
    totals.set(field, sum);
    total += sum;
  }
  let bits = 0;
  while (total > MAX_METADATA_JSON_BYTES) {
    let longest: ListField | undefined;
    for (const field of LIST_FIELDS) {
      if (sizes.get(field)!.length > 0 && (longest === undefined || totals.get(field)! > totals.get(longest)!)) longest = field;
    }
    if (longest === undefined) break; // cannot happen: subject and Message-ID alone stay far below
    const dropped = sizes.get(longest)!.pop()!;
    totals.set(longest, totals.get(longest)! - dropped);
    total -= dropped;
    metadata[longest]!.pop();
    bits |= bit(longest);
  }
  for (const field of ['from', 'to', 'cc'] as const) if (metadata[field]?.length === 0) delete metadata[field];
  return bits;
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

function bit(field: TruncatedField): number {
  return 1 << TRUNCATABLE_FIELDS.indexOf(field);
}

function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value), 'utf8');
}

/**
 * The value, or undefined when a library throws on hostile input (the field is left out).
 * LIBRARIES_NOT_LOADED goes through: the extractor loads them and reads again.
 */
function safely<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch (error) {
    if (error === LIBRARIES_NOT_LOADED) throw error;
    return undefined;
  }
}
