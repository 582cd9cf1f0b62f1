/**
 * The scheduler's trigger: an EventBridge rule on the tick, with a dead-letter queue for
 * invocations EventBridge could not deliver and a maximum event age inside the FIFO
 * deduplication window. A late retry of a tick carries the tick's time, so the drain requests
 * it sends get the same deduplication ids as the first attempt's; SQS drops them only while
 * the first ones are less than 5 minutes old. Retrying later than that could enqueue a mailbox
 * twice for one tick.
 *
 * Builds in the given scope (the PopDrain): the rule keeps its logical ID (`<PopDrain>/Schedule`).
 */
import { Duration, Validations } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';

/** SQS FIFO's deduplication window. */
export const FIFO_DEDUPLICATION_WINDOW = Duration.minutes(5);
/** How long EventBridge keeps retrying a tick: a minute inside the deduplication window. */
export const SCHEDULE_MAX_EVENT_AGE = Duration.minutes(4);
export const SCHEDULE_RETRY_ATTEMPTS = 2;

/**
 * The rule's schedule: a cron on minute boundaries when the tick divides an hour (ticks then
 * start where lambdas/schedule.ts's tickStart puts them), else a rate.
 */
export function scheduleExpression(tickMinutes: number): string {
  if (tickMinutes === 60) return 'cron(0 * * * ? *)';
  if (60 % tickMinutes === 0) return `cron(${tickMinutes === 1 ? '*' : `0/${tickMinutes}`} * * * ? *)`;
  return `rate(${tickMinutes} minutes)`;
}

export interface DrainScheduleProps {
  readonly scheduler: lambda.IFunction;
  readonly tickMinutes: number;
  /** Encrypt the dead-letter queue with this key. @default - SQS-managed encryption */
  readonly encryptionKey?: kms.IKey;
}

export class DrainSchedule {
  public readonly rule: events.Rule;
  /** Ticks EventBridge could not deliver to the scheduler within SCHEDULE_MAX_EVENT_AGE. */
  public readonly deadLetterQueue: sqs.Queue;

  constructor(scope: Construct, props: DrainScheduleProps) {
    this.deadLetterQueue = new sqs.Queue(scope, 'ScheduleDeadLetterQueue', {
      ...(props.encryptionKey === undefined
        ? { encryption: sqs.QueueEncryption.SQS_MANAGED }
        : { encryption: sqs.QueueEncryption.KMS, encryptionMasterKey: props.encryptionKey }),
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'This queue is itself the dead-letter queue of the schedule rule target: it holds undelivered ticks for an operator to see (the ScheduleDeadLetterQueueNotEmpty alarm); a tick is never redriven, the next one replaces it.',
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'Serverless::Serverless-SQSRedrivePolicy',
      reason:
        'This queue is itself the dead-letter queue of the schedule rule target: undelivered ticks wait here for an operator (the ScheduleDeadLetterQueueNotEmpty alarm); they are never redriven, since the next tick replaces them.',
    });
    this.rule = new events.Rule(scope, 'Schedule', {
      description: `popdrain: enqueue the due mailboxes every ${props.tickMinutes} minute(s)`,
      schedule: events.Schedule.expression(scheduleExpression(props.tickMinutes)),
      targets: [
        new targets.LambdaFunction(props.scheduler, {
          retryAttempts: SCHEDULE_RETRY_ATTEMPTS,
          maxEventAge: SCHEDULE_MAX_EVENT_AGE,
          deadLetterQueue: this.deadLetterQueue,
        }),
      ],
    });
  }
}
