/**
 * The AWS adapters from the command line (`--s3-bucket`, `--ledger-table`, `--event-bus`,
 * `--secrets-manager`), loaded only when asked for, so the local path never pays for the SDK.
 * Credentials and region come from the SDK's usual sources (environment, profile, role);
 * `--aws-endpoint` points every client at another endpoint (a local stand-in, a VPC endpoint).
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { DynamoDbLedger } from '../lib/adapters/aws/dynamodb-ledger.js';
import { EventBridgeSink } from '../lib/adapters/aws/eventbridge-sink.js';
import { S3MessageStore } from '../lib/adapters/aws/s3-store.js';
import { SecretsManagerCredentials } from '../lib/adapters/aws/secrets-manager-credentials.js';
import type { CredentialsProvider, EventSink, MessageStore, UidlLedger } from '../lib/drain/ports.js';

export interface AwsOptions {
  region?: string;
  endpoint?: string;
  bucket?: string;
  prefix?: string;
  kmsKeyId?: string;
  table?: string;
  eventBus?: string;
  secretsManager?: boolean;
}

export interface AwsAdapters {
  store?: MessageStore;
  ledger?: UidlLedger;
  events?: EventSink;
  credentials?: CredentialsProvider;
}

export function createAwsAdapters(o: AwsOptions): AwsAdapters {
  const common = {
    ...(o.region === undefined ? {} : { region: o.region }),
    ...(o.endpoint === undefined ? {} : { endpoint: o.endpoint }),
  };
  const out: AwsAdapters = {};
  if (o.bucket !== undefined) {
    const client = new S3Client({
      ...common,
      // Custom endpoints (stand-ins, gateways) rarely serve virtual-hosted buckets.
      forcePathStyle: o.endpoint !== undefined,
      // The store sends its own SHA-256 checksum; no aws-chunked framing on top.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    out.store = new S3MessageStore({
      client,
      bucket: o.bucket,
      ...(o.prefix === undefined ? {} : { prefix: o.prefix }),
      ...(o.kmsKeyId === undefined ? {} : { kmsKeyId: o.kmsKeyId }),
    });
  }
  if (o.table !== undefined) out.ledger = new DynamoDbLedger({ client: new DynamoDBClient(common), tableName: o.table });
  if (o.eventBus !== undefined) out.events = new EventBridgeSink({ client: new EventBridgeClient(common), eventBusName: o.eventBus });
  if (o.secretsManager === true) out.credentials = new SecretsManagerCredentials({ client: new SecretsManagerClient(common) });
  return out;
}
