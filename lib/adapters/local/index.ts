/**
 * The local adapters: what `popdrain drain --out DIR` runs on. Layout of an output folder:
 *
 *   <out>/<mailboxId>/<64 hex>.eml     messages (complete and durable; temp files never end in .eml)
 *   <out>/.popdrain/ledger/            one log and one lease file per mailbox
 *   <out>/events.jsonl                 events, one envelope per line
 *
 * Folders are created 0700, files 0600. All three are crash-safe (kill -9 or power loss at any
 * instant loses nothing that was acknowledged) and share fsyncs between concurrent callers.
 */
import { join } from 'node:path';
import type { DrainLogger } from '../../drain/ports.js';
import { FileLedger } from './file-ledger.js';
import { FileMessageStore } from './file-store.js';
import { JsonlEventSink } from './jsonl-event-sink.js';

export { FileMessageStore, STALE_TEMP_AGE_MS, storeKeyProblem } from './file-store.js';
export type { CleanupTempOptions, FileMessageStoreOptions } from './file-store.js';
export { FileLedger, DEFAULT_COMPACT_MIN_BYTES } from './file-ledger.js';
export type { FileLedgerOptions } from './file-ledger.js';
export { JsonlEventSink } from './jsonl-event-sink.js';
export type { JsonlEvent, JsonlEventSinkOptions } from './jsonl-event-sink.js';
export { readJsonlEvents } from './jsonl-events-reader.js';
export type { JsonlEventsRead } from './jsonl-events-reader.js';

/** Where the local adapters keep their files under an output folder. */
export const LEDGER_SUBDIR = join('.popdrain', 'ledger');
export const EVENTS_FILE = 'events.jsonl';

export interface LocalAdaptersOptions {
  /** The output folder (created 0700 when missing). */
  out: string;
  /** @default silence */
  logger?: DrainLogger;
}

export interface LocalAdapters {
  store: FileMessageStore;
  ledger: FileLedger;
  events: JsonlEventSink;
  /** Wait for writes in flight and close the descriptors the store, the ledger and the event file keep. */
  close(): Promise<void>;
}

export function createLocalAdapters(options: LocalAdaptersOptions): LocalAdapters {
  const { out, logger } = options;
  const store = new FileMessageStore({ root: out, logger });
  const ledger = new FileLedger({ dir: join(out, LEDGER_SUBDIR), logger });
  const events = new JsonlEventSink({ path: join(out, EVENTS_FILE), logger });
  return {
    store,
    ledger,
    events,
    close: async () => {
      await Promise.all([store.close(), ledger.close(), events.close()]);
    },
  };
}
