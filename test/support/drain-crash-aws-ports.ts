// The AWS ports of the drain crash test's child (drain-crash-child.ts): real SDK clients with
// explicit fake credentials, pointed at the loopback stand-ins the parent runs.
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDbLedger } from '../../lib/adapters/aws/dynamodb-ledger.js';
import { EventBridgeSink } from '../../lib/adapters/aws/eventbridge-sink.js';
import { S3MessageStore } from '../../lib/adapters/aws/s3-store.js';
import type { AwsChildConfig, ChildPorts } from './drain-crash-shared.js';

const REGION = 'us-east-1';
/** The SDK clients never look for credentials: these fake ones are explicit. */
const FAKE_CREDENTIALS = { accessKeyId: 'crash-test-fake-key', secretAccessKey: 'crash-test-fake-secret' };
const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export function awsPorts(aws: AwsChildConfig): ChildPorts {
  const s3 = new S3Client({
    region: REGION,
    endpoint: aws.s3Endpoint,
    forcePathStyle: true,
    credentials: S3RVER_CREDENTIALS,
    // Without these, streamed bodies reach s3rver with their aws-chunked framing inside.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const dynamo = new DynamoDBClient({ region: REGION, endpoint: aws.dynamoEndpoint, credentials: FAKE_CREDENTIALS });
  const eventBridge = new EventBridgeClient({ region: REGION, endpoint: aws.eventsEndpoint, credentials: FAKE_CREDENTIALS });
  return {
    ports: {
      store: new S3MessageStore({ client: s3, bucket: aws.bucket, spoolDir: aws.spoolDir }),
      ledger: new DynamoDbLedger({ client: dynamo, tableName: aws.table }),
      events: new EventBridgeSink({ client: eventBridge, eventBusName: aws.bus }),
    },
    close: async () => {
      s3.destroy();
      dynamo.destroy();
      eventBridge.destroy();
    },
  };
}
