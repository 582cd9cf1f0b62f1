/**
 * Where popdrain's events go: an existing bus, or a new custom bus with an archive of the
 * events a consumer may need to catch up on, `Email Stored` and `Email Skipped` (the replay
 * window; replayed events keep their `detail.id`). `Mailbox Drained`, one per run (8.6 million
 * a month for 1,000 mailboxes every 5 minutes), is not archived: nobody replays run reports.
 * The archive is retained with the stack's data unless the removal policy says otherwise.
 *
 * Builds in the given scope (the PopDrain), not in a construct of its own, so the bus and the
 * archive keep their logical IDs (`<PopDrain>/EventBus`, `<PopDrain>/EventArchive`).
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type { Construct } from 'constructs';

/** The `source` of every event popdrain publishes (lib/drain/events.ts). */
export const EVENT_SOURCE = 'popdrain';
export const DEFAULT_ARCHIVE_RETENTION_DAYS = 365;
/** The detail-types the archive keeps (lib/drain/events.ts). */
export const ARCHIVED_DETAIL_TYPES = ['Email Stored', 'Email Skipped'] as const;

export interface DrainEventsProps {
  /** @default - a new custom bus with an archive */
  readonly eventBus?: events.IEventBus;
  /** How long the new bus's archive keeps events. @default Duration.days(365) */
  readonly archiveRetention?: Duration;
  /** Encrypt the archive with this customer-managed key. @default - an AWS-owned key */
  readonly encryptionKey?: kms.IKey;
  /** Of the archive. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
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
      description: 'popdrain Email Stored and Email Skipped events, for replay',
      eventPattern: { source: [EVENT_SOURCE], detailType: [...ARCHIVED_DETAIL_TYPES] },
      retention: props.archiveRetention ?? Duration.days(DEFAULT_ARCHIVE_RETENTION_DAYS),
      ...(props.encryptionKey === undefined ? {} : { kmsKey: props.encryptionKey }),
    });
    this.archive.applyRemovalPolicy(props.removalPolicy ?? RemovalPolicy.RETAIN);
  }
}
