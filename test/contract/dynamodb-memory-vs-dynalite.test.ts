// The bench's in-memory DynamoDB endpoint (testkit/aws/dynamodb-memory.ts) against dynalite, the
// stand-in the tests trust: the same commands through the real DynamoDBClient to both, the same
// answers (items, returned attributes, error names, query pages). The scenarios cover every
// expression popdrain's adapters send and the operators around them.
import {
  BatchGetItemCommand,
  DeleteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDynamoDbMemory, type DynamoDbMemory } from '../../testkit/aws/dynamodb-memory.js';
import { startDynalite, type DynamoDbStandin } from '../../testkit/aws/standins.js';

type Step = (client: DynamoDBClient, table: string) => Promise<unknown>;
const S = (s: string) => ({ S: s });
const N = (n: number) => ({ N: String(n) });
const key = (sk: string) => ({ pk: S('p'), sk: S(sk) });
const put = (sk: string, extra: Record<string, unknown> = {}, condition?: { ConditionExpression: string; ExpressionAttributeNames?: Record<string, string>; ExpressionAttributeValues?: Record<string, unknown> }): Step =>
  (c, t) => c.send(new PutItemCommand({ TableName: t, Item: { ...key(sk), ...extra } as never, ...(condition as object) }));
const update = (sk: string, input: Record<string, unknown>): Step => (c, t) => c.send(new UpdateItemCommand({ TableName: t, Key: key(sk), ReturnValues: 'ALL_NEW', ...input } as never));
const get = (sk: string): Step => (c, t) => c.send(new GetItemCommand({ TableName: t, Key: key(sk), ConsistentRead: true }));

const scenarios: Record<string, Step[]> = {
  'record: attribute_not_exists on a new and an existing item': [
    put('a', { status: S('stored') }, { ConditionExpression: 'attribute_not_exists(#pk)', ExpressionAttributeNames: { '#pk': 'pk' } }),
    put('a', { status: S('other') }, { ConditionExpression: 'attribute_not_exists(#pk)', ExpressionAttributeNames: { '#pk': 'pk' } }),
    get('a'),
  ],
  'mark announced: IN, if_not_exists, attribute_exists': [
    put('a', { status: S('stored') }),
    ...[1, 2].map((at) =>
      update('a', {
        UpdateExpression: 'SET #status = :announced, #announcedAt = if_not_exists(#announcedAt, :at)',
        ConditionExpression: 'attribute_exists(#pk) AND #status IN (:stored, :announced)',
        ExpressionAttributeNames: { '#pk': 'pk', '#status': 'status', '#announcedAt': 'announcedAt' },
        ExpressionAttributeValues: { ':announced': S('announced'), ':stored': S('stored'), ':at': N(at) },
      }),
    ),
    update('missing', { UpdateExpression: 'SET #a = :t', ConditionExpression: 'attribute_exists(#pk)', ExpressionAttributeNames: { '#pk': 'pk', '#a': 'a' }, ExpressionAttributeValues: { ':t': N(1) } }),
    update('a', { UpdateExpression: 'SET #s = :x', ConditionExpression: '#s IN (:y, :z)', ExpressionAttributeNames: { '#s': 'status' }, ExpressionAttributeValues: { ':x': S('x'), ':y': S('y'), ':z': S('z') } }),
  ],
  'lease: OR of not-exists, <= and =': [
    ...[
      { owner: 'one', now: 10, until: 20 },
      { owner: 'two', now: 15, until: 30 },
      { owner: 'two', now: 20, until: 40 },
      { owner: 'one', now: 21, until: 50 },
    ].map(({ owner, now, until }) =>
      put('lease', { owner: S(owner), leaseExpiresAt: N(until) }, {
        ConditionExpression: 'attribute_not_exists(#pk) OR #leaseExpiresAt <= :now OR #owner = :owner',
        ExpressionAttributeNames: { '#pk': 'pk', '#leaseExpiresAt': 'leaseExpiresAt', '#owner': 'owner' },
        ExpressionAttributeValues: { ':now': N(now), ':owner': S(owner) },
      }),
    ),
    get('lease'),
  ],
  'marker: nested map paths, REMOVE': [
    update('m', { UpdateExpression: 'SET #m = :m', ConditionExpression: 'attribute_not_exists(#m) OR #m.#t = :t OR #m.#e <= :now', ExpressionAttributeNames: { '#m': 'marker', '#t': 'token', '#e': 'expires' }, ExpressionAttributeValues: { ':m': { M: { token: S('t1'), expires: N(5) } }, ':t': S('t9'), ':now': N(1) } }),
    update('m', { UpdateExpression: 'SET #m = :m', ConditionExpression: 'attribute_not_exists(#m) OR #m.#t = :t OR #m.#e <= :now', ExpressionAttributeNames: { '#m': 'marker', '#t': 'token', '#e': 'expires' }, ExpressionAttributeValues: { ':m': { M: { token: S('t2'), expires: N(9) } }, ':t': S('t9'), ':now': N(1) } }),
    update('m', { UpdateExpression: 'SET #m.#e = :e', ConditionExpression: '#m.#t = :t', ExpressionAttributeNames: { '#m': 'marker', '#t': 'token', '#e': 'expires' }, ExpressionAttributeValues: { ':e': N(7), ':t': S('t1') } }),
    update('m', { UpdateExpression: 'REMOVE #m', ConditionExpression: '#m.#t = :t', ExpressionAttributeNames: { '#m': 'marker', '#t': 'token' }, ExpressionAttributeValues: { ':t': S('t1') } }),
  ],
  'SET with arithmetic, several clauses, ADD and DELETE on sets': [
    put('c', { n: N(5), tags: { SS: ['x', 'y'] }, gone: S('g') }),
    update('c', { UpdateExpression: 'SET n = n + :one, m = :two - n REMOVE gone ADD tags :z, tally :one', ExpressionAttributeValues: { ':one': N(1), ':two': N(2), ':z': { SS: ['z'] } } }),
    update('c', { UpdateExpression: 'DELETE tags :xy', ExpressionAttributeValues: { ':xy': { SS: ['x', 'y', 'z'] } } }),
    update('c', { UpdateExpression: 'SET l = list_append(if_not_exists(l, :empty), :more)', ExpressionAttributeValues: { ':empty': { L: [] }, ':more': { L: [N(1)] } } }),
    update('c', { UpdateExpression: 'SET l = list_append(l, :more)', ExpressionAttributeValues: { ':more': { L: [S('two')] } } }),
  ],
  'comparisons across types, BETWEEN, NOT, size, begins_with, <>': [
    put('d', { n: N(10), s: S('hello'), b: { B: new Uint8Array([1, 2, 3]) } }),
    ...[
      ['n BETWEEN :a AND :b', { ':a': N(9), ':b': N(10) }],
      ['n BETWEEN :a AND :b', { ':a': N(11), ':b': N(12) }],
      ['n < :s', { ':s': S('a') }],
      ['NOT (n = :a)', { ':a': N(10) }],
      ['size(s) = :five AND begins_with(s, :he)', { ':five': N(5), ':he': S('he') }],
      ['s <> :x', { ':x': S('hello') }],
      ['absentattr <> :x', { ':x': S('hello') }],
      ['n > :a OR (s = :b AND NOT attribute_exists(zz))', { ':a': N(100), ':b': S('hello') }],
      ['contains(s, :ell)', { ':ell': S('ell') }],
    ].map(([condition, values], i) =>
      update('d', { UpdateExpression: 'SET tried = :i', ConditionExpression: condition, ExpressionAttributeValues: { ...(values as object), ':i': N(i) } }),
    ),
  ],
  'delete with condition and ALL_OLD; get of a missing item': [
    put('e', { v: N(1) }),
    (c, t) => c.send(new DeleteItemCommand({ TableName: t, Key: key('e'), ConditionExpression: 'v = :two', ExpressionAttributeValues: { ':two': N(2) } })),
    (c, t) => c.send(new DeleteItemCommand({ TableName: t, Key: key('e'), ReturnValues: 'ALL_OLD' })),
    get('e'),
  ],
  'query: begins_with, filter, Limit pages, order; batch get': [
    ...Array.from({ length: 12 }, (_, i) => put(`m#${String(i).padStart(2, '0')}`, { status: S(i % 3 === 0 ? 'deleted' : 'kept') })),
    put('other', {}),
    async (c, t) => {
      const pages: unknown[] = [];
      let start: Record<string, unknown> | undefined;
      do {
        const out = await c.send(
          new QueryCommand({
            TableName: t,
            KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :m)',
            FilterExpression: '#status = :status',
            ExpressionAttributeNames: { '#pk': 'pk', '#sk': 'sk', '#status': 'status' },
            ExpressionAttributeValues: { ':pk': S('p'), ':m': S('m#'), ':status': S('kept') },
            Limit: 5,
            ExclusiveStartKey: start as never,
            ConsistentRead: true,
          }),
        );
        pages.push({ items: out.Items, count: out.Count, scanned: out.ScannedCount, last: out.LastEvaluatedKey });
        start = out.LastEvaluatedKey;
      } while (start !== undefined);
      return pages;
    },
    (c, t) => c.send(new QueryCommand({ TableName: t, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': S('p') }, ScanIndexForward: false, Limit: 3 })),
    async (c, t) => {
      const out = await c.send(new BatchGetItemCommand({ RequestItems: { [t]: { Keys: [key('m#01'), key('nope'), key('m#04')], ConsistentRead: true } } }));
      return (out.Responses?.[t] ?? []).map((item) => item.sk?.S).sort();
    },
  ],
};

/** What a step answered, without what differs between any two servers (request ids, retries). */
async function outcome(step: Step, client: DynamoDBClient, table: string): Promise<unknown> {
  try {
    const out = await step(client, table);
    if (out !== null && typeof out === 'object' && '$metadata' in out) {
      const { $metadata: _metadata, ...rest } = out as Record<string, unknown>;
      return { ok: rest };
    }
    return { ok: out };
  } catch (error) {
    return { error: (error as Error).name, ...(process.env.VS_MESSAGES ? { message: (error as Error).message } : {}) };
  }
}

describe('the in-memory DynamoDB endpoint answers as dynalite does', () => {
  let dynalite: DynamoDbStandin;
  let memory: DynamoDbMemory;
  beforeAll(async () => {
    [dynalite, memory] = await Promise.all([startDynalite(), startDynamoDbMemory()]);
  });
  afterAll(async () => {
    await Promise.all([dynalite?.stop(), memory?.stop()]);
  });

  let n = 0;
  for (const [name, steps] of Object.entries(scenarios)) {
    it(name, async () => {
      const table = `vs-${++n}`;
      await Promise.all([dynalite.createLedgerTable(table), memory.createLedgerTable(table)]);
      const reference = dynalite.client();
      const candidate = memory.client();
      const answers: Array<{ reference: unknown; candidate: unknown }> = [];
      for (const step of steps) answers.push({ reference: await outcome(step, reference, table), candidate: await outcome(step, candidate, table) });
      for (const [i, { reference: expected, candidate: actual }] of answers.entries()) expect(actual, `step ${i + 1}`).toEqual(expected);
      // Every scenario has both outcomes in it somewhere, or at least one success.
      expect(answers.some((a) => 'ok' in (a.reference as object))).toBe(true);
    });
  }
});
