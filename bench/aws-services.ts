/**
 * The loopback AWS stand-ins of `npm run bench`, started once by the orchestrator and kept
 * across runs, never in the measured process: s3rver (in a child process), and dynalite, the
 * recording EventBridge endpoint and the in-memory S3 endpoint that answers after 20 ms
 * (testkit/aws/s3-latency-endpoint.ts) together in another child (bench/aws-standins-process.ts),
 * so their CPU is neither the measured drain's nor the orchestrator's (which runs the latency
 * proxy in front of Dovecot), and can be reported per run (`standinsCpuSeconds`).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { ListObjectsCommand } from '@aws-sdk/client-s3';
import { startS3rver } from '../testkit/aws/standins.js';
import type { StandinEndpoints, StandinRequest } from './aws-standins-process.js';
import type { BenchAwsServices } from './tools.js';

const AWS_REGION = 'us-east-1';
/** s3rver accepts only its own pair; dynalite and the JSON endpoint accept any. Fake either way. */
const AWS_FAKE_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
const BENCH_BUCKET = 'popdrain-bench';
const BENCH_TABLE = 'popdrain-bench-ledger';
const BENCH_BUS = 'popdrain-bench-bus';
/** The S3 store's default key prefix. */
const S3_PREFIX = 'messages/';
const STANDINS_READY_TIMEOUT_MS = 30_000;

/** A request without its id (distributed over the union). */
type Unnumbered<R> = R extends unknown ? Omit<R, 'id'> : never;
type Ask = <T>(request: Unnumbered<StandinRequest>) => Promise<T>;

/**
 * The built child's entry, dist/bench/aws-standins-process.js, from this code's place in dist/:
 * bundled into dist/bench/run.js or split into dist/chunks/, `../bench/` names that folder.
 */
const STANDINS_ENTRY = new URL('../bench/aws-standins-process.js', import.meta.url);

/** Forks the stand-ins' process and waits for its endpoints. */
async function startStandinsProcess(): Promise<{ endpoints: StandinEndpoints; ask: Ask; stop(): Promise<void> }> {
  const child: ChildProcess = fork(STANDINS_ENTRY, ['--bucket', BENCH_BUCKET, '--table', BENCH_TABLE], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    env: { PATH: process.env.PATH, HOME: process.env.HOME, AWS_EC2_METADATA_DISABLED: 'true' },
  });
  const waiting = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  let nextId = 1;
  const endpoints = await new Promise<StandinEndpoints>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the AWS stand-ins process did not start in time')), STANDINS_READY_TIMEOUT_MS);
    child.once('exit', (code) => reject(new Error(`the AWS stand-ins process exited (${code}) before it was ready`)));
    child.on('message', (message: { ready?: StandinEndpoints; id?: number; result?: unknown; error?: string }) => {
      if (message.ready !== undefined) {
        clearTimeout(timer);
        resolve(message.ready);
        return;
      }
      const pending = waiting.get(message.id ?? -1);
      if (pending === undefined) return;
      waiting.delete(message.id!);
      if (message.error !== undefined) pending.reject(new Error(message.error));
      else pending.resolve(message.result);
    });
  });
  const ask: Ask = (request) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      waiting.set(id, { resolve: resolve as (value: unknown) => void, reject });
      child.send({ ...request, id });
    });
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.disconnect();
    await exited;
  };
  return { endpoints, ask, stop };
}

/** The AWS stand-ins on loopback, started once for every run that needs them. */
export async function startAwsServices(): Promise<{ services: BenchAwsServices; stop(): Promise<void> }> {
  const s3 = await startS3rver();
  const standins = await startStandinsProcess().catch(async (error: unknown) => {
    await s3.stop();
    throw error;
  });
  const stop = async (): Promise<void> => {
    await Promise.all([s3.stop(), standins.stop()]);
  };
  try {
    await s3.createBucket(BENCH_BUCKET);
  } catch (error) {
    await stop();
    throw error;
  }
  const lister = s3.client();
  const { ask } = standins;
  const services: BenchAwsServices = {
    region: AWS_REGION,
    ...AWS_FAKE_CREDENTIALS,
    s3Endpoint: s3.endpoint,
    bucket: BENCH_BUCKET,
    dynamodbEndpoint: standins.endpoints.dynamodbEndpoint,
    table: BENCH_TABLE,
    eventsEndpoint: standins.endpoints.eventsEndpoint,
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
    s3LatencyEndpoint: standins.endpoints.s3LatencyEndpoint,
    latencyBucket: BENCH_BUCKET,
    latencyDynamodbEndpoint: standins.endpoints.latencyDynamodbEndpoint,
    countLatencyObjects: (mailboxId) => ask({ op: 'countLatencyObjects', bucket: BENCH_BUCKET, prefix: `${S3_PREFIX}${mailboxId}/` }),
    forgetLatencyObjects: async (mailboxId) => {
      await ask({ op: 'forgetLatencyObjects', bucket: BENCH_BUCKET, prefix: `${S3_PREFIX}${mailboxId}/` });
    },
    countStoredEvents: (mailboxId) => ask({ op: 'countStoredEvents', mailboxId }),
    standinsCpuSeconds: () => ask({ op: 'cpuSeconds' }),
  };
  return { services, stop };
}
