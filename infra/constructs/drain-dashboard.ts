/**
 * The CloudWatch dashboard: aggregate metrics, failures by error code, and per-mailbox top
 * lists found with search expressions (so it does not grow with the number of mailboxes).
 *
 * Builds in the given scope (the PopDrain), not in a construct of its own, so the dashboard
 * keeps its logical ID (`<PopDrain>/Dashboard`).
 */
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { METRIC_NAMESPACE, popdrainMetric, SERVICE_NAME } from './metrics.js';

export interface DrainDashboardProps {
  readonly scheduler: lambda.IFunction;
  /** The drainer, then the VPC drainer when there is one. */
  readonly drainers: readonly lambda.IFunction[];
  /** The drain queues, in the order of `drainers`. */
  readonly queues: readonly sqs.IQueue[];
  /** Their dead-letter queues, in the same order. */
  readonly deadLetterQueues: readonly sqs.IQueue[];
  /** @default - a name CloudFormation generates */
  readonly dashboardName?: string;
}

const W = 8;
const H = 6;

function m(name: string, statistic: string, label?: string): cloudwatch.Metric {
  return popdrainMetric(name, statistic).with(label === undefined ? {} : { label });
}

/** The `top` series with the highest `statistic` of a per-dimension metric (all of them without `top`). */
function search(dimensions: string, metricName: string, statistic: string, label: string, top?: number): cloudwatch.MathExpression {
  const expr = `SEARCH('{${METRIC_NAMESPACE},${dimensions}} service="${SERVICE_NAME}" MetricName="${metricName}"', '${statistic}', 300)`;
  return new cloudwatch.MathExpression({
    expression: top === undefined ? expr : `SORT(${expr}, MAX, DESC, ${top})`,
    usingMetrics: {},
    label,
    period: Duration.minutes(5),
  });
}

export class DrainDashboard {
  public readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, props: DrainDashboardProps) {
    const { drainers, queues } = props;
    const functions = [props.scheduler, ...drainers];
    const dashboard = new cloudwatch.Dashboard(scope, 'Dashboard', {
      ...(props.dashboardName === undefined ? {} : { dashboardName: props.dashboardName }),
      defaultInterval: Duration.days(1),
    });
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({ title: 'Messages stored / skipped', width: W, height: H, left: [m('MessagesStored', 'Sum', 'stored'), m('MessagesSkipped', 'Sum', 'skipped')] }),
      new cloudwatch.GraphWidget({ title: 'Bytes stored', width: W, height: H, left: [m('BytesStored', 'Sum', 'bytes')] }),
      new cloudwatch.GraphWidget({ title: 'Failures by error code', width: W, height: H, left: [search('service,errorCode', 'Failures', 'Sum', 'failures')] }),
    );
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Runs: failures, auth failures, stale and busy mailboxes',
        width: W,
        height: H,
        left: [m('RunFailures', 'Sum', 'run failures'), m('AuthFailures', 'Sum', 'auth failures'), m('StaleMailboxes', 'Maximum', 'stale'), m('BusyMailboxes', 'Sum', 'busy')],
      }),
      new cloudwatch.GraphWidget({
        title: 'Backlog age (s) and run duration (ms)',
        width: W,
        height: H,
        left: [m('BacklogAgeSeconds', 'Maximum', 'backlog age max')],
        right: [m('RunDurationMs', 'p50', 'run p50'), m('RunDurationMs', 'Maximum', 'run max')],
      }),
      new cloudwatch.GraphWidget({ title: 'Top 10 mailboxes by backlog age (s)', width: W, height: H, left: [search('service,mailbox', 'BacklogAgeSeconds', 'Maximum', 'backlog age', 10)] }),
    );
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Drain queue depth and oldest request (s)',
        width: W,
        height: H,
        left: queues.map((q) => q.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum' })),
        right: queues.map((q) => q.metricApproximateAgeOfOldestMessage({ statistic: 'Maximum' })),
      }),
      new cloudwatch.GraphWidget({
        title: 'Dead-letter queue depth',
        width: W,
        height: H,
        left: props.deadLetterQueues.map((q) => q.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum' })),
      }),
      new cloudwatch.GraphWidget({ title: 'Top 10 mailboxes by messages stored', width: W, height: H, left: [search('service,mailbox', 'MessagesStored', 'Sum', 'stored', 10)] }),
    );
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Lambda errors and throttles',
        width: 12,
        height: H,
        left: functions.flatMap((f) => [f.metricErrors({ statistic: 'Sum' }), f.metricThrottles({ statistic: 'Sum' })]),
      }),
      new cloudwatch.GraphWidget({
        title: 'Lambda duration (ms) and concurrency',
        width: 12,
        height: H,
        left: functions.map((f) => f.metricDuration({ statistic: 'Maximum' })),
        right: drainers.map((f) => f.metric('ConcurrentExecutions', { statistic: 'Maximum' })),
      }),
    );
    this.dashboard = dashboard;
  }
}
