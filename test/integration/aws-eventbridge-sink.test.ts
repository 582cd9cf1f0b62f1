// The EventBridge sink with the real SDK client against the loopback AWS JSON endpoint, which
// enforces PutEvents' limits (10 entries, 256 KiB per request) as the service does.
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { createServer } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventBridgeSink, putEventsEntrySize, type EventBridgeSinkOptions } from '../../lib/adapters/aws/eventbridge-sink.js';
import { MAX_EVENT_ENTRY_BYTES, toEnvelope, type DrainEvent } from '../../lib/drain/events.js';
import type { StoreRef } from '../../lib/drain/ports.js';
import { PUT_EVENTS, startAwsJsonEndpoint, type AwsJsonEndpoint, type WireEntry } from '../../testkit/aws/json-endpoint.js';

const BUS = 'popdrain-test-bus';
const FAKE_CREDENTIALS = { accessKeyId: 'AKIDTESTFAKE', secretAccessKey: 'test-fake-secret' };

let endpoint: AwsJsonEndpoint;
let sleeps: number[];

beforeEach(async () => {
  endpoint = await startAwsJsonEndpoint();
  sleeps = [];
});

afterEach(async () => {
  await endpoint.close();
});

function client(url = endpoint.url, sdkMaxAttempts = 1): EventBridgeClient {
  return new EventBridgeClient({ region: 'us-east-1', endpoint: url, credentials: FAKE_CREDENTIALS, maxAttempts: sdkMaxAttempts });
}

function sink(options: Partial<EventBridgeSinkOptions> = {}): EventBridgeSink {
  return new EventBridgeSink({
    client: client(),
    eventBusName: BUS,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    ...options,
  });
}

function stored(id: string, subject = '', storage: StoreRef = { type: 's3', bucket: 'mail-archive', key: `raw/mbx-1/${id}.eml` }): DrainEvent {
  return {
    id,
    detailType: 'Email Stored',
    time: '2025-03-04T05:06:07.890Z',
    detail: {
      schemaVersion: 1,
      id,
      mailboxId: 'mbx-1',
      uidl: `uidl-${id}`,
      storage,
      size: 1234,
      sha256: 'ab'.repeat(32),
      storedAt: '2025-03-04T05:06:07.000Z',
      metadata: { subject, attachments: [] },
    },
  };
}

function skipped(id: string): DrainEvent {
  return {
    id,
    detailType: 'Email Skipped',
    time: '2025-03-04T05:06:08.000Z',
    detail: { schemaVersion: 1, id, mailboxId: 'mbx-1', uidl: `uidl-${id}`, reason: 'too-large', size: 99_000_000, limit: 25_000_000, seenAt: '2025-03-04T05:06:08.000Z' },
  };
}

function drained(id: string): DrainEvent {
  return {
    id,
    detailType: 'Mailbox Drained',
    time: '2025-03-04T05:07:00.000Z',
    detail: {
      schemaVersion: 1,
      id,
      mailboxId: 'mbx-1',
      stopReason: 'complete',
      moreRemaining: false,
      serverMessages: 3,
      fetched: 2,
      fetchedBytes: 2468,
      skipped: 1,
      deleted: 0,
      announced: 3,
      failures: 0,
      startedAt: '2025-03-04T05:06:00.000Z',
      finishedAt: '2025-03-04T05:07:00.000Z',
      durationMs: 60_000,
    },
  };
}

/** The DrainEvent id an entry carries (in its detail). */
function idOf(entry: WireEntry): string {
  return (JSON.parse(entry.Detail ?? '{}') as { id: string }).id;
}

/** A stored event whose PutEvents entry is exactly `bytes` bytes, padded with `pad` characters. */
function storedOfSize(id: string, bytes: number, pad = 'x'): DrainEvent {
  const base = putEventsEntrySize(sink().toEntry(stored(id)));
  const padBytes = Buffer.byteLength(pad);
  const extra = bytes - base;
  if (extra < 0 || extra % padBytes !== 0) throw new Error(`cannot pad ${id} to ${bytes} bytes with ${pad}`);
  const event = stored(id, pad.repeat(extra / padBytes));
  expect(putEventsEntrySize(sink().toEntry(event))).toBe(bytes);
  return event;
}

describe('EventBridgeSink', () => {
  // The port's semantics are in test/contract/events-contract.ts; here PutEvents' own rules.
  it('sends each event as its envelope: source, detail-type, detail, time, bus, and the S3 object as a resource', async () => {
    const events = [
      stored('e-s3'),
      stored('e-file', '', { type: 'file', path: '/var/mail/x.eml' }),
      skipped('e-skip'),
      drained('e-run'),
    ];
    const outcome = await sink().publish(events);

    expect(outcome).toEqual({ published: ['e-s3', 'e-file', 'e-skip', 'e-run'], failed: [] });
    const batches = endpoint.putEventsBatches();
    expect(batches).toHaveLength(1);
    const entries = batches[0]!;
    expect(entries).toHaveLength(4);
    entries.forEach((entry, i) => {
      const event = events[i]!;
      const envelope = toEnvelope(event);
      const expected: WireEntry = {
        Source: envelope.source,
        DetailType: envelope['detail-type'],
        Detail: JSON.stringify(envelope.detail),
        Time: Date.parse(envelope.time) / 1000,
        EventBusName: BUS,
      };
      if (i === 0) expected.Resources = ['arn:aws:s3:::mail-archive/raw/mbx-1/e-s3.eml'];
      expect(entry).toEqual(expected);
      expect(JSON.parse(entry.Detail!)).toEqual(event.detail);
    });
    expect(entries[0]!.Source).toBe('popdrain');
    // Signed with the fake credentials given to the client, nothing else.
    expect(String(endpoint.requests[0]!.headers.authorization)).toContain('Credential=AKIDTESTFAKE/');
    expect(endpoint.requests[0]!.headers['content-type']).toBe('application/x-amz-json-1.1');
    expect(sleeps).toEqual([]);
  });

  it('takes the ARN partition for Resources from its options', async () => {
    await sink({ arnPartition: 'aws-cn' }).publish([stored('cn')]);
    expect(endpoint.putEventsBatches()[0]![0]!.Resources).toEqual(['arn:aws-cn:s3:::mail-archive/raw/mbx-1/cn.eml']);
  });

  it('batches at most 10 entries per request', async () => {
    const events = Array.from({ length: 23 }, (_, i) => stored(`n-${i}`));
    const outcome = await sink().publish(events);

    expect(outcome.failed).toEqual([]);
    expect(outcome.published).toEqual(events.map((e) => e.id));
    const batches = endpoint.putEventsBatches();
    // The requests of one publish go out at once: the bus may see them in any order.
    expect(batches.map((b) => b.length).sort((x, y) => y - x)).toEqual([10, 10, 3]);
    expect(batches.map((b) => b.map(idOf)).sort((x, y) => x[0]!.localeCompare(y[0]!, 'en', { numeric: true }))).toEqual([
      events.slice(0, 10).map((e) => e.id),
      events.slice(10, 20).map((e) => e.id),
      events.slice(20).map((e) => e.id),
    ]);
  });

  it('sends the requests of one publish at once, not one after the other', async () => {
    // 23 events are three requests; with each answer 150 ms away they overlap only when sent at once.
    endpoint.delayMs = 150;
    const events = Array.from({ length: 23 }, (_, i) => stored(`p-${i}`));
    const outcome = await sink().publish(events);
    expect(outcome).toEqual({ published: events.map((e) => e.id), failed: [] });
    expect(endpoint.putEventsBatches()).toHaveLength(3);
    expect(endpoint.maxInFlight).toBe(3);
  });

  it('batches within 256 KiB per request, counting UTF-8 bytes, not characters', async () => {
    // Each entry is 90 KiB, padded with a two-byte character: two fit in a request, three don't.
    // Counted in characters they would all fit in one, and the endpoint would refuse it.
    const events = Array.from({ length: 5 }, (_, i) => storedOfSize(`big-${i}`, 90 * 1024, 'é'));
    const outcome = await sink().publish(events);

    expect(outcome).toEqual({ published: events.map((e) => e.id), failed: [] });
    const batches = endpoint.putEventsBatches();
    expect(batches.map((b) => b.length).sort().reverse()).toEqual([2, 2, 1]);
    for (const batch of batches) {
      const total = batch.reduce((n, e) => n + 14 + [e.Source, e.DetailType, e.Detail, ...(e.Resources ?? [])].reduce((m, s) => m + Buffer.byteLength(s ?? ''), 0), 0);
      expect(total).toBeLessThanOrEqual(256 * 1024);
    }
  });

  it('sends an entry of exactly the limit alone, and refuses one a byte larger without sending it', async () => {
    const exact = storedOfSize('exact', MAX_EVENT_ENTRY_BYTES);
    const over = storedOfSize('over', MAX_EVENT_ENTRY_BYTES + 1);
    const outcome = await sink().publish([stored('small-1'), exact, over, stored('small-2')]);

    expect(outcome.published).toEqual(['small-1', 'exact', 'small-2']);
    expect(outcome.failed).toHaveLength(1);
    expect(outcome.failed[0]!.id).toBe('over');
    expect(outcome.failed[0]!.reason).toMatch(/262145 bytes, over EventBridge's limit of 262144 bytes per entry; not sent/);
    const batches = endpoint.putEventsBatches();
    expect(batches.map((b) => b.map(idOf)).sort()).toEqual([['exact'], ['small-1'], ['small-2']]);
    expect(sleeps).toEqual([]);
  });

  it('refuses an event whose time is not a date, and sends the others', async () => {
    const bad = { ...stored('bad-time'), time: 'yesterday' };
    const outcome = await sink().publish([bad, stored('ok')]);
    expect(outcome.published).toEqual(['ok']);
    expect(outcome.failed).toEqual([{ id: 'bad-time', reason: 'event time "yesterday" is not a date' }]);
    expect(endpoint.putEventsBatches().flat().map(idOf)).toEqual(['ok']);
  });

  it('retries the entries the bus reports failed, with growing delays, and reports those that keep failing', async () => {
    const seen = new Map<string, number>();
    endpoint.setEntryFaults((entry) => {
      const id = idOf(entry);
      const n = (seen.get(id) ?? 0) + 1;
      seen.set(id, n);
      if (id === 'b' && n <= 2) return { ErrorCode: 'InternalFailure', ErrorMessage: 'Internal failure.' };
      if (id === 'd') return { ErrorCode: 'ThrottlingException', ErrorMessage: 'Rate exceeded' };
      return undefined;
    });
    const events = ['a', 'b', 'c', 'd', 'e'].map((id) => stored(id));
    const outcome = await sink({ random: () => 0.5 }).publish(events);

    expect(outcome.published).toEqual(['a', 'b', 'c', 'e']);
    expect(outcome.failed).toEqual([{ id: 'd', reason: 'ThrottlingException: Rate exceeded (after 5 attempts)' }]);
    // Only what failed is sent again.
    expect(endpoint.putEventsBatches().map((b) => b.map(idOf))).toEqual([
      ['a', 'b', 'c', 'd', 'e'],
      ['b', 'd'],
      ['b', 'd'],
      ['d'],
      ['d'],
    ]);
    // Exponential from 100 ms, with the jitter in the upper half: 3/4 of 100, 200, 400, 800.
    expect(sleeps).toEqual([75, 150, 300, 600]);
  });

  it('keeps its jittered delays between half and all of the exponential ceiling', async () => {
    endpoint.setEntryFaults(() => ({ ErrorCode: 'InternalFailure' }));
    const outcome = await sink({ maxAttempts: 6, baseDelayMs: 40, maxDelayMs: 400 }).publish([stored('j')]);
    expect(outcome.failed).toEqual([{ id: 'j', reason: 'InternalFailure (after 6 attempts)' }]);
    const ceilings = [40, 80, 160, 320, 400];
    expect(sleeps).toHaveLength(5);
    sleeps.forEach((ms, i) => {
      expect(ms).toBeGreaterThanOrEqual(ceilings[i]! / 2);
      expect(ms).toBeLessThanOrEqual(ceilings[i]!);
    });
  });

  it('does not retry entries with errors EventBridge documents as permanent', async () => {
    endpoint.setEntryFaults((entry) =>
      idOf(entry) === 'denied' ? { ErrorCode: 'NotAuthorizedForSourceException', ErrorMessage: 'Not authorized for the source.' } : undefined,
    );
    const outcome = await sink().publish([stored('fine'), stored('denied')]);
    expect(outcome.published).toEqual(['fine']);
    expect(outcome.failed).toEqual([{ id: 'denied', reason: 'NotAuthorizedForSourceException: Not authorized for the source.' }]);
    expect(endpoint.putEventsBatches()).toHaveLength(1);
    expect(sleeps).toEqual([]);
  });

  it('maps results back to events by position', async () => {
    // Fail positions 1 and 3 of the first request; the entries themselves look alike.
    endpoint.setEntryFaults((_entry, { request, position }) =>
      request === 1 && (position === 1 || position === 3) ? { ErrorCode: 'InvalidArgument', ErrorMessage: `position ${position}` } : undefined,
    );
    const events = ['p0', 'p1', 'p2', 'p3', 'p4'].map((id) => stored(id));
    const outcome = await sink().publish(events);
    expect(outcome.published).toEqual(['p0', 'p2', 'p4']);
    expect(outcome.failed).toEqual([
      { id: 'p1', reason: 'InvalidArgument: position 1' },
      { id: 'p3', reason: 'InvalidArgument: position 3' },
    ]);
  });

  it('retries throttled requests on top of the SDK', async () => {
    endpoint.failNext(2, { kind: 'throttle' }, PUT_EVENTS);
    const outcome = await sink().publish([stored('t1'), stored('t2')]);
    expect(outcome).toEqual({ published: ['t1', 't2'], failed: [] });
    expect(endpoint.putEventsBatches()).toHaveLength(3);
    expect(sleeps).toHaveLength(2);
  });

  it("lets the SDK's own retries run first, then retries the request again", async () => {
    // SDK: 2 attempts per call. Three throttles: the first call fails after both its attempts,
    // the sink waits once, and the second call succeeds on its second attempt.
    endpoint.failNext(3, { kind: 'throttle' }, PUT_EVENTS);
    const outcome = await sink({ client: client(endpoint.url, 2) }).publish([stored('sdk')]);
    expect(outcome).toEqual({ published: ['sdk'], failed: [] });
    expect(endpoint.putEventsBatches()).toHaveLength(4);
    expect(sleeps).toHaveLength(1);
  });

  it('reports events as failed after persistent 5xx, without throwing', async () => {
    endpoint.failNext(100, { kind: 'status', status: 500 }, PUT_EVENTS);
    const outcome = await sink().publish([stored('f1'), stored('f2')]);
    expect(outcome.published).toEqual([]);
    expect(outcome.failed.map((f) => f.id)).toEqual(['f1', 'f2']);
    for (const f of outcome.failed) {
      expect(f.reason).toBe('PutEvents failed: InternalFailure: Internal failure (scripted). (HTTP 500) (after 5 attempts)');
    }
    expect(endpoint.putEventsBatches()).toHaveLength(5);
    expect(sleeps).toHaveLength(4);
  });

  it('does not retry a request the service refuses for good', async () => {
    endpoint.failNext(1, { kind: 'error', type: 'ResourceNotFoundException', message: `Event bus ${BUS} does not exist.` }, PUT_EVENTS);
    const outcome = await sink().publish([stored('gone')]);
    expect(outcome).toEqual({
      published: [],
      failed: [{ id: 'gone', reason: `PutEvents failed: ResourceNotFoundException: Event bus ${BUS} does not exist. (HTTP 400)` }],
    });
    expect(endpoint.putEventsBatches()).toHaveLength(1);
    expect(sleeps).toEqual([]);
  });

  it('retries a dropped connection', async () => {
    endpoint.failNext(1, { kind: 'drop' }, PUT_EVENTS);
    const outcome = await sink().publish([stored('drop')]);
    expect(outcome).toEqual({ published: ['drop'], failed: [] });
    expect(sleeps).toHaveLength(1);
  });

  it('reports events as failed when the endpoint cannot be reached', async () => {
    // A port that was just free: nothing listens there.
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const outcome = await sink({ client: client(`http://127.0.0.1:${port}`), maxAttempts: 3 }).publish([stored('nowhere')]);
    expect(outcome.published).toEqual([]);
    expect(outcome.failed).toHaveLength(1);
    expect(outcome.failed[0]!.reason).toMatch(/^PutEvents failed: .*ECONNREFUSED.*\(after 3 attempts\)$/);
    expect(sleeps).toHaveLength(2);
  });
});
