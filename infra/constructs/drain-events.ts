/**
 * Where popdrain's events go: an existing bus, or a new custom bus with an archive of every
 * `source: popdrain` event (the replay window).
 *
 * Builds in the given scope (the PopDrain), not in a construct of its own, so the bus and the
 * archive keep their logical IDs (`<PopDrain>/EventBus`, `<PopDrain>/EventArchive`).
 */
import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import type { Construct } from 'constructs';

/** The `source` of every event popdrain publishes (lib/drain/events.ts). */
export const EVENT_SOURCE = 'popdrain';
export const DEFAULT_ARCHIVE_RETENTION_DAYS = 365;

export interface DrainEventsProps {
  /** @default - a new custom bus with an archive */
  readonly eventBus?: events.IEventBus;
  /** How long the new bus's archive keeps events. @default Duration.days(365) */
  readonly archiveRetention?: Duration;
}

export class DrainEvents {
  public readonly eventBus: events.IEventBus;
  /** The archive of the bus created here (absent with an existing `eventBus`). */
  public readonly archive?: events.Archive;

  constructor(scope: Construct, props: DrainEventsProps) {
    if (props.eventBus !== undefined) {
      this.eventBus = props.eventBus;
      return;
    }
    const bus = new events.EventBus(scope, 'EventBus', { description: 'popdrain: Email Stored, Email Skipped, Mailbox Drained' });
    this.eventBus = bus;
    this.archive = new events.Archive(scope, 'EventArchive', {
      sourceEventBus: bus,
      description: 'Every popdrain event, for replay',
      eventPattern: { source: [EVENT_SOURCE] },
      retention: props.archiveRetention ?? Duration.days(DEFAULT_ARCHIVE_RETENTION_DAYS),
    });
  }
}
