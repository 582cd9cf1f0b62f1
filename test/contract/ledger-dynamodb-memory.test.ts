// The UidlLedger contract against the DynamoDB ledger on the bench's in-memory DynamoDB endpoint
// (testkit/aws/dynamodb-memory.ts), with the real DynamoDBClient: the bench measures the drain
// into S3 with its ledger there, so the ledger must behave there as it does on dynalite.
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDbLedger } from '../../lib/adapters/aws/dynamodb-ledger.js';
import { startDynamoDbMemory, type DynamoDbMemory } from '../../testkit/aws/dynamodb-memory.js';
import { describeLedgerContract } from './ledger-contract.js';

const TABLE = 'popdrain-ledger-contract';
let db: DynamoDbMemory | undefined;
const clients: DynamoDBClient[] = [];

describeLedgerContract('DynamoDbLedger on the in-memory endpoint', {
  setup: async () => {
    db = await startDynamoDbMemory();
    await db.createLedgerTable(TABLE);
  },
  open: () => {
    const client = db!.client();
    clients.push(client);
    return new DynamoDbLedger({ client, tableName: TABLE });
  },
  teardown: async () => {
    for (const client of clients.splice(0)) client.destroy();
    await db?.stop();
  },
});
