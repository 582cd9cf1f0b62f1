// The UidlLedger contract against the DynamoDB ledger on dynalite with the real DynamoDBClient
// (every open() is another DynamoDbLedger with its own client on the same table).
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDbLedger } from '../../lib/adapters/aws/dynamodb-ledger.js';
import { startDynalite, type DynamoDbStandin } from '../../testkit/aws/standins.js';
import { describeLedgerContract } from './ledger-contract.js';

const TABLE = 'popdrain-ledger-contract';
let db: DynamoDbStandin | undefined;
const clients: DynamoDBClient[] = [];

describeLedgerContract('DynamoDbLedger', {
  setup: async () => {
    db = await startDynalite();
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
