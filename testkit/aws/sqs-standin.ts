/**
 * SQS on loopback: local-aws-sqs 2.0 (JSON protocol, as current clients speak it) inside a
 * `node:http` server of ours, so every request and its answer is recorded (a test can assert
 * the exact SendMessageBatch entries, ChangeMessageVisibility timeouts, deletions).
 *
 * What local-aws-sqs 2.0.2 does and does not do (checked against its code and by probes):
 * - FIFO queues, MessageGroupId, MessageDeduplicationId, DeduplicationScope, SequenceNumber,
 *   RedrivePolicy (moves a message to the DLQ once its visibility timeout expires after
 *   maxReceiveCount receives) and ChangeMessageVisibility all exist.
 * - Deduplication only holds while the first message is still in the queue (visible or in
 *   flight): a duplicate sent after it was deleted is accepted as a new message. SQS
 *   deduplicates for five minutes whatever happened to the first one.
 * - No message-group lock: a FIFO message is handed out while an earlier message of its group
 *   is in flight (SQS holds the group back). The event-source loop (sqs-event-source.ts) keeps
 *   the one-at-a-time-per-group rule itself.
 * - ChangeMessageVisibility counts as a receive: it increments ApproximateReceiveCount (SQS
 *   does not), so a message whose visibility was changed once is redelivered with a count of 3.
 * - ReceiveMessage returns system attributes only for the legacy `AttributeNames` parameter
 *   (it ignores `MessageSystemAttributeNames`).
 * - ApproximateNumberOfMessages counts in-flight messages too (SQS counts visible ones only);
 *   `depth()` subtracts them.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SQSClient,
  type Message,
  type QueueAttributeName,
  type SQSClientConfig,
} from '@aws-sdk/client-sqs';
import { createRequestHandler } from 'local-aws-sqs';

const HOST = '127.0.0.1';
const REGION = 'us-east-1';
const ACCOUNT = '123456789012';
/** local-aws-sqs accepts any credentials; these are obviously fake. */
const SQS_CREDENTIALS = { accessKeyId: 'sqs-fake-key', secretAccessKey: 'sqs-fake-secret' };

export interface SqsRequest {
  /** The operation, from `X-Amz-Target` (e.g. `SendMessageBatch`). */
  action: string;
  body: Record<string, unknown>;
  status: number;
  response: Record<string, unknown> | undefined;
  at: number;
}

export interface FifoQueue {
  url: string;
  arn: string;
  name: string;
  dlqUrl: string;
  dlqArn: string;
}

export interface FifoQueueOptions {
  /** Seconds. @default 300 */
  visibilityTimeoutSeconds?: number;
  /** @default 5, as the PopDrain construct */
  maxReceiveCount?: number;
}

export interface SqsStandin {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  readonly requests: SqsRequest[];
  requestsFor(action: string, queueUrl?: string): SqsRequest[];
  /** A new SQSClient for the stand-in (destroyed by `stop()`). */
  client(overrides?: Partial<SQSClientConfig>): SQSClient;
  /**
   * A FIFO queue shaped like the PopDrain construct's (explicit deduplication ids,
   * deduplication and throughput per message group) with its FIFO dead-letter queue.
   */
  createFifoQueue(name: string, options?: FifoQueueOptions): Promise<FifoQueue>;
  /** Visible and in-flight messages of a queue. */
  depth(queueUrl: string): Promise<{ visible: number; inFlight: number }>;
  /**
   * Receives every visible message (they become in flight for the queue's visibility
   * timeout); with their system attributes.
   */
  receiveAll(queueUrl: string): Promise<Message[]>;
  stop(): Promise<void>;
}

function readJson(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export async function startSqs(): Promise<SqsStandin> {
  const requests: SqsRequest[] = [];
  const { service, requestHandler } = createRequestHandler({
    port: 0,
    hostname: HOST,
    region: REGION,
    accountId: ACCOUNT,
    emulateQueueCreationLifecycle: false,
  });
  const record = (req: IncomingMessage, res: ServerResponse): void => {
    const action = String(req.headers['x-amz-target'] ?? '').split('.').pop() ?? '';
    const chunks: Buffer[] = [];
    const out: Buffer[] = [];
    // local-aws-sqs attaches its own 'data' listener synchronously; both see every chunk.
    req.on('data', (c: Buffer) => chunks.push(c));
    const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
    res.end = ((...args: unknown[]) => {
      const first = args[0];
      if (typeof first === 'string' || Buffer.isBuffer(first)) out.push(Buffer.from(first));
      return end(...args);
    }) as ServerResponse['end'];
    res.once('finish', () => {
      requests.push({
        action,
        body: readJson(Buffer.concat(chunks).toString('utf8')) ?? {},
        status: res.statusCode,
        response: readJson(Buffer.concat(out).toString('utf8')),
        at: Date.now(),
      });
    });
    void requestHandler(req, res);
  };
  const server: Server = createServer(record);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  // Queue URLs are built from the service's port (createSqsServer does the same after listen).
  (service as unknown as { PORT: number }).PORT = port;
  const endpoint = `http://${HOST}:${port}`;
  const clients: SQSClient[] = [];
  const client = (overrides: Partial<SQSClientConfig> = {}): SQSClient => {
    const c = new SQSClient({ region: REGION, endpoint, credentials: SQS_CREDENTIALS, ...overrides });
    clients.push(c);
    return c;
  };
  const admin = client();

  const arnOf = async (url: string): Promise<string> => {
    const { Attributes } = await admin.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }));
    const arn = Attributes?.QueueArn;
    if (arn === undefined) throw new Error(`no ARN for ${url}`);
    return arn;
  };

  return {
    endpoint,
    requests,
    requestsFor: (action, queueUrl) =>
      requests.filter((r) => r.action === action && (queueUrl === undefined || r.body.QueueUrl === queueUrl)),
    client,
    createFifoQueue: async (name, options = {}) => {
      const dlq = await admin.send(
        new CreateQueueCommand({ QueueName: `${name}-dlq.fifo`, Attributes: { FifoQueue: 'true', MessageRetentionPeriod: '1209600' } }),
      );
      const dlqUrl = dlq.QueueUrl!;
      const dlqArn = await arnOf(dlqUrl);
      const queue = await admin.send(
        new CreateQueueCommand({
          QueueName: `${name}.fifo`,
          Attributes: {
            FifoQueue: 'true',
            ContentBasedDeduplication: 'false',
            DeduplicationScope: 'messageGroup',
            FifoThroughputLimit: 'perMessageGroupId',
            VisibilityTimeout: String(options.visibilityTimeoutSeconds ?? 300),
            MessageRetentionPeriod: '345600',
            RedrivePolicy: JSON.stringify({ maxReceiveCount: options.maxReceiveCount ?? 5, deadLetterTargetArn: dlqArn }),
          },
        }),
      );
      const url = queue.QueueUrl!;
      return { url, arn: await arnOf(url), name: `${name}.fifo`, dlqUrl, dlqArn };
    },
    depth: async (queueUrl) => {
      const names: QueueAttributeName[] = ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'];
      const { Attributes } = await admin.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: names }));
      const inFlight = Number(Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0);
      return { visible: Number(Attributes?.ApproximateNumberOfMessages ?? 0) - inFlight, inFlight };
    },
    receiveAll: async (queueUrl) => {
      const all: Message[] = [];
      for (;;) {
        const { Messages } = await admin.send(
          new ReceiveMessageCommand({
            QueueUrl: queueUrl,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: 0,
            AttributeNames: ['All'],
            MessageSystemAttributeNames: ['All'],
          }),
        );
        if (Messages === undefined || Messages.length === 0) return all;
        all.push(...Messages);
      }
    },
    stop: async () => {
      for (const c of clients) c.destroy();
      for (const q of service.Queues) q.clearRecords(); // their timers are unref'd; this frees them now
      await new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
    },
  };
}
