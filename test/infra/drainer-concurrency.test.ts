/**
 * The drainer's concurrency from the fleet's size (drainer-concurrency.ts) and the backpressure
 * alarm on the age of the oldest queued request (fleet-alarms.ts): the decision as a pure
 * function, then what the synthesized template holds.
 */
import { Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { decideDrainerConcurrency, neededConcurrency } from '../../infra/constructs/drainer-concurrency.js';
import { defaultQueueAgeThreshold } from '../../infra/constructs/fleet-alarms.js';
import { PopDrain } from '../../infra/constructs/pop-drain.js';
import type { PopDrainProps } from '../../infra/constructs/pop-drain-props.js';
import { mailbox, testApp, writeMailboxFile } from './support.js';

describe('decideDrainerConcurrency', () => {
  it('mailboxes x run seconds / interval seconds x headroom, rounded up', () => {
    // 1,000 x 10 / 300 = 33.3, x 2 = 66.7 -> 67
    expect(neededConcurrency({ expectedMailboxes: 1000 }, 5)).toBe(67);
    // the issue's own figure: 1,000 every 5 minutes at 3 s each needs 10 drainers without headroom
    expect(neededConcurrency({ expectedMailboxes: 1000, typicalRunSeconds: 3, headroom: 1 }, 5)).toBe(10);
    expect(neededConcurrency({ expectedMailboxes: 1000, typicalRunSeconds: 3.1, headroom: 1 }, 5)).toBe(11);
    // the interval defaults to the tick; an explicit interval wins
    expect(neededConcurrency({ expectedMailboxes: 10_000, typicalRunSeconds: 6, intervalMinutes: 60, headroom: 1.5 }, 5)).toBe(25);
  });

  it('keeps 10 when nothing is said, and an explicit value when no sizing is given', () => {
    expect(decideDrainerConcurrency({ tickMinutes: 5 })).toEqual({ maxConcurrency: 10 });
    expect(decideDrainerConcurrency({ explicit: 25, tickMinutes: 5 })).toEqual({ maxConcurrency: 25 });
  });

  it('takes the sizing, at least 2 (the event source minimum)', () => {
    expect(decideDrainerConcurrency({ sizing: { expectedMailboxes: 1000 }, tickMinutes: 5 })).toEqual({ maxConcurrency: 67, needed: 67 });
    expect(decideDrainerConcurrency({ sizing: { expectedMailboxes: 3 }, tickMinutes: 5 })).toEqual({ maxConcurrency: 2, needed: 1 });
  });

  it('an explicit value at or above the need wins; below it stops synth with the figures', () => {
    expect(decideDrainerConcurrency({ explicit: 100, sizing: { expectedMailboxes: 1000 }, tickMinutes: 5 })).toEqual({ maxConcurrency: 100, needed: 67 });
    const v = decideDrainerConcurrency({ explicit: 50, sizing: { expectedMailboxes: 1000 }, tickMinutes: 5 });
    expect(v.error).toMatch(/drainerMaxConcurrency 50 is below what drainerSizing needs \(1000 mailboxes x 10 s \/ \(5 min x 60\) x headroom 2 = 67\)/);
  });

  it('a need beyond one event source mapping stops synth with advice', () => {
    const v = decideDrainerConcurrency({ sizing: { expectedMailboxes: 100_000, typicalRunSeconds: 10 }, tickMinutes: 5 });
    expect(v.needed).toBe(6667);
    expect(v.error).toMatch(/need a concurrency of 6667 .*more than the 1000 .*split the mailboxes/);
  });

  it('refuses nonsense', () => {
    const bad: Array<[Parameters<typeof decideDrainerConcurrency>[0], RegExp]> = [
      [{ explicit: 1, tickMinutes: 5 }, /drainerMaxConcurrency must be a whole number from 2 to 1000, not 1/],
      [{ explicit: 1001, tickMinutes: 5 }, /not 1001/],
      [{ sizing: { expectedMailboxes: 0 }, tickMinutes: 5 }, /expectedMailboxes must be a whole number >= 1/],
      [{ sizing: { expectedMailboxes: 10.5 }, tickMinutes: 5 }, /expectedMailboxes/],
      [{ sizing: { expectedMailboxes: 10, typicalRunSeconds: 0 }, tickMinutes: 5 }, /typicalRunSeconds/],
      [{ sizing: { expectedMailboxes: 10, intervalMinutes: -5 }, tickMinutes: 5 }, /intervalMinutes/],
      [{ sizing: { expectedMailboxes: 10, headroom: 0.5 }, tickMinutes: 5 }, /headroom must be a number >= 1/],
    ];
    for (const [request, message] of bad) expect(decideDrainerConcurrency(request).error).toMatch(message);
  });

  it('the queue-age threshold defaults to two ticks, at least 30 minutes', () => {
    expect(defaultQueueAgeThreshold(5).toMinutes()).toBe(30);
    expect(defaultQueueAgeThreshold(60).toMinutes()).toBe(120);
  });
});

function synth(props: Partial<PopDrainProps> = {}) {
  const stack = new Stack(testApp(), 'Fleet');
  const configPath = writeMailboxFile({ mailboxes: [mailbox('alpha'), mailbox('beta')] });
  const popDrain = new PopDrain(stack, 'PopDrain', { configPath, ...props });
  return { stack, popDrain, template: Template.fromStack(stack) };
}

describe('the drainer concurrency and the queue-age alarm in the template', () => {
  it('drainerSizing sets the event source maximumConcurrency', () => {
    const s = synth({ drainerSizing: { expectedMailboxes: 1000, typicalRunSeconds: 10 } });
    expect(s.popDrain.drainerMaxConcurrency).toBe(67);
    s.template.hasResourceProperties('AWS::Lambda::EventSourceMapping', { ScalingConfig: { MaximumConcurrency: 67 } });
  });

  it('synth stops on an explicit concurrency below the sizing, and on reserved concurrency below the sizing', () => {
    expect(() => synth({ drainerSizing: { expectedMailboxes: 1000 }, drainerMaxConcurrency: 20 })).toThrow(/drainerMaxConcurrency 20 is below/);
    expect(() => synth({ drainerSizing: { expectedMailboxes: 1000 }, reservedConcurrentExecutions: 50 })).toThrow(/reservedConcurrentExecutions \(50\) must be at least drainerMaxConcurrency \(67\)/);
  });

  it('alarms on the age of the oldest request in the drain queue, over the threshold', () => {
    const s = synth();
    s.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateAgeOfOldestMessage',
      Dimensions: [{ Name: 'QueueName', Value: s.stack.resolve(s.popDrain.queue.queueName) }],
      Statistic: 'Maximum',
      Threshold: 1800,
      ComparisonOperator: 'GreaterThanThreshold',
    });
    const custom = synth({ queueAgeAlarmThreshold: Duration.minutes(45) });
    custom.template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'ApproximateAgeOfOldestMessage', Threshold: 2700 });
    expect(() => synth({ queueAgeAlarmThreshold: Duration.seconds(30) })).toThrow(/at least a minute/);
  });
});
