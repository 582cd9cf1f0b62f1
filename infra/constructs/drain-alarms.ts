/**
 * The alarms: a fixed set whatever the number of mailboxes (they watch aggregate metrics),
 * each with its ALARM and OK notifications sent to the topic when there is one.
 *
 * Builds in the given scope (the PopDrain), not in a construct of its own, so the alarms keep
 * their logical IDs (`<PopDrain>/DrainerErrors`, ...).
 */
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { FAILURE_CLASSES, failureClassExpression } from './failure-classes.js';
import { failureMetric, popdrainMetric } from './metrics.js';

export interface DrainAlarmsProps {
  readonly deadLetterQueue: sqs.IQueue;
  /** @default - no VPC drainer, no alarm for it */
  readonly vpcDeadLetterQueue?: sqs.IQueue;
  readonly drainer: lambda.IFunction;
  /** @default - no VPC drainer, no alarm for it */
  readonly vpcDrainer?: lambda.IFunction;
  readonly scheduler: lambda.IFunction;
  /** The scheduler's tick: the stale-mailbox alarm's period is two ticks (at least 5 minutes). */
  readonly tickMinutes: number;
  /** Ticks EventBridge could not deliver to the scheduler. @default - no alarm */
  readonly scheduleDeadLetterQueue?: sqs.IQueue;
  /** Where ALARM and OK notifications go. @default - alarms without actions */
  readonly alarmTopic?: sns.ITopic;
}

export class DrainAlarms {
  /** Every alarm, in the order they were created. */
  public readonly alarms: readonly cloudwatch.Alarm[];

  constructor(scope: Construct, props: DrainAlarmsProps) {
    const alarms: cloudwatch.Alarm[] = [];
    const alarm = (id: string, metric: cloudwatch.IMetric, description: string, treatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING, periods = 1): void => {
      const created = new cloudwatch.Alarm(scope, id, {
        metric,
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: periods,
        datapointsToAlarm: periods,
        treatMissingData,
        alarmDescription: `${description} See docs/deploy.md, "Alarms".`,
      });
      if (props.alarmTopic !== undefined) {
        created.addAlarmAction(new SnsAction(props.alarmTopic));
        created.addOkAction(new SnsAction(props.alarmTopic));
      }
      alarms.push(created);
    };

    const five = Duration.minutes(5);
    const dlqs: Array<[string, sqs.IQueue]> = [['DeadLetterQueueNotEmpty', props.deadLetterQueue]];
    if (props.vpcDeadLetterQueue !== undefined) dlqs.push(['VpcDeadLetterQueueNotEmpty', props.vpcDeadLetterQueue]);
    for (const [id, dlq] of dlqs) {
      alarm(
        id,
        dlq.metricApproximateNumberOfMessagesVisible({ period: five, statistic: 'Maximum' }),
        'Drain requests failed maxReceiveCount times and were moved to the dead-letter queue.',
      );
    }
    alarm('DrainerErrors', props.drainer.metricErrors({ period: five, statistic: 'Sum' }), 'The drainer function failed (an invocation error, not a mailbox failure).');
    if (props.vpcDrainer !== undefined) {
      alarm('VpcDrainerErrors', props.vpcDrainer.metricErrors({ period: five, statistic: 'Sum' }), 'The VPC drainer function failed.');
    }
    alarm('SchedulerErrors', props.scheduler.metricErrors({ period: five, statistic: 'Sum' }), 'The scheduler function failed: mailboxes may not be enqueued.');
    // The scheduler reports StaleMailboxes every tick, so a period of two ticks always holds a
    // datapoint; none at all means the scheduler is not running, which is as bad.
    alarm(
      'StaleMailboxes',
      popdrainMetric('StaleMailboxes', 'Maximum', Duration.minutes(Math.max(5, 2 * props.tickMinutes))),
      'Some mailboxes have not been drained successfully for several of their intervals (or the scheduler reported nothing).',
      cloudwatch.TreatMissingData.BREACHING,
    );
    alarm('AuthFailures', popdrainMetric('AuthFailures', 'Sum'), 'A POP3 server or token endpoint refused a mailbox login.');

    // Run failures by error code, in the classes an operator acts on (failure-classes.ts);
    // the Contributor Insights rule "failures" names the mailboxes.
    for (const c of FAILURE_CLASSES) {
      const usingMetrics = Object.fromEntries(c.codes.map((code, i) => [`m${i}`, failureMetric(code)]));
      alarm(
        c.alarmId,
        new cloudwatch.MathExpression({ expression: failureClassExpression(c.codes), usingMetrics, label: c.alarmId, period: five }),
        `${c.description} Codes: ${c.codes.join(', ')}.`,
        cloudwatch.TreatMissingData.NOT_BREACHING,
        c.periods,
      );
    }
    // Throttles: a reserved concurrency or the account's pool too small for the fleet.
    const throttled: Array<[string, lambda.IFunction | undefined]> = [
      ['SchedulerThrottles', props.scheduler],
      ['DrainerThrottles', props.drainer],
      ['VpcDrainerThrottles', props.vpcDrainer],
    ];
    for (const [id, fn] of throttled) {
      if (fn !== undefined) alarm(id, fn.metricThrottles({ period: five, statistic: 'Sum' }), 'Lambda throttled the function: raise its reserved concurrency or the account quota.');
    }
    if (props.scheduleDeadLetterQueue !== undefined) {
      alarm(
        'ScheduleDeadLetterQueueNotEmpty',
        props.scheduleDeadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: five, statistic: 'Maximum' }),
        'EventBridge could not invoke the scheduler for a tick within its maximum event age: those ticks enqueued nothing.',
      );
    }
    this.alarms = alarms;
  }
}
