/**
 * Reading an events file written by JsonlEventSink, by the rule its readers follow: the file is
 * lines; an empty line, or one that is not valid JSON (the fragment a writer killed mid-write
 * left behind), is skipped. Events may repeat (at-least-once delivery): dedupe by id.
 */
import { readFile } from 'node:fs/promises';
import { errnoCode } from './durable-fs.js';
import type { JsonlEvent } from './jsonl-event-sink.js';

/** What a reader finds in an events file. */
export interface JsonlEventsRead {
  /** Every complete event line, in file order (duplicates included). */
  events: JsonlEvent[];
  /** Lines that were not valid JSON: fragments of writes cut short by a crash. */
  tornLines: number;
}

/** Read an events file the way readers should: skip empty lines and torn fragments. */
export async function readJsonlEvents(path: string): Promise<JsonlEventsRead> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return { events: [], tornLines: 0 };
    throw error;
  }
  const events: JsonlEvent[] = [];
  let tornLines = 0;
  for (const line of text.split('\n')) {
    if (line.length === 0) continue;
    try {
      events.push(JSON.parse(line) as JsonlEvent);
    } catch {
      tornLines++;
    }
  }
  return { events, tornLines };
}
