/**
 * The AWS adapters from the command line (`--s3-bucket`, `--ledger-table`, `--event-bus`,
 * `--secrets-manager`), loaded only when asked for, so the local path never pays for the SDK.
 * Credentials and region come from the SDK's usual sources (environment, profile, role);
 * `--aws-endpoint` points every client at another endpoint (a local stand-in, a VPC endpoint).
 * Every client gets popdrain's HTTP timeouts (lib/adapters/aws/http-timeouts.ts).
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { DynamoDbLedger } from '../lib/adapters/aws/dynamodb-ledger.js';
import { AWS_HTTP_TIMEOUTS, createS3Client, withHttpTimeouts, type AwsHttpTimeouts } from '../lib/adapters/aws/http-timeouts.js';
import { EventBridgeSink } from '../lib/adapters/aws/eventbridge-sink.js';
import { DEFAULT_S3_STORE_CONCURRENCY, S3MessageStore } from '../lib/adapters/aws/s3-store.js';
import { SecretsManagerCredentials } from '../lib/adapters/aws/secrets-manager-credentials.js';
import { DrainError } from '../lib/drain/errors.js';
import type { CredentialsProvider, DrainLogger, EventSink, MessageStore, UidlLedger } from '../lib/drain/ports.js';
import { UsageError } from './exit-codes.js';
import { withoutUndefined } from '../lib/drain/without-undefined.js';

export interface AwsOptions {
  region?: string;
  endpoint?: string;
  bucket?: string;
  prefix?: string;
  kmsKeyId?: string;
  table?: string;
  eventBus?: string;
  secretsManager?: boolean;
  /**
   * Warnings of the adapters (a rotated OAuth2 refresh token that could not be saved to Secrets
   * Manager, a spool file that could not be removed). @default silence
   */
  logger?: DrainLogger;
  /** @default AWS_HTTP_TIMEOUTS (tests shorten them) */
  timeouts?: AwsHttpTimeouts;
}

export interface AwsAdapters {
  store?: MessageStore;
  /** Messages in flight to `store` at once (the engine's storeConcurrency), set with it. */
  storeConcurrency?: number;
  ledger?: UidlLedger;
  events?: EventSink;
  credentials?: CredentialsProvider;
}

/** Builds an adapter; a bad option (CONFIG_INVALID) is the user's: one line, exit 2. */
function adapter<T>(flags: string, build: () => T): T {
  try {
    return build();
  } catch (error) {
    if (error instanceof DrainError && error.code === 'CONFIG_INVALID') throw new UsageError(`${flags}: ${error.message}`);
    throw error;
  }
}

export function createAwsAdapters(o: AwsOptions): AwsAdapters {
  const timeouts = o.timeouts ?? AWS_HTTP_TIMEOUTS;
  const base = {
    ...withoutUndefined({ region: o.region, endpoint: o.endpoint }),
  };
  const common = withHttpTimeouts(base, timeouts);
  const logger = o.logger === undefined ? {} : { logger: o.logger };
  const out: AwsAdapters = {};
  if (o.bucket !== undefined) {
    const client = createS3Client(
      {
        ...base,
        // Custom endpoints (stand-ins, gateways) rarely serve virtual-hosted buckets.
        forcePathStyle: o.endpoint !== undefined,
        // The store sends its own SHA-256 checksum; no aws-chunked framing on top.
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
      },
      timeouts,
    );
    const bucket = o.bucket;
    out.store = adapter(
      '--s3-bucket/--s3-prefix/--kms-key-id',
      () =>
        new S3MessageStore({
          client,
          bucket,
          ...withoutUndefined({ prefix: o.prefix, kmsKeyId: o.kmsKeyId }),
          ...logger,
        }),
    );
    out.storeConcurrency = DEFAULT_S3_STORE_CONCURRENCY;
  }
  const table = o.table;
  if (table !== undefined) out.ledger = adapter('--ledger-table', () => new DynamoDbLedger({ client: new DynamoDBClient(common), tableName: table, ...logger }));
  const eventBus = o.eventBus;
  if (eventBus !== undefined) {
    out.events = adapter('--event-bus', () => new EventBridgeSink({ client: new EventBridgeClient(common), eventBusName: eventBus }));
  }
  if (o.secretsManager === true) {
    out.credentials = adapter('--secrets-manager', () => new SecretsManagerCredentials({ client: new SecretsManagerClient(common), ...logger }));
  }
  return out;
}
