// The EventSink contract against the JSON-lines sink (a temp folder).
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JsonlEventSink } from '../../lib/adapters/local/jsonl-event-sink.js';
import { readJsonlEvents } from '../../lib/adapters/local/jsonl-events-reader.js';
import { describeEventSinkContract } from './events-contract.js';

let dir = '';
const sinks: JsonlEventSink[] = [];
const track = (sink: JsonlEventSink): JsonlEventSink => {
  sinks.push(sink);
  return sink;
};

describeEventSinkContract('JsonlEventSink', {
  setup: async () => {
    dir = await mkdtemp(join(tmpdir(), 'popdrain-events-contract-'));
    // Where the broken sink writes: a folder, so every append fails (EISDIR).
    await mkdir(join(dir, 'broken.jsonl'));
  },
  open: () => track(new JsonlEventSink({ path: join(dir, 'events.jsonl') })),
  openBroken: () => track(new JsonlEventSink({ path: join(dir, 'broken.jsonl') })),
  delivered: async () =>
    (await readJsonlEvents(join(dir, 'events.jsonl'))).events.map((e) => ({ id: e.id, source: e.source, detailType: e['detail-type'], detail: e.detail })),
  teardown: async () => {
    for (const sink of sinks.splice(0)) await sink.close();
    await rm(dir, { recursive: true, force: true });
  },
});
