/**
 * The loopback AWS stand-ins of `npm run bench`, started once by the orchestrator and kept
 * across runs, never in the measured process: s3rver (in a child process), dynalite, the
 * recording EventBridge endpoint, and the in-memory S3 endpoint that answers after 20 ms
 * (testkit/aws/s3-latency-endpoint.ts).
 */
import { ListObjectsCommand } from '@aws-sdk/client-s3';
import { startAwsJsonEndpoint } from '../testkit/aws/json-endpoint.js';
import { startDynalite, startS3rver } from '../testkit/aws/standins.js';
import { startS3LatencyEndpoint } from '../testkit/aws/s3-latency-endpoint.js';
import type { BenchAwsServices } from './tools.js';

const AWS_REGION = 'us-east-1';
/** s3rver accepts only its own pair; dynalite and the JSON endpoint accept any. Fake either way. */
const AWS_FAKE_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
const BENCH_BUCKET = 'popdrain-bench';
const BENCH_TABLE = 'popdrain-bench-ledger';
const BENCH_BUS = 'popdrain-bench-bus';
/** The S3 store's default key prefix. */
const S3_PREFIX = 'messages/';

/** The AWS stand-ins on loopback, started once for every run that needs them. */
export async function startAwsServices(): Promise<{ services: BenchAwsServices; stop(): Promise<void> }> {
  const s3 = await startS3rver();
  const dynamodb = await startDynalite().catch(async (error: unknown) => {
    await s3.stop();
    throw error;
  });
  const events = await startAwsJsonEndpoint().catch(async (error: unknown) => {
    await Promise.all([s3.stop(), dynamodb.stop()]);
    throw error;
  });
  const latency = await startS3LatencyEndpoint({ buckets: [BENCH_BUCKET] }).catch(async (error: unknown) => {
    await Promise.all([s3.stop(), dynamodb.stop(), events.close()]);
    throw error;
  });
  const stop = async (): Promise<void> => {
    await Promise.all([s3.stop(), dynamodb.stop(), events.close(), latency.close()]);
  };
  try {
    await s3.createBucket(BENCH_BUCKET);
    await dynamodb.createLedgerTable(BENCH_TABLE);
  } catch (error) {
    await stop();
    throw error;
  }
  const lister = s3.client();
  const services: BenchAwsServices = {
    region: AWS_REGION,
    ...AWS_FAKE_CREDENTIALS,
    s3Endpoint: s3.endpoint,
    bucket: BENCH_BUCKET,
    dynamodbEndpoint: dynamodb.endpoint,
    table: BENCH_TABLE,
    eventsEndpoint: events.url,
    bus: BENCH_BUS,
    countObjects: async (mailboxId) => {
      // ListObjects (v1) with the last key as the marker: s3rver 3.7 answers ListObjectsV2 with
      // an InternalError once a listing needs a continuation token.
      let count = 0;
      let marker: string | undefined;
      for (;;) {
        const page = await lister.send(new ListObjectsCommand({ Bucket: BENCH_BUCKET, Prefix: `${S3_PREFIX}${mailboxId}/`, Marker: marker }));
        const contents = page.Contents ?? [];
        count += contents.length;
        if (page.IsTruncated !== true || contents.length === 0) return count;
        marker = contents.at(-1)!.Key;
      }
    },
    s3LatencyEndpoint: latency.url,
    latencyBucket: BENCH_BUCKET,
    countLatencyObjects: (mailboxId) => latency.keys(BENCH_BUCKET, `${S3_PREFIX}${mailboxId}/`).length,
    forgetLatencyObjects: (mailboxId) => {
      latency.deletePrefix(BENCH_BUCKET, `${S3_PREFIX}${mailboxId}/`);
    },
    countStoredEvents: (mailboxId) =>
      events
        .putEventsBatches()
        .flat()
        .filter((e) => e.DetailType === 'Email Stored' && (JSON.parse(e.Detail ?? '{}') as { mailboxId?: string }).mailboxId === mailboxId)
        .length,
  };
  return { services, stop };
}
