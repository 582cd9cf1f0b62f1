// The UidlLedger contract against the DynamoDB ledger on dynalite and on the in-memory endpoint,
// with the real DynamoDBClient (every open() is another DynamoDbLedger with its own client on the
// same table).
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoDbLedger } from '../../lib/adapters/aws/dynamodb-ledger.js';
import { startDynamoDbMemory } from '../../testkit/aws/dynamodb-memory.js';
import { startDynalite, type DynamoDbStandin } from '../../testkit/aws/standins.js';
import { storedEntry } from '../../testkit/fixtures/ledger-fixtures.js';
import { describeLedgerContract } from './ledger-contract.js';

const TABLE = 'popdrain-ledger-contract';

// On dynalite, and on the bench's in-memory endpoint (testkit/aws/dynamodb-memory.ts): the bench
// measures the drain into S3 with its ledger there, so it must behave there as on dynalite.
const standins: Array<[string, () => Promise<Pick<DynamoDbStandin, 'client' | 'createLedgerTable' | 'stop'>>]> = [
  ['DynamoDbLedger', startDynalite],
  ['DynamoDbLedger on the in-memory endpoint', startDynamoDbMemory],
];
for (const [name, start] of standins) {
  let db: Awaited<ReturnType<typeof start>> | undefined;
  const clients: DynamoDBClient[] = [];
  describeLedgerContract(name, {
    setup: async () => {
      db = await start();
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
}

// The done set is the DynamoDB ledger's own: what a keep run reads once it is written.
describe('DynamoDbLedger done set', () => {
  let standin: DynamoDbStandin;
  beforeAll(async () => {
    standin = await startDynalite();
    await standin.createLedgerTable(TABLE);
  });
  afterAll(() => standin.stop());

  /** A ledger whose client counts the item keys each BatchGetItem asks for. */
  const counted = (doneSet: boolean): { ledger: DynamoDbLedger; keys: string[] } => {
    const client = standin.client();
    const keys: string[] = [];
    client.middlewareStack.add(
      (next) => async (args) => {
        const input = args.input as { RequestItems?: Record<string, { Keys?: Array<{ sk?: { S?: string } }> }> };
        for (const request of Object.values(input.RequestItems ?? {})) for (const key of request.Keys ?? []) keys.push(key.sk?.S ?? '');
        return next(args);
      },
      { step: 'initialize' },
    );
    return { ledger: new DynamoDbLedger({ client, tableName: TABLE, doneSet }), keys };
  };

  it('a keep run reads the 16 done-set items and only the new UIDLs; without it, every UIDL', async () => {
    const mbx = 'done-set-keep';
    const kept = Array.from({ length: 200 }, (_, i) => `k${i}`);
    const { ledger } = counted(true);
    await ledger.record(kept.map((u) => storedEntry(mbx, u)));
    await ledger.markAnnounced(mbx, kept, 1_750_000_000_000);
    const options = { deletePolicy: { mode: 'keep' } as const, now: 1_750_000_000_000 };
    await counted(true).ledger.lookup(mbx, kept, options); // finds them one by one and writes the set
    const after = counted(true);
    const found = await after.ledger.lookup(mbx, [...kept, 'new-1', 'new-2'], options);
    expect(found.size).toBe(200);
    expect(after.keys.filter((sk) => sk.startsWith('m#')).sort()).toEqual(['m#new-1', 'm#new-2']);
    expect(after.keys.filter((sk) => sk.startsWith('done#'))).toHaveLength(16);
    const before = counted(false);
    expect((await before.ledger.lookup(mbx, [...kept, 'new-1', 'new-2'], options)).size).toBe(200);
    expect(before.keys).toHaveLength(202);
  });

  it('a delete run reads every announced UIDL whole: the done set never decides a deletion', async () => {
    const mbx = 'done-set-delete';
    const kept = Array.from({ length: 100 }, (_, i) => `d${i}`);
    const { ledger } = counted(true);
    await ledger.record(kept.map((u) => storedEntry(mbx, u)));
    await ledger.markAnnounced(mbx, kept, 1_750_000_000_000);
    await ledger.lookup(mbx, kept, { deletePolicy: { mode: 'keep' }, now: 1_750_000_000_000 });
    const run = counted(true);
    const found = await run.ledger.lookup(mbx, kept, { deletePolicy: { mode: 'delete' }, now: 1_750_000_000_000 });
    expect(run.keys.filter((sk) => sk.startsWith('m#'))).toHaveLength(100);
    expect(found.get('d7')?.sha256).toBe(storedEntry(mbx, 'd7').sha256);
  });
});
