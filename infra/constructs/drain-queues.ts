/**
 * One placement's drain requests: a FIFO queue (one message group per mailbox) and its FIFO
 * dead-letter queue.
 *
 * Builds in the given scope (the PopDrain), not in a construct of its own, so the queues keep
 * their logical IDs (`<PopDrain>/<name>Queue`, `<PopDrain>/<name>DeadLetterQueue`).
 */
import { Duration, Validations } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type { Construct } from 'constructs';

export const DEFAULT_MAX_RECEIVE_COUNT = 5;
/** How long the drain queue keeps a request (a request marker lives this long plus a visibility timeout). */
export const DRAIN_QUEUE_RETENTION = Duration.days(4);
/** The queue's visibility timeout is this many drainer timeouts (AWS's advice for SQS sources). */
export const VISIBILITY_TIMEOUT_FACTOR = 6;

export interface DrainQueuesProps {
  /** The construct id prefix: `Drain` for the default placement, `VpcDrain` for the VPC. */
  readonly name: string;
  /** The timeout of the drainer that reads the queue. */
  readonly drainerTimeout: Duration;
  /** Receives of one drain request before it moves to the dead-letter queue (1-1000). @default 5 */
  readonly maxReceiveCount?: number;
  /** Encrypt both queues with this customer-managed key. @default - SQS-managed encryption */
  readonly encryptionKey?: kms.IKey;
}

export class DrainQueues {
  public readonly queue: sqs.Queue;
  public readonly deadLetterQueue: sqs.Queue;

  constructor(scope: Construct, props: DrainQueuesProps) {
    const maxReceiveCount = props.maxReceiveCount ?? DEFAULT_MAX_RECEIVE_COUNT;
    if (!Number.isInteger(maxReceiveCount) || maxReceiveCount < 1 || maxReceiveCount > 1000) {
      throw new Error(`PopDrain: maxReceiveCount must be a whole number from 1 to 1000, not ${maxReceiveCount}`);
    }
    const encryption =
      props.encryptionKey === undefined
        ? { encryption: sqs.QueueEncryption.SQS_MANAGED }
        : { encryption: sqs.QueueEncryption.KMS, encryptionMasterKey: props.encryptionKey };
    this.deadLetterQueue = new sqs.Queue(scope, `${props.name}DeadLetterQueue`, {
      fifo: true,
      ...encryption,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'Serverless::Serverless-SQSRedrivePolicy',
      reason:
        'This FIFO queue is itself the dead-letter queue of the drain queue: a request lands here after maxReceiveCount failed runs, for an operator (the DeadLetterQueueNotEmpty alarm) to redrive or purge; a redrive policy of its own would only move it to a third queue nobody reads.',
    });
    this.queue = new sqs.Queue(scope, `${props.name}Queue`, {
      fifo: true,
      // The scheduler sets MessageDeduplicationId = mailbox id + tick; high-throughput FIFO
      // (deduplication and throughput per message group) since every mailbox is its own group.
      contentBasedDeduplication: false,
      deduplicationScope: sqs.DeduplicationScope.MESSAGE_GROUP,
      fifoThroughputLimit: sqs.FifoThroughputLimit.PER_MESSAGE_GROUP_ID,
      ...encryption,
      enforceSSL: true,
      visibilityTimeout: Duration.seconds(props.drainerTimeout.toSeconds() * VISIBILITY_TIMEOUT_FACTOR),
      retentionPeriod: DRAIN_QUEUE_RETENTION,
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount },
    });
  }
}
