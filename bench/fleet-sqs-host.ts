/**
 * The SQS stand-in of `npm run bench:fleet` in its own process, on the simulation's scaled
 * clock with its timers scaled (visibility timeouts, delays and retention run in simulated
 * time; testkit/clock/scaled-clock.ts). It creates the drain queue (shaped like the PopDrain
 * construct's) and answers samples over IPC: the queue's depth and the messages per mailbox
 * (fleet-queue-count.ts), counted from the requests it recorded.
 */
import '../testkit/clock/scaled-clock-install.js';
import { startSqs } from '../testkit/aws/sqs-standin.js';
import { QueueGroupCounter } from './fleet-queue-count.js';

export interface SqsHostReady {
  type: 'ready';
  endpoint: string;
  queueUrl: string;
  queueArn: string;
  dlqUrl: string;
}

export interface SqsHostSample {
  type: 'sample';
  id: number;
  visible: number;
  inFlight: number;
  dlq: number;
  /** Messages per mailbox by the request log, largest first (at most 5). */
  top: Array<[string, number]>;
  maxPerMailbox: number;
  /** Every mailbox with more than one message by the request log, and their MessageIds. */
  several: Array<{ group: string; messageIds: string[] }>;
  countedTotal: number;
}

const sqs = await startSqs();
const queue = await sqs.createFifoQueue('popdrain-fleet', {
  visibilityTimeoutSeconds: Number(process.env.FLEET_VISIBILITY_TIMEOUT_SECONDS ?? 5400),
});
const counter = new QueueGroupCounter(queue.url);

process.on('message', (m: { type: string; id: number }) => {
  if (m?.type !== 'sample') return;
  void (async () => {
    // Feed what was recorded so far, then forget it (the log would grow for the whole run).
    const taken = sqs.requests.splice(0, sqs.requests.length);
    counter.feed(taken);
    const [depth, dlq] = await Promise.all([sqs.depth(queue.url), sqs.depth(queue.dlqUrl)]);
    const top = [...counter.counts()].sort((a, b) => b[1] - a[1]).slice(0, 5);
    const sample: SqsHostSample = {
      type: 'sample',
      id: m.id,
      visible: depth.visible,
      inFlight: depth.inFlight,
      dlq: dlq.visible + dlq.inFlight,
      top,
      maxPerMailbox: top[0]?.[1] ?? 0,
      several: [...counter.counts()].filter(([, n]) => n > 1).map(([group]) => ({ group, messageIds: counter.messagesOf(group) })),
      countedTotal: counter.total(),
    };
    process.send?.(sample);
  })();
});
process.on('disconnect', () => {
  void sqs.stop().finally(() => process.exit(0));
});
process.send?.({ type: 'ready', endpoint: sqs.endpoint, queueUrl: queue.url, queueArn: queue.arn, dlqUrl: queue.dlqUrl } satisfies SqsHostReady);
