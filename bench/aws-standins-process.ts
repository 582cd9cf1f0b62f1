/**
 * The bench's in-process AWS stand-ins in a process of their own (forked by bench/aws-services.ts
 * with an IPC channel): dynalite, the recording EventBridge endpoint, the in-memory S3 endpoint
 * that answers after 20 ms and the in-memory DynamoDB endpoint that answers after 5 ms (the S3
 * latency row's ledger: dynalite serves ~60 conditional writes a second). dynalite is slow (LevelDB in JavaScript): in the orchestrator it
 * took CPU from the latency proxy in front of Dovecot, and its figures were nobody's. Here its
 * CPU is this process's, which the orchestrator asks for around each measured run.
 *
 * Protocol: it sends `{ ready: StandinEndpoints }` once, then answers each `StandinRequest`
 * with `{ id, result }` or `{ id, error }`.
 */
import { startAwsJsonEndpoint } from '../testkit/aws/json-endpoint.js';
import { startS3LatencyEndpoint } from '../testkit/aws/s3-latency-endpoint.js';
import { startDynamoDbMemory } from '../testkit/aws/dynamodb-memory.js';
import { startDynalite } from '../testkit/aws/standins.js';

/** DynamoDB's latency per request within a region ("single-digit milliseconds"). */
const DYNAMODB_LATENCY_MS = 5;

export interface StandinEndpoints {
  dynamodbEndpoint: string;
  eventsEndpoint: string;
  s3LatencyEndpoint: string;
  /** The in-memory DynamoDB endpoint (testkit/aws/dynamodb-memory.ts) with the ledger's table. */
  latencyDynamodbEndpoint: string;
}

export type StandinRequest =
  | { id: number; op: 'countLatencyObjects'; bucket: string; prefix: string }
  | { id: number; op: 'forgetLatencyObjects'; bucket: string; prefix: string }
  | { id: number; op: 'countStoredEvents'; mailboxId: string }
  /** User + system CPU seconds of this process so far. */
  | { id: number; op: 'cpuSeconds' };

function argument(name: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const value = i < 0 ? undefined : process.argv[i + 1];
  if (value === undefined) throw new Error(`aws-standins-process: --${name} is required`);
  return value;
}

async function main(): Promise<void> {
  const bucket = argument('bucket');
  const dynamodb = await startDynalite();
  await dynamodb.createLedgerTable(argument('table'));
  const events = await startAwsJsonEndpoint();
  const latency = await startS3LatencyEndpoint({ buckets: [bucket] });
  const memoryDynamodb = await startDynamoDbMemory({ delayMs: DYNAMODB_LATENCY_MS });
  await memoryDynamodb.createLedgerTable(argument('table'));

  const answer = (request: StandinRequest): unknown => {
    switch (request.op) {
      case 'countLatencyObjects':
        return latency.keys(request.bucket, request.prefix).length;
      case 'forgetLatencyObjects':
        return latency.deletePrefix(request.bucket, request.prefix);
      case 'countStoredEvents':
        return events
          .putEventsBatches()
          .flat()
          .filter((e) => e.DetailType === 'Email Stored' && (JSON.parse(e.Detail ?? '{}') as { mailboxId?: string }).mailboxId === request.mailboxId).length;
      case 'cpuSeconds': {
        const { user, system } = process.cpuUsage();
        return (user + system) / 1e6;
      }
    }
  };
  process.on('message', (request: StandinRequest) => {
    try {
      process.send!({ id: request.id, result: answer(request) });
    } catch (error) {
      process.send!({ id: request.id, error: error instanceof Error ? error.message : String(error) });
    }
  });
  // The orchestrator went away (or closed the channel): stop everything.
  process.on('disconnect', () => {
    void Promise.all([dynamodb.stop(), memoryDynamodb.stop(), events.close(), latency.close()]).finally(() => process.exit(0));
  });
  const ready: StandinEndpoints = { dynamodbEndpoint: dynamodb.endpoint, eventsEndpoint: events.url, s3LatencyEndpoint: latency.url, latencyDynamodbEndpoint: memoryDynamodb.endpoint };
  process.send!({ ready });
}

main().catch((error: unknown) => {
  process.stderr.write(`aws-standins-process: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
