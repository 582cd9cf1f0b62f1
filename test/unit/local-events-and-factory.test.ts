// The local adapters on real files in a temp folder: the event sink (JsonlEventSink) and the
// factory that lays them out (createLocalAdapters).
// The set-up is test/support/local-adapters-world.ts.
import { existsSync } from 'node:fs';
import { appendFile, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { toEnvelope, type DrainEvent } from '../../lib/drain/events.js';
import { messageKey } from '../../lib/drain/keys.js';
import { createLocalAdapters, readJsonlEvents } from '../../lib/adapters/local/index.js';
import { validateEventEnvelope } from '../support/event-schema.js';
import { storedEntry, storedEvent } from '../../testkit/fixtures/ledger-fixtures.js';
import { dir, MAILBOX, namesIn, sinkAt, storeMessage, useTempDirPerTest } from '../support/local-adapters-world.js';

useTempDirPerTest();

describe('JsonlEventSink', () => {
  const events = (n: number, prefix = 'u'): DrainEvent[] => Array.from({ length: n }, (_, i) => storedEvent(MAILBOX, `${prefix}${i}`));

  it('appends each event as one line: the envelope with its id, fsynced, 0600', async () => {
    const path = join(dir, 'sub', 'events.jsonl');
    const sink = sinkAt({ path });
    const batch = events(3);
    expect(await sink.publish(batch)).toEqual({ published: batch.map((e) => e.id), failed: [] });
    const text = await readFile(path, 'utf8');
    const lines = text.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toEqual(batch.map((e) => JSON.stringify({ id: e.id, ...toEnvelope(e) })));
    const first = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(Object.keys(first)).toEqual(['id', 'source', 'detail-type', 'time', 'detail']);
    expect(validateEventEnvelope(first)).toEqual([]);
    expect(first.source).toBe('popdrain');
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'sub'))).mode & 0o777).toBe(0o700);
    await sink.close();
  });

  it('keeps lines whole under concurrent publishers, in this and another instance', async () => {
    const path = join(dir, 'events.jsonl');
    const a = sinkAt({ path });
    const b = sinkAt({ path });
    const all = events(400);
    const outcomes = await Promise.all(all.map((e, i) => (i % 2 === 0 ? a : b).publish([e])));
    expect(outcomes.every((o) => o.failed.length === 0)).toBe(true);
    const read = await readJsonlEvents(path);
    expect(read.tornLines).toBe(0);
    expect(read.events.map((e) => e.id).sort()).toEqual(all.map((e) => e.id).sort());
  });

  it('ends a torn last line before appending, so readers skip only the fragment', async () => {
    const path = join(dir, 'events.jsonl');
    const [e1, e2] = events(2);
    const whole = `${JSON.stringify({ id: e1!.id, ...toEnvelope(e1!) })}\n`;
    await writeFile(path, whole + whole.slice(0, 100));
    const sink = sinkAt({ path });
    expect((await sink.publish([e2!])).published).toEqual([e2!.id]);
    const read = await readJsonlEvents(path);
    expect(read.tornLines).toBe(1);
    expect(read.events.map((e) => e.id)).toEqual([e1!.id, e2!.id]);
  });

  it('ends a line another writer tore after our own last append', async () => {
    const path = join(dir, 'events.jsonl');
    const [e1, e2, e3] = events(3);
    const sink = sinkAt({ path });
    expect((await sink.publish([e1!])).published).toEqual([e1!.id]);
    // Another process, killed in the middle of its write, leaves part of a line.
    await appendFile(path, `${JSON.stringify({ id: e3!.id, ...toEnvelope(e3!) })}`.slice(0, 50));
    expect((await sink.publish([e2!])).published).toEqual([e2!.id]);
    const read = await readJsonlEvents(path);
    expect(read.tornLines).toBe(1);
    expect(read.events.map((e) => e.id)).toEqual([e1!.id, e2!.id]);
  });

  // The port's semantics (outcomes, failures per event, the entry limit) are in
  // test/contract/events-contract.ts; here the file system's reasons.
  it('reports file-system failures per event, with their reason', async () => {
    const path = join(dir, 'events.jsonl');
    await mkdir(path);
    const sink = sinkAt({ path });
    const batch = events(2);
    const outcome = await sink.publish(batch);
    expect(outcome.published).toEqual([]);
    expect(outcome.failed.map((f) => f.id)).toEqual(batch.map((e) => e.id));
    expect(outcome.failed[0]!.reason).toMatch(/EISDIR/);

    if (existsSync('/dev/full')) {
      const full = await sinkAt({ path: '/dev/full' }).publish(batch);
      expect(full.failed.map((f) => f.reason)).toEqual([expect.stringMatching(/ENOSPC/), expect.stringMatching(/ENOSPC/)]);
    }

  });
});

describe('createLocalAdapters', () => {
  it('lays out messages, ledger and events under the output folder', async () => {
    const out = join(dir, 'out');
    const { store, ledger, events, close } = createLocalAdapters({ out });
    const key = messageKey(MAILBOX, 'a');
    await storeMessage(store, key, Buffer.from('message'));
    await ledger.record([storedEntry(MAILBOX, 'a')]);
    await ledger.acquireLease(MAILBOX, 'run', 1000, Date.now());
    await events.publish([storedEvent(MAILBOX, 'a')]);
    await close();
    expect(await namesIn(out)).toEqual(['.popdrain', MAILBOX, 'events.jsonl']);
    expect(await namesIn(join(out, '.popdrain', 'ledger'))).toEqual([`${MAILBOX}.lease.1`, `${MAILBOX}.ledger`]);
    expect(store.refFor(key)).toEqual({ type: 'file', path: join(out, key) });
    for (const folder of [out, join(out, '.popdrain'), join(out, '.popdrain', 'ledger'), join(out, MAILBOX)]) {
      expect((await stat(folder)).mode & 0o777, folder).toBe(0o700);
    }
    for (const file of [join(out, key), join(out, 'events.jsonl'), join(out, '.popdrain', 'ledger', `${MAILBOX}.ledger`)]) {
      expect((await stat(file)).mode & 0o777, file).toBe(0o600);
    }
  });
});
