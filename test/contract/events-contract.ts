/**
 * The EventSink contract (lib/drain/ports.ts), written once and run against every sink:
 * `describeEventSinkContract(name, harness)` in a *.test.ts file per adapter.
 *
 * What the port promises, and each case checks:
 * - publish resolves with the ids it published, in the order given, and what reaches the
 *   transport is each event's envelope (source, detail-type, detail) under its stable id.
 * - no events: nothing is sent, and the outcome is empty.
 * - any number of events (the sink batches as its transport needs).
 * - per-event failures are reported in the outcome, never thrown: an event over the entry limit
 *   fails alone, the others are published; a transport that refuses everything fails each event
 *   with a reason.
 * - delivery is at least once: publishing an event again sends it again, under the same id.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_EVENT_ENTRY_BYTES, toEnvelope, type DrainEvent } from '../../lib/drain/events.js';
import type { EventSink } from '../../lib/drain/ports.js';
import { storedEvent } from '../../testkit/fixtures/ledger-fixtures.js';

export const EVENT_CASES = ['publishes-envelope', 'empty', 'many', 'too-large', 'transport-down', 'at-least-once'] as const;
export type EventCase = (typeof EVENT_CASES)[number];

/** An event as the transport received it. */
export interface DeliveredEvent {
  id: string;
  source: string;
  detailType: string;
  detail: unknown;
}

export interface EventSinkHarness {
  setup(): Promise<void>;
  /** A sink on the suite's transport. */
  open(): EventSink;
  /** A sink whose transport refuses or cannot be reached. */
  openBroken(): EventSink;
  /** Every event that reached the transport so far, in order. */
  delivered(): Promise<DeliveredEvent[]>;
  teardown(): Promise<void>;
  exclude?: Partial<Record<EventCase, string>>;
}

export function describeEventSinkContract(name: string, harness: EventSinkHarness): void {
  describe(`EventSink contract: ${name}`, () => {
    let counter = 0;
    const events = (n: number): DrainEvent[] => {
      const batch = ++counter;
      return Array.from({ length: n }, (_, i) => storedEvent('contract-box', `b${batch}-u${i}`));
    };
    const excluded = harness.exclude ?? {};
    const check = (id: EventCase, title: string, fn: () => Promise<void>): void => {
      if (excluded[id] === undefined) it(`${id}: ${title}`, fn);
    };
    const deliveredOf = async (batch: readonly DrainEvent[]): Promise<DeliveredEvent[]> => {
      const ids = new Set(batch.map((e) => e.id));
      return (await harness.delivered()).filter((d) => ids.has(d.id));
    };
    const asDelivered = (e: DrainEvent): DeliveredEvent => {
      const envelope = toEnvelope(e);
      return { id: e.id, source: envelope.source, detailType: envelope['detail-type'], detail: envelope.detail };
    };

    beforeAll(() => harness.setup());
    afterAll(() => harness.teardown());

    check('publishes-envelope', 'publishes each event once as its envelope under its id, in order', async () => {
      const batch = events(3);
      expect(await harness.open().publish(batch)).toEqual({ published: batch.map((e) => e.id), failed: [] });
      expect(await deliveredOf(batch)).toEqual(batch.map(asDelivered));
    });

    check('empty', 'publishing no events sends nothing', async () => {
      const before = (await harness.delivered()).length;
      expect(await harness.open().publish([])).toEqual({ published: [], failed: [] });
      expect((await harness.delivered()).length).toBe(before);
    });

    check('many', 'publishes any number of events', async () => {
      const batch = events(57);
      const outcome = await harness.open().publish(batch);
      expect(outcome).toEqual({ published: batch.map((e) => e.id), failed: [] });
      expect((await deliveredOf(batch)).map((d) => d.id).sort()).toEqual(batch.map((e) => e.id).sort());
    });

    check('too-large', 'an event over the entry limit fails alone, with a reason; the others are published', async () => {
      const [small, huge, other] = events(3);
      if (huge!.detailType === 'Email Stored') huge!.detail.metadata.subject = 'x'.repeat(MAX_EVENT_ENTRY_BYTES);
      const outcome = await harness.open().publish([small!, huge!, other!]);
      expect(outcome.published).toEqual([small!.id, other!.id]);
      expect(outcome.failed).toEqual([{ id: huge!.id, reason: expect.stringMatching(/\S/) }]);
      expect((await deliveredOf([small!, huge!, other!])).map((d) => d.id)).toEqual([small!.id, other!.id]);
    });

    check('transport-down', 'a transport that refuses everything fails each event in the outcome, without throwing', async () => {
      const batch = events(2);
      const outcome = await harness.openBroken().publish(batch);
      expect(outcome.published).toEqual([]);
      expect(outcome.failed.map((f) => f.id)).toEqual(batch.map((e) => e.id));
      for (const f of outcome.failed) expect(f.reason).toMatch(/\S/);
      expect(await deliveredOf(batch)).toEqual([]);
    });

    check('at-least-once', 'publishing an event again sends it again under the same id', async () => {
      const [event] = events(1);
      await harness.open().publish([event!]);
      expect(await harness.open().publish([event!])).toEqual({ published: [event!.id], failed: [] });
      expect(await deliveredOf([event!])).toEqual([asDelivered(event!), asDelivered(event!)]);
    });
  });
}
