/**
 * Events as JSON lines: each event is one line of `events.jsonl`, exactly the envelope a
 * subscriber of the bus would receive, with the event's stable id first:
 *
 *   {"id":"…","source":"popdrain","detail-type":"Email Stored","time":"…","detail":{…}}
 *
 * The file is opened with O_APPEND and every batch is one write of whole lines, fsynced before
 * `publish` resolves; events published together share that write and fsync (group commit).
 * Several processes may append to one file on a local file system: a single write of whole
 * lines to an O_APPEND file never interleaves with another's.
 *
 * Readers: treat the file as lines; skip an empty line and a line that is not valid JSON. Such
 * a line can only be what a writer killed in the middle of a write left behind (a prefix of an
 * object is never valid JSON); every event whose publish resolved is on its own complete line.
 * Before appending, a writer ends a torn last line with a newline, so it never merges with the
 * next event. An event may appear more than once (delivery is at least once): dedupe by id.
 * `readJsonlEvents` (jsonl-events-reader.ts) reads a file that way.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { envelopeJson, MAX_EVENT_ENTRY_BYTES, type DrainEvent, type EventEnvelope } from '../../drain/events.js';
import { silentLogger, type DrainLogger, type EventSink, type PublishOutcome } from '../../drain/ports.js';
import { CREATE_APPEND_FLAGS, errnoCode, FILE_MODE, OPEN_APPEND_FLAGS, fsyncDirectory, makeDurableDirectory, readAt, writeFully } from './durable-fs.js';
import { GroupCommit } from './group-commit.js';
import { fsFailureText } from './fs-failure-text.js';

export interface JsonlEventSinkOptions {
  /** The file to append to; it and its folder (0700) are created when missing, the file 0600. */
  path: string;
  /** @default silence */
  logger?: DrainLogger;
}

/** One line of the file: the envelope plus the event's id. */
export type JsonlEvent = { id: string } & EventEnvelope;

const NEWLINE = Buffer.from('\n');

interface Pending {
  lines: Buffer[];
}

export class JsonlEventSink implements EventSink {
  readonly path: string;
  private readonly logger: DrainLogger;
  private readonly commits: GroupCommit<Pending>;
  private handle: FileHandle | undefined;
  /** The file was created by us and its folder entry is not yet fsynced. */
  private created = false;
  /** The file's size after our last append, which ended with a newline. */
  private endOfOurs = -1;

  constructor(options: JsonlEventSinkOptions) {
    this.path = resolve(options.path);
    this.logger = options.logger ?? silentLogger;
    this.commits = new GroupCommit<Pending>((batch) => this.flush(batch));
  }

  async publish(events: readonly DrainEvent[]): Promise<PublishOutcome> {
    const outcome: PublishOutcome = { published: [], failed: [] };
    const lines: Buffer[] = [];
    const ids: string[] = [];
    for (const event of events) {
      const line = Buffer.from(`${envelopeJson(event)}\n`, 'utf8');
      if (line.length > MAX_EVENT_ENTRY_BYTES) {
        outcome.failed.push({ id: event.id, reason: `event is ${line.length} bytes, over the ${MAX_EVENT_ENTRY_BYTES}-byte limit` });
        continue;
      }
      lines.push(line);
      ids.push(event.id);
    }
    if (lines.length === 0) return outcome;
    try {
      await this.commits.submit({ lines });
      outcome.published.push(...ids);
    } catch (error) {
      const reason = `cannot append to ${this.path}: ${fsFailureText(error)}`;
      for (const id of ids) outcome.failed.push({ id, reason });
    }
    return outcome;
  }

  /** Wait for appends in flight and close the file (it is reopened when needed). */
  async close(): Promise<void> {
    await this.commits.drained();
    const handle = this.handle;
    this.handle = undefined;
    this.endOfOurs = -1;
    await handle?.close().catch(() => undefined);
  }

  private async flush(batch: Pending[]): Promise<void> {
    try {
      const handle = await this.openFile();
      const parts: Buffer[] = [];
      // A writer killed mid-write (this or another process) may have left a line without its
      // newline: end it, so that our first line stays whole.
      // (When the file ends where our last append ended, it ends with our newline.)
      const size = (await handle.stat()).size;
      if (size > 0 && size !== this.endOfOurs && (await readAt(handle, size - 1, 1))[0] !== NEWLINE[0]) parts.push(NEWLINE);
      for (const p of batch) parts.push(...p.lines);
      const data = Buffer.concat(parts);
      this.endOfOurs = -1;
      await writeFully(handle, data, true);
      await handle.datasync();
      this.endOfOurs = size + data.length;
      if (this.created) {
        await fsyncDirectory(dirname(this.path));
        this.created = false;
      }
    } catch (error) {
      this.logger.error('cannot append events', { path: this.path, code: errnoCode(error) });
      const handle = this.handle;
      this.handle = undefined;
      this.endOfOurs = -1;
      await handle?.close().catch(() => undefined);
      throw error;
    }
  }

  private async openFile(): Promise<FileHandle> {
    if (this.handle !== undefined) return this.handle;
    await makeDurableDirectory(dirname(this.path));
    try {
      this.handle = await open(
        this.path,
        CREATE_APPEND_FLAGS,
        FILE_MODE,
      );
      this.created = true;
    } catch (error) {
      if (errnoCode(error) !== 'EEXIST') throw error;
      this.handle = await open(this.path, OPEN_APPEND_FLAGS);
    }
    return this.handle;
  }
}
