// The fleet simulation's per-mailbox queue count (bench/fleet-queue-count.ts), fed the
// requests the real SQS stand-in (local-aws-sqs) recorded: sends, deduplicated sends,
// batches, receives and deletes.
import { DeleteMessageCommand, ReceiveMessageCommand, SendMessageBatchCommand, SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messageIdOfReceiptHandle, QueueGroupCounter } from '../../bench/fleet-queue-count.js';
import { startSqs, type FifoQueue, type SqsStandin } from '../../testkit/aws/sqs-standin.js';

let standin: SqsStandin;
let sqs: SQSClient;
let queue: FifoQueue;

beforeAll(async () => {
  standin = await startSqs();
  sqs = standin.client();
  queue = await standin.createFifoQueue('count');
});
afterAll(async () => standin?.stop());

const send = (group: string, dedup: string) =>
  sqs.send(new SendMessageCommand({ QueueUrl: queue.url, MessageGroupId: group, MessageDeduplicationId: dedup, MessageBody: JSON.stringify({ group, dedup }) }));

describe('QueueGroupCounter', () => {
  it('counts messages per group from the recorded requests, as the queue holds them', async () => {
    const counter = new QueueGroupCounter(queue.url);
    await send('a', 'a1');
    await send('a', 'a2');
    await send('a', 'a2'); // deduplicated: the same message
    await sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: queue.url,
        Entries: [
          { Id: '0', MessageGroupId: 'b', MessageDeduplicationId: 'b1', MessageBody: 'b1' },
          { Id: '1', MessageGroupId: 'c', MessageDeduplicationId: 'c1', MessageBody: 'c1' },
        ],
      }),
    );
    counter.feed(standin.requests.splice(0));
    expect(Object.fromEntries(counter.counts())).toEqual({ a: 2, b: 1, c: 1 });
    expect(counter.total()).toBe(4);

    const { Messages } = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queue.url, MaxNumberOfMessages: 10, AttributeNames: ['All'] }));
    const a = (Messages ?? []).filter((m) => m.Attributes?.MessageGroupId === 'a');
    expect(messageIdOfReceiptHandle(a[0]!.ReceiptHandle)).toBe(a[0]!.MessageId);
    await sqs.send(new DeleteMessageCommand({ QueueUrl: queue.url, ReceiptHandle: a[0]!.ReceiptHandle }));
    const b = (Messages ?? []).find((m) => m.Attributes?.MessageGroupId === 'b')!;
    await sqs.send(new DeleteMessageCommand({ QueueUrl: queue.url, ReceiptHandle: b.ReceiptHandle }));
    counter.feed(standin.requests.splice(0));
    expect(Object.fromEntries(counter.counts())).toEqual({ a: 1, c: 1 });
    // The one message group a still has is the one not deleted.
    const left = a.find((m) => m.MessageId !== a[0]!.MessageId)!;
    expect(counter.messagesOf('a')).toEqual([left.MessageId]);
    expect(counter.messagesOf('b')).toEqual([]);
    const depth = await standin.depth(queue.url);
    expect(counter.total()).toBe(depth.visible + depth.inFlight);
  });

  it('ignores other queues and failed requests', () => {
    const counter = new QueueGroupCounter('http://q/main');
    counter.feed([
      { action: 'SendMessage', body: { QueueUrl: 'http://q/other', MessageGroupId: 'x' }, status: 200, response: { MessageId: 'm1' }, at: 0 },
      { action: 'SendMessage', body: { QueueUrl: 'http://q/main', MessageGroupId: 'x' }, status: 400, response: {}, at: 0 },
    ]);
    expect(counter.total()).toBe(0);
    expect(messageIdOfReceiptHandle('not base64 json')).toBeUndefined();
  });
});
