/**
 * The loopback endpoints of `npm run bench:sdk-cost`, in a process of their own (forked with an
 * IPC channel) so that their CPU is not the measured client's: the in-memory S3 endpoint
 * (testkit/aws/s3-latency-endpoint.ts), the recording EventBridge endpoint, and a DynamoDB
 * endpoint that answers every request `{}` after the same delay. The last one evaluates nothing
 * (no item is kept, no condition checked): it exists so the client's cost per request can be
 * measured without dynalite, which serves ~60 writes a second.
 *
 * Sends `{ ready: { s3, dynamodb, events } }` once; exits when the channel closes.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startAwsJsonEndpoint } from '../testkit/aws/json-endpoint.js';
import { startS3LatencyEndpoint } from '../testkit/aws/s3-latency-endpoint.js';

export interface SdkCostEndpoints {
  s3: string;
  dynamodb: string;
  events: string;
}

async function main(): Promise<void> {
  const delayMs = Number(process.argv[process.argv.indexOf('--delay-ms') + 1] ?? 20);
  const s3 = await startS3LatencyEndpoint({ buckets: ['sdk-cost'], delayMs });
  const events = await startAwsJsonEndpoint({ delayMs });
  const dynamodb = createServer((request, response) => {
    request.resume();
    request.on('end', () =>
      setTimeout(() => {
        response.writeHead(200, { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': 'sdk-cost' });
        response.end('{}');
      }, delayMs),
    );
  });
  await new Promise<void>((resolve) => dynamodb.listen(0, '127.0.0.1', resolve));
  const ready: SdkCostEndpoints = {
    s3: s3.url,
    dynamodb: `http://127.0.0.1:${(dynamodb.address() as AddressInfo).port}`,
    events: events.url,
  };
  process.on('message', (message: { op?: string }) => {
    if (message.op === 'forget') s3.deletePrefix('sdk-cost', '');
    process.send!({ done: true });
  });
  process.on('disconnect', () => {
    dynamodb.close();
    void Promise.all([s3.close(), events.close()]).finally(() => process.exit(0));
  });
  process.send!({ ready });
}

main().catch((error: unknown) => {
  process.stderr.write(`sdk-cost-server: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
