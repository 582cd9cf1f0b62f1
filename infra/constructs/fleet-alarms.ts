/**
 * Backpressure alarms of the fleet: the age of the oldest drain request waiting in each queue.
 * The scheduler keeps at most one request per mailbox outstanding, so a healthy queue holds
 * requests seconds old (a retried one is at most about 15 minutes old before it moves to the
 * DLQ); requests older than the threshold mean the drainers do not keep up with the schedule
 * (raise `drainerMaxConcurrency` or `drainerSizing`, or the account's concurrency).
 *
 * The throttle alarms (`SchedulerThrottles`, `DrainerThrottles`) live in drain-alarms.ts. Builds
 * in the given scope (the PopDrain), like drain-alarms.ts, so logical IDs stay
 * `<PopDrain>/<id>`.
 */
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';

/** The shortest default threshold: longer than a retried request's redelivery delays (1+2+4+8 min). */
export const MIN_DEFAULT_QUEUE_AGE_THRESHOLD_MINUTES = 30;

/** The default threshold: two ticks, at least 30 minutes. */
export function defaultQueueAgeThreshold(tickMinutes: number): Duration {
  return Duration.minutes(Math.max(MIN_DEFAULT_QUEUE_AGE_THRESHOLD_MINUTES, 2 * tickMinutes));
}

export interface FleetAlarmsProps {
  /** The drain queues, by alarm id prefix: `Drain` (default placement), `VpcDrain`. */
  readonly queues: ReadonlyArray<readonly [string, sqs.IQueue]>;
  /** The age of the oldest request above which the alarm fires. */
  readonly queueAgeThreshold: Duration;
  /** Where ALARM and OK notifications go. @default - alarms without actions */
  readonly alarmTopic?: sns.ITopic;
}

export class FleetAlarms {
  public readonly alarms: readonly cloudwatch.Alarm[];

  constructor(scope: Construct, props: FleetAlarmsProps) {
    const seconds = props.queueAgeThreshold.toSeconds();
    if (!(seconds >= 60)) throw new Error(`PopDrain: queueAgeAlarmThreshold must be at least a minute, not ${seconds} s`);
    this.alarms = props.queues.map(([name, queue]) => {
      const alarm = new cloudwatch.Alarm(scope, `${name}QueueOldestRequestAge`, {
        metric: queue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(5), statistic: 'Maximum' }),
        threshold: seconds,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        datapointsToAlarm: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: `A drain request has waited in the ${name} queue longer than ${seconds} s: the drainers do not keep up with the schedule (drainerMaxConcurrency, drainerSizing, the account's concurrency). See docs/deploy.md, "Alarms".`,
      });
      if (props.alarmTopic !== undefined) {
        alarm.addAlarmAction(new SnsAction(props.alarmTopic));
        alarm.addOkAction(new SnsAction(props.alarmTopic));
      }
      return alarm;
    });
  }
}
