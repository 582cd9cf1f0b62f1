/**
 * The mailbox registry in the ledger table (lib/adapters/aws/dynamodb-registry.ts) against
 * dynalite with the real DynamoDBClient: validated writes, pause/resume, removal that leaves the
 * mailbox's ledger items alone, a listing that pages and reports entries that no longer validate.
 */
import { GetItemCommand, PutItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoDbMailboxRegistry, REGISTRY_PARTITION } from '../../lib/adapters/aws/dynamodb-registry.js';
import { DynamoDbLedger } from '../../lib/adapters/aws/dynamodb-ledger.js';
import { ConfigError } from '../../lib/drain/config.js';
import { startDynalite, type DynamoDbStandin } from '../../testkit/aws/standins.js';
import { storedEntry } from '../../testkit/fixtures/ledger-fixtures.js';

let dynamo: DynamoDbStandin;
let client: DynamoDBClient;
let tables = 0;

async function freshRegistry(): Promise<{ registry: DynamoDbMailboxRegistry; table: string }> {
  const table = `registry-${++tables}`;
  await dynamo.createLedgerTable(table);
  return { registry: new DynamoDbMailboxRegistry(client, table, () => 1_000), table };
}

const entry = (id: string, extra: Record<string, unknown> = {}) => ({ id, host: 'pop.example.com', user: `${id}@example.com`, auth: { secret: `popdrain/${id}` }, ...extra });

beforeAll(async () => {
  dynamo = await startDynalite();
  client = dynamo.client();
});
afterAll(async () => {
  await dynamo?.stop();
});

describe('DynamoDbMailboxRegistry', () => {
  it('adds, reads, changes, pauses and resumes an entry', async () => {
    const { registry } = await freshRegistry();
    expect(await registry.get('alpha')).toBeUndefined();
    expect(await registry.put(entry('alpha'))).toBe(true);
    expect(await registry.get('alpha')).toMatchObject({ paused: false, mailbox: { id: 'alpha', everyMinutes: 5 } });
    expect(await registry.setPaused('alpha', true)).toBe(true);
    // a change keeps the paused flag unless it says otherwise
    await registry.put(entry('alpha', { schedule: { everyMinutes: 30 } }));
    expect(await registry.get('alpha')).toMatchObject({ paused: true, mailbox: { everyMinutes: 30 } });
    expect(await registry.setPaused('alpha', false)).toBe(true);
    expect((await registry.get('alpha'))?.paused).toBe(false);
    expect(await registry.setPaused('nobody', true)).toBe(false);
  });

  it('ifAbsent (seeding) never overwrites an entry an operator changed', async () => {
    const { registry } = await freshRegistry();
    await registry.put(entry('alpha', { schedule: { everyMinutes: 60 } }), { paused: true });
    expect(await registry.put(entry('alpha'), { ifAbsent: true })).toBe(false);
    expect(await registry.put(entry('beta'), { ifAbsent: true })).toBe(true);
    expect(await registry.get('alpha')).toMatchObject({ paused: true, mailbox: { everyMinutes: 60 } });
  });

  it('refuses an entry with a local-only field before writing anything', async () => {
    const { registry } = await freshRegistry();
    await expect(registry.put(entry('alpha', { auth: { passwordFile: '/etc/passwd' } }))).rejects.toBeInstanceOf(ConfigError);
    await expect(registry.put(entry('alpha', { passwordCommand: 'sh -c id' }))).rejects.toThrow(/passwordCommand: not allowed in the registry/);
    expect(await registry.get('alpha')).toBeUndefined();
  });

  it('removing an entry keeps the mailbox ledger', async () => {
    const { registry, table } = await freshRegistry();
    const ledger = new DynamoDbLedger({ client, tableName: table });
    await registry.put(entry('alpha'));
    await ledger.record([storedEntry('alpha', 'uidl-1')]);
    expect(await registry.remove('alpha')).toBe(true);
    expect(await registry.remove('alpha')).toBe(false);
    expect(await registry.get('alpha')).toBeUndefined();
    expect((await ledger.lookup('alpha', ['uidl-1'])).size).toBe(1);
  });

  it('lists every entry over several pages and reports one that no longer validates', async () => {
    const { registry, table } = await freshRegistry();
    const big = 'x'.repeat(20_000); // ~20 KB entries: 60 of them need more than one 1 MB page
    for (let i = 0; i < 60; i++) await registry.put(entry(`m${String(i).padStart(3, '0')}`, { tlsOptions: { caPem: big } }));
    // written around the adapter, as a careless raw table edit would
    await client.send(
      new PutItemCommand({
        TableName: table,
        Item: { pk: { S: REGISTRY_PARTITION }, sk: { S: 'evil' }, mailbox: { S: JSON.stringify(entry('evil', { auth: { passwordEnv: 'AWS_SECRET_ACCESS_KEY' } })) } },
      }),
    );
    let queries = 0;
    const counted = dynamo.client();
    counted.middlewareStack.add((next, context) => async (args) => {
      if (context.commandName === 'QueryCommand') queries++;
      return next(args);
    }, { step: 'initialize', name: 'countQueries' });
    const listing = await new DynamoDbMailboxRegistry(counted, table).list();
    expect(queries).toBeGreaterThan(1);
    expect(listing.entries.map((e) => e.mailbox.id)).toEqual(Array.from({ length: 60 }, (_, i) => `m${String(i).padStart(3, '0')}`));
    expect(listing.problems).toHaveLength(1);
    expect(listing.problems[0]).toMatch(/"evil".*auth\.passwordEnv: not allowed/);
    await expect(registry.get('evil')).rejects.toBeInstanceOf(ConfigError);
    const raw = await client.send(new GetItemCommand({ TableName: table, Key: { pk: { S: REGISTRY_PARTITION }, sk: { S: 'm000' } } }));
    expect(raw.Item?.['updatedAt']?.N).toBe('1000');
  });
});
