/**
 * Ledger entries replayed from a log with their event still as bytes: a rerun that finds nothing
 * new reads every entry's status but hardly ever an event, and an event is most of an entry's
 * line (its metadata). So replay parses the entry's scalar fields and keeps the event's JSON
 * text as a view of the file's bytes; the event is parsed the first time anything reads it.
 *
 * To its readers such an entry is an ordinary `LedgerEntry`: `event` is an own enumerable
 * property (an accessor), so `entry.event`, `{ ...entry }`, `JSON.stringify` and
 * `structuredClone` all see the parsed event. Copies made with `copyEntry` stay lazy and share
 * the parse. Assigning `event` replaces it with a plain value.
 *
 * The fast path takes a `rec` line of the shape our writers produce: the entry's fields, all
 * scalars, `"event":{...}`, and possibly more scalar fields after it (a snapshot of an entry
 * announced or deleted since). Anything else is left to the caller's whole-line parse.
 */
import type { DrainEvent } from '../../drain/events.js';
import type { LedgerEntry } from '../../drain/ports.js';
import type { LogEventSource } from './log-event-source.js';

/** The body of a `rec` line up to the entry's opening brace. */
export const REC_PREFIX = '{"t":"rec","e":';
const REC_PREFIX_BYTES = Buffer.from(REC_PREFIX, 'latin1');
const EVENT_KEY = Buffer.from(',"event":', 'latin1');
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;

interface LazyEvent {
  /** The event's JSON text (a view of the log's bytes, or a copy) until parsed. */
  text: Buffer | undefined;
  value: DrainEvent | undefined;
  /** Or where the text is in the log file (replay from a file): read when needed. */
  source?: LogEventSource;
  at?: number;
  length?: number;
}

/** The event's JSON text, read from the log file if the entry holds only its place. */
function textOf(lazy: LazyEvent): Buffer {
  return lazy.text ?? lazy.source!.read(lazy.at!, lazy.length!);
}

const LAZY = Symbol('popdrain.lazyEvent');

type LazyEntry = LedgerEntry & { [LAZY]?: LazyEvent };

function readEvent(this: LazyEntry): DrainEvent {
  const lazy = this[LAZY]!;
  if (lazy.value === undefined) {
    lazy.value = JSON.parse(textOf(lazy).toString('utf8')) as DrainEvent;
    lazy.text = undefined;
    lazy.source = undefined;
  }
  return lazy.value;
}

function writeEvent(this: LazyEntry, value: DrainEvent): void {
  Object.defineProperty(this, 'event', { value, writable: true, enumerable: true, configurable: true });
}

const EVENT_ACCESSOR: PropertyDescriptor = { get: readEvent, set: writeEvent, enumerable: true, configurable: true };

function lazyOf(entry: LedgerEntry): LazyEvent | undefined {
  const lazy = (entry as LazyEntry)[LAZY];
  // Only while `event` is still the accessor (an assignment replaces it).
  return lazy !== undefined && Object.getOwnPropertyDescriptor(entry, 'event')?.get === readEvent ? lazy : undefined;
}

/**
 * The entry of a `rec` line's body (`{"t":"rec","e":{...}}`, checksum verified) with its event
 * left unparsed, or undefined when the line is not of the fast path's shape. The entry's keys
 * keep the line's order (fields, event, then any fields added after it, such as `announcedAt`).
 * With a `source` (the log file the body was read from, at `bodyOffset`), the entry keeps the
 * event's place in the file instead of a view of `body`.
 */
export function decodeEntryBody(body: Buffer, source?: LogEventSource, bodyOffset = 0): LedgerEntry | undefined {
  const n = body.length;
  if (n < REC_PREFIX_BYTES.length + EVENT_KEY.length + 4) return undefined;
  if (body[n - 1] !== CLOSE_BRACE || body[n - 2] !== CLOSE_BRACE) return undefined;
  if (body.compare(REC_PREFIX_BYTES, 0, REC_PREFIX_BYTES.length, 0, REC_PREFIX_BYTES.length) !== 0) return undefined;
  // The first `,"event":` cannot be inside a string (a quote there is escaped); if what comes
  // before it parses as an object of scalars, it is the entry's own key.
  const at = body.indexOf(EVENT_KEY, REC_PREFIX_BYTES.length);
  if (at === -1) return undefined;
  const eventStart = at + EVENT_KEY.length;
  const eventEnd = objectEnd(body, eventStart, n - 2);
  if (eventEnd === -1) return undefined;
  const head = scalarFields(body.toString('utf8', REC_PREFIX_BYTES.length, at) + '}');
  if (head === undefined) return undefined;
  // Every entry of a log names the same mailbox: one string for all of them.
  if (head.mailboxId === sharedMailboxId) head.mailboxId = sharedMailboxId;
  else if (typeof head.mailboxId === 'string') sharedMailboxId = head.mailboxId;
  // Fields after the event (`,"announcedAt":...`), as a snapshot of a changed entry has them.
  let tail: Record<string, unknown> | undefined;
  if (eventEnd < n - 2) {
    if (body[eventEnd] !== COMMA) return undefined;
    tail = scalarFields(`{${body.toString('utf8', eventEnd + 1, n - 2)}}`);
    if (tail === undefined) return undefined;
  }
  const lazy: LazyEvent =
    source === undefined
      ? { text: body.subarray(eventStart, eventEnd), value: undefined }
      : { text: undefined, value: undefined, source, at: bodyOffset + eventStart, length: eventEnd - eventStart };
  Object.defineProperty(head, LAZY, { value: lazy, enumerable: false, configurable: true });
  Object.defineProperty(head, 'event', EVENT_ACCESSOR);
  if (tail !== undefined) for (const key in tail) head[key] = tail[key];
  return head as unknown as LedgerEntry;
}

/** The mailbox id of the entry decoded last (decodeEntryBody). */
let sharedMailboxId: unknown;

/** An object of scalar fields (no `event`) parsed from `json`, or undefined. */
function scalarFields(json: string): Record<string, unknown> | undefined {
  let fields: unknown;
  try {
    fields = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) return undefined;
  for (const key in fields) {
    const value = (fields as Record<string, unknown>)[key];
    if (key === 'event' || (typeof value === 'object' && value !== null)) return undefined;
  }
  return fields as Record<string, unknown>;
}

/**
 * The index just past the JSON object that opens at `start` (strings and escapes respected),
 * or -1 when `start` holds no `{` or the object does not close before `limit`.
 */
function objectEnd(data: Buffer, start: number, limit: number): number {
  if (data[start] !== OPEN_BRACE) return -1;
  let depth = 0;
  let inString = false;
  for (let i = start; i < limit; i++) {
    const c = data[i];
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++;
    else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      if (--depth === 0) return i + 1;
    }
  }
  return -1;
}

/** Bytes of a log line before its body: the checksum as 8 hex digits and a space (ledger-log.ts). */
const LINE_HEAD_BYTES = 9;

/**
 * Kept event texts are copied into slabs of their own: a view of the line itself would keep
 * the line's whole allocation pool (8 KiB shared with every other small Buffer of the moment,
 * such as the event file's lines) alive, which measured 3x the texts' bytes.
 */
const KEPT_SLAB_BYTES = 256 * 1024;
let keptSlab: Buffer | undefined;
let keptUsed = 0;

function keptCopy(bytes: Buffer): Buffer {
  if (bytes.length > KEPT_SLAB_BYTES / 8) return Buffer.copyBytesFrom(bytes);
  if (keptSlab === undefined || keptUsed + bytes.length > keptSlab.length) {
    keptSlab = Buffer.allocUnsafeSlow(KEPT_SLAB_BYTES);
    keptUsed = 0;
  }
  const start = keptUsed;
  keptUsed += bytes.copy(keptSlab, start);
  return keptSlab.subarray(start, keptUsed);
}

/**
 * The entry as the ledger keeps it once `line` (its `rec` line: ledger-log.ts, encodeEntryLine
 * of entryJson, event last) is written: its fields, and its event as the line's bytes of it
 * (copied into a slab of kept texts), parsed the first time it is read, as a replayed entry's.
 * The ledger holds it so until the line is fsynced; from then on the entry is a row of columns
 * read back from its line when needed (recorded-entries.ts). An entry of another shape (a field
 * that is not a scalar, a line not ending in its event) is copied as is.
 */
export function entryKeptWith(entry: LedgerEntry, line: Buffer): LedgerEntry {
  const n = line.length;
  const at = line.indexOf(EVENT_KEY, LINE_HEAD_BYTES + REC_PREFIX_BYTES.length);
  const eventStart = at + EVENT_KEY.length;
  const eventEnd = n - 3; // the event's `}`, then the entry's and the record's, then the newline
  if (at === -1 || line[eventStart] !== OPEN_BRACE || line[eventEnd - 1] !== CLOSE_BRACE || line[eventEnd] !== CLOSE_BRACE || line[n - 2] !== CLOSE_BRACE) {
    return { ...entry };
  }
  const kept: Record<string, unknown> = {};
  for (const key in entry) {
    if (key === 'event') {
      Object.defineProperty(kept, 'event', EVENT_ACCESSOR);
      continue;
    }
    const value = (entry as unknown as Record<string, unknown>)[key];
    // The first `,"event":` of the line is the entry's own key only if no field holds an object.
    if (typeof value === 'object' && value !== null) return { ...entry };
    kept[key] = value;
  }
  const text = keptCopy(line.subarray(eventStart, eventEnd));
  Object.defineProperty(kept, LAZY, { value: { text, value: undefined }, enumerable: false, configurable: true });
  return kept as unknown as LedgerEntry;
}

/** A shallow copy of the entry (as `{ ...entry }`, keys in the same order), without parsing a lazy event. */
export function copyEntry(entry: LedgerEntry): LedgerEntry {
  const lazy = lazyOf(entry);
  if (lazy === undefined) return { ...entry };
  const copy: Record<string, unknown> = {};
  Object.defineProperty(copy, LAZY, { value: lazy, enumerable: false, configurable: true });
  for (const key in entry) {
    if (key === 'event') Object.defineProperty(copy, 'event', EVENT_ACCESSOR);
    else copy[key] = (entry as unknown as Record<string, unknown>)[key];
  }
  return copy as unknown as LedgerEntry;
}

/** The entry's fields other than the event, without parsing a lazy event. */
export function entryFields(entry: LedgerEntry): Omit<LedgerEntry, 'event'> {
  const fields: Record<string, unknown> = {};
  for (const key in entry) if (key !== 'event') fields[key] = (entry as unknown as Record<string, unknown>)[key];
  return fields as Omit<LedgerEntry, 'event'>;
}

/** The event's JSON text if it has not been parsed yet (read from the log file if need be). */
export function unparsedEventText(entry: LedgerEntry): Buffer | undefined {
  const lazy = lazyOf(entry);
  return lazy === undefined || lazy.value !== undefined ? undefined : textOf(lazy);
}

/**
 * `JSON.stringify(entry)` (keys in the entry's order) without parsing an event that was never
 * read: its text is written as it was read. For a snapshot of a log.
 */
export function entryJsonInOrder(entry: LedgerEntry): string {
  const unparsed = unparsedEventText(entry);
  if (unparsed === undefined) return JSON.stringify(entry);
  const parts: string[] = [];
  for (const key in entry) {
    if (key === 'event') {
      parts.push(`"event":${unparsed.toString('utf8')}`);
      continue;
    }
    const value = (entry as unknown as Record<string, unknown>)[key];
    if (value !== undefined) parts.push(`${JSON.stringify(key)}:${JSON.stringify(value)}`);
  }
  return `{${parts.join(',')}}`;
}
