/**
 * What an operator sees, by the synthesized template (no bundling): Contributor Insights
 * rules over the run log lines instead of per-mailbox metrics, the saved Logs Insights query,
 * the opt-in per-mailbox metrics. Resources are found by type and properties, never by
 * hashed logical ids.
 */
import { Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { scheduleExpression } from '../../infra/constructs/drain-schedule.js';
import { FAILURE_CLASSES, failureClassExpression } from '../../infra/constructs/failure-classes.js';
import { insightRuleSpecs } from '../../infra/constructs/insight-rules.js';
import { PopDrain } from '../../infra/constructs/pop-drain.js';
import type { PopDrainProps } from '../../infra/constructs/pop-drain-props.js';
import { mailbox, testApp, writeMailboxFile } from './support.js';

function synthOps(props: Partial<PopDrainProps> = {}, extra?: (stack: Stack) => Partial<PopDrainProps>) {
  const app = testApp();
  const stack = new Stack(app, 'Ops');
  const configPath = writeMailboxFile({ mailboxes: [mailbox('alpha'), mailbox('beta', { schedule: { everyMinutes: 10 } })] });
  const popDrain = new PopDrain(stack, 'PopDrain', { configPath, ...props, ...(extra?.(stack) ?? {}) });
  return { stack, popDrain, template: Template.fromStack(stack), cfn: (token: unknown) => stack.resolve(token) };
}

function drainerEnv(s: ReturnType<typeof synthOps>): Record<string, unknown> {
  const ref = JSON.stringify(s.cfn(s.popDrain.drainerFunction.functionName));
  const fn = Object.entries(s.template.findResources('AWS::Lambda::Function')).find(([id]) => JSON.stringify({ Ref: id }) === ref)!;
  return fn[1].Properties.Environment.Variables as Record<string, unknown>;
}

describe('insightRuleSpecs', () => {
  it('ranks mailboxes from the run line and the stale line, keyed by mailboxId, never by a metric dimension', () => {
    const specs = insightRuleSpecs(['/drainer', '/vpc-drainer'], '/scheduler');
    expect(specs.map((r) => r.suffix)).toEqual(['backlog-age', 'failures', 'bytes', 'stale']);
    const [backlog, failures, bytes, stale] = specs.map((r) => r.body as { LogGroupNames: string[]; Contribution: Record<string, unknown>; AggregateOn: string });
    expect(backlog).toMatchObject({
      LogGroupNames: ['/drainer', '/vpc-drainer'],
      LogFormat: 'JSON',
      AggregateOn: 'Sum',
      Contribution: { Keys: ['$.mailboxId'], ValueOf: '$.report.backlogAgeSeconds', Filters: [{ Match: '$.message', In: ['drain report'] }] },
    });
    expect(failures!.Contribution).toEqual({
      Keys: ['$.mailboxId', '$.errorCode'],
      Filters: [
        { Match: '$.message', In: ['drain report'] },
        { Match: '$.outcome', In: ['failed'] },
      ],
    });
    expect(failures!.AggregateOn).toBe('Count');
    expect(bytes!.Contribution.ValueOf).toBe('$.report.fetchedBytes');
    expect(stale).toMatchObject({ LogGroupNames: ['/scheduler'], AggregateOn: 'Count', Contribution: { Filters: [{ Match: '$.message', In: ['mailbox stale'] }] } });
  });
});

describe('per-mailbox visibility without per-mailbox metrics', () => {
  const s = synthOps();

  it('four Contributor Insights rules over the drainer and scheduler log groups', () => {
    s.template.resourceCountIs('AWS::CloudWatch::InsightRule', 4);
    expect(s.popDrain.insightRules).toHaveLength(4);
    const drainerLogs = s.cfn(s.popDrain.drainerFunction.logGroup.logGroupName);
    for (const r of s.popDrain.insightRules) {
      s.template.hasResourceProperties('AWS::CloudWatch::InsightRule', { RuleName: r.ruleName, RuleState: 'ENABLED', RuleBody: Match.anyValue() });
    }
    const bodies = Object.values(s.template.findResources('AWS::CloudWatch::InsightRule')).map((r) => JSON.stringify(r.Properties.RuleBody));
    expect(bodies.filter((b) => b.includes(JSON.stringify(drainerLogs).slice(1, -1)))).toHaveLength(3);
  });

  it('a saved Logs Insights query for one mailbox over every function log group', () => {
    s.template.hasResourceProperties('AWS::Logs::QueryDefinition', {
      Name: Match.stringLikeRegexp('^popdrain/.+/one-mailbox$'),
      QueryString: Match.stringLikeRegexp('filter mailboxId = "MAILBOX-ID"'),
      LogGroupNames: Match.arrayWith([s.cfn(s.popDrain.drainerFunction.logGroup.logGroupName), s.cfn(s.popDrain.schedulerFunction.logGroup.logGroupName)]),
    });
  });

  it('the dashboard links the rules and the query, and has no per-mailbox series by default', () => {
    const body = JSON.stringify(s.template.findResources('AWS::CloudWatch::Dashboard'));
    expect(body).toContain('#contributor-insights:rules/');
    expect(body).toContain('one-mailbox');
    expect(body).not.toContain('service,mailbox');
    expect(drainerEnv(s).POPDRAIN_PER_MAILBOX_METRICS).toBe('false');
  });

  it('perMailboxMetrics opts in: the drainer publishes them and the dashboard shows their top lists', () => {
    const opted = synthOps({ perMailboxMetrics: true });
    expect(drainerEnv(opted).POPDRAIN_PER_MAILBOX_METRICS).toBe('true');
    expect(JSON.stringify(opted.template.findResources('AWS::CloudWatch::Dashboard'))).toContain('service,mailbox');
  });
});

describe('a run end to end', () => {
  const s = synthOps();

  it('both functions are traced by default (tracing: false turns it off)', () => {
    s.template.allResourcesProperties('AWS::Lambda::Function', { TracingConfig: { Mode: 'Active' } });
    synthOps({ tracing: false }).template.allResourcesProperties('AWS::Lambda::Function', { TracingConfig: Match.absent() });
  });

  it('log groups have a retention', () => {
    s.template.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: 90 });
  });

  it('alarms on run failures by class of error code, summing the Failures metric of each code', () => {
    for (const c of FAILURE_CLASSES) {
      s.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        EvaluationPeriods: c.periods,
        DatapointsToAlarm: c.periods,
        Threshold: 0,
        Metrics: Match.arrayWith([
          Match.objectLike({ Expression: failureClassExpression(c.codes), ReturnData: true }),
          ...c.codes.map((code) =>
            Match.objectLike({
              MetricStat: Match.objectLike({
                Metric: { Namespace: 'popdrain', MetricName: 'Failures', Dimensions: Match.arrayWith([{ Name: 'errorCode', Value: code }]) },
                Stat: 'Sum',
              }),
              ReturnData: false,
            }),
          ),
        ]),
      });
    }
  });

  it('alarms on throttles of every function and on ticks in the schedule DLQ', () => {
    for (const fn of [s.popDrain.schedulerFunction, s.popDrain.drainerFunction]) {
      s.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'AWS/Lambda',
        MetricName: 'Throttles',
        Dimensions: [{ Name: 'FunctionName', Value: s.cfn(fn.functionName) }],
        Threshold: 0,
      });
    }
    s.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: s.cfn(s.popDrain.scheduleDeadLetterQueue.queueName) }],
    });
  });

  it('the schedule is a cron on tick boundaries when the tick divides an hour, else a rate', () => {
    expect(scheduleExpression(1)).toBe('cron(* * * * ? *)');
    expect(scheduleExpression(5)).toBe('cron(0/5 * * * ? *)');
    expect(scheduleExpression(60)).toBe('cron(0 * * * ? *)');
    expect(scheduleExpression(7)).toBe('rate(7 minutes)');
    // Retries end within the 5-minute FIFO deduplication window.
    s.template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'cron(0/5 * * * ? *)',
      Targets: [Match.objectLike({ RetryPolicy: { MaximumEventAgeInSeconds: 240, MaximumRetryAttempts: 2 } })],
    });
  });

  it('failure classes: each code alarmed once, at most 10 per expression', () => {
    const codes = FAILURE_CLASSES.flatMap((c) => c.codes);
    expect(new Set(codes).size).toBe(codes.length);
    expect(failureClassExpression(['A', 'B'])).toBe('FILL(m0, 0) + FILL(m1, 0)');
    expect(() => failureClassExpression([])).toThrow();
    expect(() => failureClassExpression(Array.from({ length: 11 }, (_, i) => `C${i}`))).toThrow();
  });
});
