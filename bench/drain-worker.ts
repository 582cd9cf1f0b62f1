/**
 * One benchmark run of the whole drain, in its own process: drainMailbox over implicit TLS into
 * either the local adapters (a fresh output folder: files with fsync, the crash-safe ledger,
 * JSON lines) or the AWS adapters (S3MessageStore, DynamoDbLedger, EventBridgeSink) pointed at
 * loopback stand-ins the orchestrator runs. Prints one JSON line with the report's figures and
 * exits non-zero unless the run completed with no failure.
 *
 * Usage:
 *   node dist/bench/drain-worker.js --adapters local --out DIR --mailbox-id ID
 *        --host H --port P --user U --ca FILE [--servername N]
 *   node dist/bench/drain-worker.js --adapters aws --mailbox-id ID --host ... (as above)
 *        --region R --s3-endpoint URL --bucket B --dynamodb-endpoint URL --table T
 *        --events-endpoint URL --bus NAME [--spool-dir DIR]
 *
 * The POP3 password comes from POPDRAIN_BENCH_PASSWORD; with `--adapters aws` the (fake) AWS
 * credentials from POPDRAIN_BENCH_AWS_ACCESS_KEY_ID / POPDRAIN_BENCH_AWS_SECRET_ACCESS_KEY and
 * are given to each client explicitly, as are the region and the endpoints: nothing is left to
 * the SDK's default chains. The local path never loads the AWS SDK (the AWS adapters are
 * imported only when asked for; the build splits them into their own chunk).
 *
 * `transferSeconds`: from the start of fetching to the last message spooled into the store
 * (its bytes handed to the store's stream), read from the engine's progress callbacks.
 * `requests` (AWS only): the HTTP requests the SDK clients sent, by service (`s3`, `dynamodb`,
 * `events`), retries included, counted as they start (node:diagnostics_channel).
 */
import { subscribe } from 'node:diagnostics_channel';
import { readFileSync } from 'node:fs';
import type { ClientRequest } from 'node:http';
import { parseArgs } from 'node:util';
import { createLocalAdapters } from '../lib/adapters/local/index.js';
import { drainMailbox } from '../lib/drain/drain-mailbox.js';
import { DEFAULT_UIDL_RESET_GUARD, type MailboxConfig } from '../lib/drain/mailbox.js';
import type { CredentialsProvider, DrainPorts } from '../lib/drain/ports.js';

const { values } = parseArgs({
  options: {
    adapters: { type: 'string', default: 'local' },
    'mailbox-id': { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    user: { type: 'string' },
    ca: { type: 'string' },
    servername: { type: 'string', default: 'localhost' },
    out: { type: 'string' },
    region: { type: 'string', default: 'us-east-1' },
    's3-endpoint': { type: 'string' },
    bucket: { type: 'string' },
    'dynamodb-endpoint': { type: 'string' },
    table: { type: 'string' },
    'events-endpoint': { type: 'string' },
    bus: { type: 'string' },
    'spool-dir': { type: 'string' },
  },
});

function usage(problem: string): never {
  process.stderr.write(`drain-worker: ${problem}\n`);
  process.exit(2);
}

function required(name: keyof typeof values): string {
  const value = values[name];
  if (typeof value !== 'string' || value === '') usage(`--${name} is required`);
  return value;
}

const password = process.env.POPDRAIN_BENCH_PASSWORD;
if (password === undefined) usage('the password goes in POPDRAIN_BENCH_PASSWORD');

const mailbox: MailboxConfig = {
  id: required('mailbox-id'),
  host: values.host,
  port: Number(required('port')),
  tls: 'implicit',
  user: required('user'),
  secret: { type: 'env', variable: 'POPDRAIN_BENCH_PASSWORD' },
  mechanism: 'auto',
  tlsOptions: { servername: values.servername, ...(values.ca === undefined ? {} : { caPem: readFileSync(values.ca, 'utf8') }) },
  deletePolicy: { mode: 'keep' },
  uidlResetGuard: DEFAULT_UIDL_RESET_GUARD,
};

const credentials: CredentialsProvider = { get: async (m) => ({ user: m.user, password }) };

/** HTTP requests started, by service, for the AWS endpoints given on the command line. */
function countRequests(endpoints: Record<string, string>): Record<string, number> {
  const byHost = new Map(Object.entries(endpoints).map(([service, url]) => [new URL(url).host, service]));
  const counts: Record<string, number> = Object.fromEntries(Object.keys(endpoints).map((service) => [service, 0]));
  subscribe('http.client.request.start', (message) => {
    const host = (message as { request: ClientRequest }).request.getHeader('host');
    const service = typeof host === 'string' ? byHost.get(host) : undefined;
    if (service !== undefined) counts[service]! += 1;
  });
  return counts;
}

interface Built {
  ports: Omit<DrainPorts, 'credentials'>;
  /** Messages in flight to the store at once (the engine's storeConcurrency). */
  storeConcurrency: number;
  /** AWS only: requests started so far, by service. */
  requests?: Record<string, number>;
  close(): Promise<void>;
}

/**
 * Messages open in the store at once. The local store commits small messages in batches in a
 * worker thread (create, write, fdatasync, rename, one folder fsync per batch): several
 * batches in flight overlap with fetching, so the local path uses 256 as `popdrain drain
 * --out` does (cli/drain-command.ts); the AWS path uses the S3 store's documented default
 * (DEFAULT_S3_STORE_CONCURRENCY), as the CLI does.
 */
const LOCAL_STORE_CONCURRENCY = 256;

async function localPorts(): Promise<Built> {
  const adapters = createLocalAdapters({ out: required('out') });
  return {
    ports: { store: adapters.store, ledger: adapters.ledger, events: adapters.events },
    storeConcurrency: LOCAL_STORE_CONCURRENCY,
    close: () => adapters.close(),
  };
}

async function awsPorts(): Promise<Built> {
  const accessKeyId = process.env.POPDRAIN_BENCH_AWS_ACCESS_KEY_ID;
  const secretAccessKey = process.env.POPDRAIN_BENCH_AWS_SECRET_ACCESS_KEY;
  if (accessKeyId === undefined || secretAccessKey === undefined) {
    usage('the fake AWS credentials go in POPDRAIN_BENCH_AWS_ACCESS_KEY_ID and POPDRAIN_BENCH_AWS_SECRET_ACCESS_KEY');
  }
  const awsCredentials = { accessKeyId, secretAccessKey };
  const region = values.region;
  const [{ DynamoDBClient }, { EventBridgeClient }, { DEFAULT_S3_STORE_CONCURRENCY, S3MessageStore }, { DynamoDbLedger }, { EventBridgeSink }, { createS3Client, withHttpTimeouts }] =
    await Promise.all([
      import('@aws-sdk/client-dynamodb'),
      import('@aws-sdk/client-eventbridge'),
      import('../lib/adapters/aws/s3-store.js'),
      import('../lib/adapters/aws/dynamodb-ledger.js'),
      import('../lib/adapters/aws/eventbridge-sink.js'),
      import('../lib/adapters/aws/http-timeouts.js'),
    ]);
  // Clients configured as the CLI and the Lambdas build them (timeouts, cached middleware).
  const s3 = createS3Client({
    region,
    endpoint: required('s3-endpoint'),
    credentials: awsCredentials,
    forcePathStyle: true,
    // s3rver stores a streamed body with its aws-chunked framing unless checksums are only
    // sent when required (docs/testing.md).
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const dynamodb = new DynamoDBClient(withHttpTimeouts({ region, endpoint: required('dynamodb-endpoint'), credentials: awsCredentials }));
  const eventbridge = new EventBridgeClient(withHttpTimeouts({ region, endpoint: required('events-endpoint'), credentials: awsCredentials }));
  const requests = countRequests({ s3: required('s3-endpoint'), dynamodb: required('dynamodb-endpoint'), events: required('events-endpoint') });
  return {
    requests,
    ports: {
      store: new S3MessageStore({
        client: s3,
        bucket: required('bucket'),
        ...(values['spool-dir'] === undefined ? {} : { spoolDir: values['spool-dir'] }),
      }),
      ledger: new DynamoDbLedger({ client: dynamodb, tableName: required('table') }),
      events: new EventBridgeSink({ client: eventbridge, eventBusName: required('bus') }),
    },
    storeConcurrency: DEFAULT_S3_STORE_CONCURRENCY,
    close: async () => {
      s3.destroy();
      dynamodb.destroy();
      eventbridge.destroy();
    },
  };
}

const built = values.adapters === 'local' ? await localPorts() : values.adapters === 'aws' ? await awsPorts() : usage('--adapters is local or aws');

let fetchStart: bigint | undefined;
let fetchEnd: bigint | undefined;
const report = await drainMailbox(
  mailbox,
  { ...built.ports, credentials },
  {},
  {
    storeConcurrency: built.storeConcurrency,
    onProgress: (p) => {
      if (p.phase === 'fetching') {
        fetchStart ??= process.hrtime.bigint();
        if (p.fetched === p.toFetch) fetchEnd ??= process.hrtime.bigint();
      }
    },
  },
);
await built.close();

const transferSeconds = fetchStart !== undefined && fetchEnd !== undefined ? Number(fetchEnd - fetchStart) / 1e9 : undefined;
process.stdout.write(
  `${JSON.stringify({
    messages: report.fetched,
    bytes: report.fetchedBytes,
    announced: report.announced,
    stopReason: report.stopReason,
    ok: report.ok,
    durationMs: report.durationMs,
    ...(transferSeconds === undefined ? {} : { transferSeconds }),
    ...(built.requests === undefined ? {} : { requests: built.requests }),
  })}\n`,
);
if (!report.ok || report.stopReason !== 'complete') {
  process.stderr.write(`drain-worker: the run did not complete cleanly: ${JSON.stringify({ error: report.error, failures: report.failures.slice(0, 5) })}\n`);
  process.exit(1);
}
