/**
 * The CloudWatch Contributor Insights rules that give per-mailbox visibility without
 * per-mailbox metrics: they read the drainers' run lines (`drain report`, one per run, with
 * `mailboxId`, `outcome`, `errorCode` and the report) and the scheduler's `mailbox stale`
 * lines, and rank mailboxes. A rule costs a fixed monthly fee plus a fee per matched log
 * event, whatever the number of mailboxes (infra/cost-model.ts).
 *
 * The rule bodies are a pure decision (`insightRuleSpecs`), unit-tested; `DrainInsightRules`
 * builds them in the given scope (the PopDrain).
 */
import { Aws, Names, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type { Construct } from 'constructs';
import { withoutUndefined } from '../../lib/drain/without-undefined.js';

/** The message of the drainer's one line per run (lambdas/drainer.ts). */
export const RUN_LOG_MESSAGE = 'drain report';
/** The message of the scheduler's line per stale mailbox and tick (lambdas/scheduler.ts). */
export const STALE_LOG_MESSAGE = 'mailbox stale';

/** What a rule ranks: its construct id, name suffix, dashboard title and CloudWatch rule body. */
export interface InsightRuleSpec {
  readonly id: string;
  readonly suffix: string;
  readonly title: string;
  /** The Contributor Insights rule body (schema CloudWatchLogRule 1). */
  readonly body: Record<string, unknown>;
}

function logRule(logGroupNames: readonly string[], keys: string[], filters: object[], valueOf?: string): Record<string, unknown> {
  return {
    Schema: { Name: 'CloudWatchLogRule', Version: 1 },
    LogGroupNames: [...logGroupNames],
    LogFormat: 'JSON',
    Contribution: { Keys: keys, ...withoutUndefined({ ValueOf: valueOf }), Filters: filters },
    AggregateOn: valueOf === undefined ? 'Count' : 'Sum',
  };
}

/**
 * The four rules: top mailboxes by backlog age, by failed runs (with the error code), by bytes
 * stored, and the stale mailboxes the scheduler names. With one run per mailbox and interval,
 * the per-interval Sum of `backlogAgeSeconds` is that run's backlog age.
 */
export function insightRuleSpecs(drainerLogGroupNames: readonly string[], schedulerLogGroupName: string): InsightRuleSpec[] {
  const run = { Match: '$.message', In: [RUN_LOG_MESSAGE] };
  return [
    {
      id: 'TopBacklogAgeRule',
      suffix: 'backlog-age',
      title: 'Top mailboxes by backlog age (s)',
      body: logRule(drainerLogGroupNames, ['$.mailboxId'], [run], '$.report.backlogAgeSeconds'),
    },
    {
      id: 'TopFailuresRule',
      suffix: 'failures',
      title: 'Top mailboxes by failed runs (mailbox, error code)',
      body: logRule(drainerLogGroupNames, ['$.mailboxId', '$.errorCode'], [run, { Match: '$.outcome', In: ['failed'] }]),
    },
    {
      id: 'TopBytesRule',
      suffix: 'bytes',
      title: 'Top mailboxes by bytes stored',
      body: logRule(drainerLogGroupNames, ['$.mailboxId'], [run], '$.report.fetchedBytes'),
    },
    {
      id: 'StaleMailboxesRule',
      suffix: 'stale',
      title: 'Stale mailboxes (not drained for several intervals)',
      body: logRule([schedulerLogGroupName], ['$.mailboxId'], [{ Match: '$.message', In: [STALE_LOG_MESSAGE] }]),
    },
  ];
}

export interface DrainInsightRulesProps {
  /** The log group names of the drainer and, when there is one, the VPC drainer. */
  readonly drainerLogGroupNames: readonly string[];
  readonly schedulerLogGroupName: string;
}

/** A created rule with its name and what it shows. */
export interface DrainInsightRule {
  readonly rule: cloudwatch.CfnInsightRule;
  readonly ruleName: string;
  readonly title: string;
}

export class DrainInsightRules {
  public readonly rules: readonly DrainInsightRule[];

  constructor(scope: Construct, props: DrainInsightRulesProps) {
    const stack = Stack.of(scope);
    // Unique per PopDrain in the account and region, and stable across deployments.
    const prefix = Names.uniqueResourceName(scope, { maxLength: 100, separator: '-' });
    this.rules = insightRuleSpecs(props.drainerLogGroupNames, props.schedulerLogGroupName).map((spec) => {
      const ruleName = `${prefix}-${spec.suffix}`;
      const rule = new cloudwatch.CfnInsightRule(scope, spec.id, { ruleName, ruleState: 'ENABLED', ruleBody: stack.toJsonString(spec.body) });
      return { rule, ruleName, title: spec.title };
    });
  }
}

/** A dashboard graph of a Contributor Insights rule's top contributors. */
export class InsightRuleWidget extends cloudwatch.ConcreteWidget {
  constructor(
    private readonly ruleName: string,
    private readonly title: string,
    width: number,
    height: number,
  ) {
    super(width, height);
  }

  toJson(): unknown[] {
    return [
      {
        type: 'metric',
        width: this.width,
        height: this.height,
        x: this.x,
        y: this.y,
        properties: {
          title: this.title,
          view: 'timeSeries',
          region: Aws.REGION,
          insightRule: { ruleName: this.ruleName, maxContributorCount: 10, orderBy: 'Sum' },
          period: 300,
          legend: { position: 'right' },
        },
      },
    ];
  }
}
