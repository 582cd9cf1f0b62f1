/**
 * The scheduler: every tick it sends one drain request per due mailbox to the queue of the
 * mailbox's placement. It may read leases and send to those queues, nothing else.
 *
 * Builds in the given scope (the PopDrain) through LambdaDefaults, so its function, role and
 * log group keep their logical IDs (`<PopDrain>/Scheduler`, `SchedulerRole`, `SchedulerLogs`).
 */
import { Duration, Validations } from 'aws-cdk-lib';
import { REGISTRY_PARTITION } from '../../lib/drain/mailbox-registry.js';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { SCHEDULER_ENTRY, type LambdaDefaults } from './lambda-defaults.js';

export interface SchedulerFunctionProps {
  readonly defaults: LambdaDefaults;
  /** The table whose leases tell which mailboxes are busy. */
  readonly table: dynamodb.ITable;
  /** Drain requests for mailboxes with the default placement (`POPDRAIN_QUEUE_URL`). */
  readonly queue: sqs.IQueue;
  /** Drain requests for `placement: "vpc"` mailboxes (`POPDRAIN_VPC_QUEUE_URL`). @default - no VPC queue */
  readonly vpcQueue?: sqs.IQueue;
  /** How often it runs (`POPDRAIN_TICK_MINUTES`). */
  readonly tickMinutes: number;
  /** How long a request marker holds a mailbox (`POPDRAIN_REQUEST_MARKER_TTL_SECONDS`). */
  readonly requestMarkerTtl: Duration;
  /** Read (and seed) the mailbox registry: Query, GetItem, PutItem, UpdateItem on its partition only. @default false */
  readonly registry?: boolean;
  /** @default 512 */
  readonly memorySize?: number;
  /** @default Duration.minutes(2) */
  readonly timeout?: Duration;
}

export class SchedulerFunction {
  public readonly function: NodejsFunction;

  constructor(props: SchedulerFunctionProps) {
    const { defaults } = props;
    const logGroup = defaults.logGroup('Scheduler');
    const role = defaults.role('Scheduler', logGroup, 'popdrain scheduler: enqueues due mailboxes');
    const queues = [props.queue, ...(props.vpcQueue === undefined ? [] : [props.vpcQueue])];
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ sid: 'SendDrainRequests', actions: ['sqs:SendMessage'], resources: queues.map((q) => q.queueArn) }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ sid: 'ReadLeases', actions: ['dynamodb:BatchGetItem', 'dynamodb:GetItem'], resources: [props.table.tableArn] }),
    );
    // The request marker: the scheduler may write that one attribute of a state item, nothing else.
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ClaimRequestMarkers',
        actions: ['dynamodb:UpdateItem'],
        resources: [props.table.tableArn],
        conditions: { 'ForAllValues:StringEquals': { 'dynamodb:Attributes': ['pk', 'sk', 'requestMarker'] } },
      }),
    );
    if (props.registry === true) {
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'ReadAndSeedRegistry',
          actions: ['dynamodb:Query', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
          resources: [props.table.tableArn],
          conditions: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': [REGISTRY_PARTITION] } },
        }),
      );
    }
    this.function = defaults.nodejsFunction('Scheduler', SCHEDULER_ENTRY, role, logGroup, {
      description: 'popdrain scheduler: one SQS message per due mailbox',
      memorySize: props.memorySize ?? 512,
      timeout: props.timeout ?? Duration.minutes(2),
      environment: {
        ...defaults.environment(),
        POPDRAIN_QUEUE_URL: props.queue.queueUrl,
        ...(props.vpcQueue === undefined ? {} : { POPDRAIN_VPC_QUEUE_URL: props.vpcQueue.queueUrl }),
        POPDRAIN_TICK_MINUTES: String(props.tickMinutes),
        POPDRAIN_REQUEST_MARKER_TTL_SECONDS: String(props.requestMarkerTtl.toSeconds()),
      },
    });
    Validations.of(this.function).acknowledge({
      id: 'Serverless::Serverless-LambdaDLQ',
      reason:
        'A tick holds no data: a failed one is superseded by the next tick, which enqueues every due mailbox again, and the SchedulerErrors alarm reports the failure. Ticks EventBridge cannot deliver go to the schedule rule target dead-letter queue; a Lambda dead-letter queue of failed ticks would hold nothing worth redriving.',
    });
  }
}
