/**
 * The CloudWatch dashboard: aggregate metrics, failures by error code, and per-mailbox top
 * lists from the Contributor Insights rules (so it does not grow with the number of
 * mailboxes, and needs no per-mailbox metric), with links to those rules and to the saved
 * Logs Insights query for one mailbox. With the opt-in per-mailbox metrics, their top lists
 * (search expressions) are added.
 *
 * Builds in the given scope (the PopDrain), not in a construct of its own, so the dashboard
 * keeps its logical ID (`<PopDrain>/Dashboard`).
 */
import { Aws, Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { InsightRuleWidget, type DrainInsightRule } from './insight-rules.js';
import { METRIC_NAMESPACE, popdrainMetric, SERVICE_NAME } from './metrics.js';
import { withoutUndefined } from '../../lib/drain/without-undefined.js';

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
  /** The Contributor Insights rules: top backlog age, failures, bytes, stale (insight-rules.ts). */
  readonly insightRules: readonly DrainInsightRule[];
  /** The saved Logs Insights query for one mailbox. */
  readonly mailboxQueryName: string;
  /** Add the top lists of the opt-in per-mailbox metrics. @default false */
  readonly perMailboxMetrics?: boolean;
}

/** Markdown links to the Contributor Insights rules and the saved query (console URLs). */
export function operatorLinks(insightRules: readonly Pick<DrainInsightRule, 'ruleName' | 'title'>[], mailboxQueryName: string, region: string): string {
  const console = `https://console.aws.amazon.com/cloudwatch/home?region=${region}`;
  return [
    '### Per mailbox',
    ...insightRules.map((r) => `* [${r.title}](${console}#contributor-insights:rules/${encodeURIComponent(r.ruleName)}) (Contributor Insights rule \`${r.ruleName}\`)`),
    `* One mailbox's runs: [Logs Insights](${console}#logsV2:logs-insights) → Saved queries → \`${mailboxQueryName}\` (replace MAILBOX-ID)`,
  ].join('\n');
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

function insightWidget(rules: readonly DrainInsightRule[], suffix: string): InsightRuleWidget {
  const rule = rules.find((r) => r.ruleName.endsWith(`-${suffix}`));
  if (rule === undefined) throw new Error(`PopDrain: no Contributor Insights rule "${suffix}"`);
  return new InsightRuleWidget(rule.ruleName, rule.title, W, H);
}

export class DrainDashboard {
  public readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, props: DrainDashboardProps) {
    const { drainers, queues } = props;
    const functions = [props.scheduler, ...drainers];
    const dashboard = new cloudwatch.Dashboard(scope, 'Dashboard', {
      ...withoutUndefined({ dashboardName: props.dashboardName }),
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
      insightWidget(props.insightRules, 'backlog-age'),
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
      insightWidget(props.insightRules, 'bytes'),
    );
    dashboard.addWidgets(
      insightWidget(props.insightRules, 'failures'),
      insightWidget(props.insightRules, 'stale'),
      new cloudwatch.TextWidget({ markdown: operatorLinks(props.insightRules, props.mailboxQueryName, Aws.REGION), width: W, height: H }),
    );
    if (props.perMailboxMetrics === true) {
      dashboard.addWidgets(
        new cloudwatch.GraphWidget({ title: 'Top 10 mailboxes by backlog age (s), per-mailbox metrics', width: 12, height: H, left: [search('service,mailbox', 'BacklogAgeSeconds', 'Maximum', 'backlog age', 10)] }),
        new cloudwatch.GraphWidget({ title: 'Top 10 mailboxes by messages stored, per-mailbox metrics', width: 12, height: H, left: [search('service,mailbox', 'MessagesStored', 'Sum', 'stored', 10)] }),
      );
    }
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
