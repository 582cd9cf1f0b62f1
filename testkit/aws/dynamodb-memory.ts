/**
 * An in-memory DynamoDB endpoint on loopback, speaking the service's JSON 1.0 protocol to the real
 * SDK client, for the bench: dynalite (LevelDB in JavaScript) serves ~60 conditional writes a
 * second, so a drain into the S3 latency endpoint with its ledger on dynalite measured dynalite.
 * This one keeps items in maps and answers each request after `delayMs` (default 0).
 *
 * Operations: CreateTable, DescribeTable, PutItem, GetItem, UpdateItem, DeleteItem, BatchGetItem
 * (at most 100 keys), BatchWriteItem (at most 25 requests), Query (key condition, filter,
 * ExclusiveStartKey, Limit, ScanIndexForward, pages of at most 1 MB). Conditions and updates are
 * evaluated by testkit/aws/dynamodb-expressions.ts; a failed condition answers
 * ConditionalCheckFailedException, with the item when ReturnValuesOnConditionCheckFailure is
 * ALL_OLD (as DynamoDB does, and dynalite does not). ReturnValues ALL_OLD / ALL_NEW on writes.
 * Item size is checked against DynamoDB's 400 KB (attribute names and values, as its docs count
 * them, nested values approximated by their parts).
 *
 * Not implemented (no caller here uses them): Scan, transactions, indexes, TTL, streams,
 * ProjectionExpression, consumed capacity. The ledger's contract suite runs against this endpoint
 * (test/contract/ledger-dynamodb.test.ts) as well as against dynalite.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DynamoDBClient, type DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';
import { applyUpdate, ExpressionError, parseCondition, type AttributeValue, type Item, type Placeholders } from './dynamodb-expressions.js';

const HOST = '127.0.0.1';
const REGION = 'us-east-1';
const CREDENTIALS = { accessKeyId: 'dynamodb-memory-fake-key', secretAccessKey: 'dynamodb-memory-fake-secret' };
const TARGET_PREFIX = 'DynamoDB_20120810.';
const MAX_ITEM_BYTES = 400 * 1024;
const MAX_PAGE_BYTES = 1024 * 1024;
const MAX_BATCH_GET_KEYS = 100;
const MAX_BATCH_WRITES = 25;

export interface DynamoDbMemoryOptions {
  /** Each answer leaves this long after its request was read. @default 0 */
  delayMs?: number;
}

export interface DynamoDbMemory {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  delayMs: number;
  /** Requests answered, by operation. */
  readonly counts: Readonly<Record<string, number>>;
  /** A new DynamoDBClient for it (destroyed by `stop()`); `overrides` win. */
  client(overrides?: Partial<DynamoDBClientConfig>): DynamoDBClient;
  /** Creates a table with the ledger's key schema (pk, sk). */
  createLedgerTable(name: string): Promise<void>;
  stop(): Promise<void>;
}

class ServiceError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

interface Table {
  name: string;
  hashKey: string;
  rangeKey: string | undefined;
  partitions: Map<string, Map<string, Item>>;
  /** Each partition's range keys in order, rebuilt after a write added or removed one. */
  sorted: Map<string, Array<{ key: AttributeValue; id: string }>>;
}

function keyId(value: AttributeValue | undefined, name: string): string {
  if (value === undefined) throw new ServiceError('ValidationException', `The provided key element does not match the schema: ${name} is missing`);
  if ('S' in value) return `S:${value.S}`;
  if ('N' in value) return `N:${Number(value.N)}`;
  if ('B' in value) return `B:${value.B}`;
  throw new ServiceError('ValidationException', `The provided key element does not match the schema: ${name} must be S, N or B`);
}

function valueBytes(value: AttributeValue): number {
  if ('S' in value) return Buffer.byteLength(value.S);
  if ('N' in value) return Math.ceil(value.N.replace(/^-|\.|e.*$/gi, '').length / 2) + 1;
  if ('B' in value) return Buffer.from(value.B, 'base64').length;
  if ('BOOL' in value || 'NULL' in value) return 1;
  if ('M' in value) return 3 + itemBytes(value.M) + Object.keys(value.M).length;
  if ('L' in value) return 3 + value.L.reduce((sum, element) => sum + 1 + valueBytes(element), 0);
  if ('SS' in value) return value.SS.reduce((sum, s) => sum + Buffer.byteLength(s), 0);
  if ('NS' in value) return value.NS.reduce((sum, n) => sum + valueBytes({ N: n }), 0);
  return value.BS.reduce((sum, b) => sum + Buffer.from(b, 'base64').length, 0);
}

function itemBytes(item: Item): number {
  let bytes = 0;
  for (const [name, value] of Object.entries(item)) bytes += Buffer.byteLength(name) + valueBytes(value);
  return bytes;
}

function order(a: AttributeValue, b: AttributeValue): number {
  if ('N' in a && 'N' in b) return Math.sign(Number(a.N) - Number(b.N));
  if ('S' in a && 'S' in b) return Buffer.compare(Buffer.from(a.S), Buffer.from(b.S));
  if ('B' in a && 'B' in b) return Buffer.compare(Buffer.from(a.B, 'base64'), Buffer.from(b.B, 'base64'));
  return 0;
}

interface Request {
  TableName?: string;
  Item?: Item;
  Key?: Item;
  ConditionExpression?: string;
  UpdateExpression?: string;
  KeyConditionExpression?: string;
  FilterExpression?: string;
  ExpressionAttributeNames?: Record<string, string>;
  ExpressionAttributeValues?: Item;
  ReturnValues?: string;
  ReturnValuesOnConditionCheckFailure?: string;
  ExclusiveStartKey?: Item;
  Limit?: number;
  ScanIndexForward?: boolean;
  Select?: string;
  KeySchema?: Array<{ AttributeName: string; KeyType: string }>;
  RequestItems?: Record<string, unknown>;
}

export async function startDynamoDbMemory(options: DynamoDbMemoryOptions = {}): Promise<DynamoDbMemory> {
  const tables = new Map<string, Table>();
  const counts: Record<string, number> = {};
  let delayMs = options.delayMs ?? 0;

  const table = (name: string | undefined): Table => {
    const found = tables.get(name ?? '');
    if (found === undefined) throw new ServiceError('ResourceNotFoundException', 'Requested resource not found');
    return found;
  };
  const locate = (t: Table, key: Item): { partition: string; range: string } => {
    const names = Object.keys(key);
    if (names.length !== (t.rangeKey === undefined ? 1 : 2)) throw new ServiceError('ValidationException', 'The provided key element does not match the schema');
    return { partition: keyId(key[t.hashKey], t.hashKey), range: t.rangeKey === undefined ? '' : keyId(key[t.rangeKey], t.rangeKey) };
  };
  const read = (t: Table, key: Item): Item | undefined => {
    const { partition, range } = locate(t, key);
    return t.partitions.get(partition)?.get(range);
  };
  const keyOf = (t: Table, item: Item): Item => {
    const key: Item = {};
    for (const name of [t.hashKey, t.rangeKey]) if (name !== undefined && item[name] !== undefined) key[name] = item[name]!;
    return key;
  };
  const write = (t: Table, key: Item, item: Item | undefined): void => {
    const { partition, range } = locate(t, key);
    let rows = t.partitions.get(partition);
    if (item === undefined) {
      if (rows?.delete(range) === true) t.sorted.delete(partition);
      return;
    }
    if (itemBytes(item) > MAX_ITEM_BYTES) throw new ServiceError('ValidationException', 'Item size has exceeded the maximum allowed size');
    if (rows === undefined) t.partitions.set(partition, (rows = new Map()));
    if (!rows.has(range)) t.sorted.delete(partition);
    rows.set(range, item);
  };
  const placeholders = (r: Request): Placeholders => ({ names: r.ExpressionAttributeNames, values: r.ExpressionAttributeValues });
  const check = (r: Request, current: Item | undefined): void => {
    if (r.ConditionExpression === undefined) return;
    if (parseCondition(r.ConditionExpression, placeholders(r))(current ?? {})) return;
    const extra = r.ReturnValuesOnConditionCheckFailure === 'ALL_OLD' && current !== undefined ? { Item: current } : {};
    throw new ServiceError('ConditionalCheckFailedException', 'The conditional request failed', extra);
  };
  const returned = (r: Request, old: Item | undefined, next: Item | undefined): Record<string, unknown> => {
    if (r.ReturnValues === 'ALL_OLD' && old !== undefined) return { Attributes: old };
    if (r.ReturnValues === 'ALL_NEW' && next !== undefined) return { Attributes: next };
    return {};
  };

  const operations: Record<string, (r: Request) => Record<string, unknown>> = {
    CreateTable: (r) => {
      const name = r.TableName ?? '';
      if (tables.has(name)) throw new ServiceError('ResourceInUseException', `Table already exists: ${name}`);
      const hash = r.KeySchema?.find((k) => k.KeyType === 'HASH')?.AttributeName;
      if (hash === undefined) throw new ServiceError('ValidationException', 'A HASH key is required');
      const range = r.KeySchema?.find((k) => k.KeyType === 'RANGE')?.AttributeName;
      tables.set(name, { name, hashKey: hash, rangeKey: range, partitions: new Map(), sorted: new Map() });
      return { TableDescription: { TableName: name, TableStatus: 'ACTIVE', KeySchema: r.KeySchema } };
    },
    DescribeTable: (r) => {
      const t = table(r.TableName);
      const schema = [{ AttributeName: t.hashKey, KeyType: 'HASH' }, ...(t.rangeKey === undefined ? [] : [{ AttributeName: t.rangeKey, KeyType: 'RANGE' }])];
      return { Table: { TableName: t.name, TableStatus: 'ACTIVE', KeySchema: schema } };
    },
    PutItem: (r) => {
      const t = table(r.TableName);
      const item = r.Item ?? {};
      const key = keyOf(t, item);
      const old = read(t, key);
      check(r, old);
      write(t, key, structuredClone(item));
      return returned(r, old, undefined);
    },
    GetItem: (r) => {
      const item = read(table(r.TableName), r.Key ?? {});
      return item === undefined ? {} : { Item: item };
    },
    DeleteItem: (r) => {
      const t = table(r.TableName);
      const old = read(t, r.Key ?? {});
      check(r, old);
      write(t, r.Key ?? {}, undefined);
      return returned(r, old, undefined);
    },
    UpdateItem: (r) => {
      const t = table(r.TableName);
      const key = r.Key ?? {};
      const old = read(t, key);
      check(r, old);
      const base = old ?? structuredClone(key);
      const next = r.UpdateExpression === undefined ? base : applyUpdate(r.UpdateExpression, placeholders(r), base);
      for (const [name, value] of Object.entries(key)) {
        if (JSON.stringify(next[name]) !== JSON.stringify(value)) throw new ServiceError('ValidationException', `Cannot update attribute ${name}. This attribute is part of the key`);
      }
      write(t, key, next);
      return returned(r, old, next);
    },
    BatchGetItem: (r) => {
      const requests = Object.entries((r.RequestItems ?? {}) as Record<string, { Keys: Item[] }>);
      const total = requests.reduce((sum, [, request]) => sum + request.Keys.length, 0);
      if (total > MAX_BATCH_GET_KEYS) throw new ServiceError('ValidationException', 'Too many items requested for the BatchGetItem call');
      const responses: Record<string, Item[]> = {};
      for (const [name, request] of requests) {
        const t = table(name);
        responses[name] = request.Keys.map((key) => read(t, key)).filter((item): item is Item => item !== undefined);
      }
      return { Responses: responses, UnprocessedKeys: {} };
    },
    BatchWriteItem: (r) => {
      const requests = Object.entries((r.RequestItems ?? {}) as Record<string, Array<{ PutRequest?: { Item: Item }; DeleteRequest?: { Key: Item } }>>);
      const total = requests.reduce((sum, [, list]) => sum + list.length, 0);
      if (total > MAX_BATCH_WRITES) throw new ServiceError('ValidationException', 'Too many items requested for the BatchWriteItem call');
      for (const [name, list] of requests) {
        const t = table(name);
        for (const w of list) {
          if (w.PutRequest !== undefined) write(t, keyOf(t, w.PutRequest.Item), structuredClone(w.PutRequest.Item));
          else if (w.DeleteRequest !== undefined) write(t, w.DeleteRequest.Key, undefined);
        }
      }
      return { UnprocessedItems: {} };
    },
    Query: (r) => query(table(r.TableName), r),
  };

  const query = (t: Table, r: Request): Record<string, unknown> => {
    if (r.KeyConditionExpression === undefined) throw new ServiceError('ValidationException', 'KeyConditionExpression is required');
    const keyCondition = parseCondition(r.KeyConditionExpression, placeholders(r));
    const filter = r.FilterExpression === undefined ? undefined : parseCondition(r.FilterExpression, placeholders(r));
    // The partitions the key condition can name: those whose hash key is one of the values given
    // (the condition must compare the hash key with one of them), in no particular order.
    const named = new Set<string>();
    for (const value of Object.values(r.ExpressionAttributeValues ?? {})) {
      if ('S' in value || 'N' in value || 'B' in value) named.add(keyId(value, t.hashKey));
    }
    const candidates: Array<{ key: AttributeValue; id: string; partition: string }> = [];
    for (const partition of named) {
      const rows = t.partitions.get(partition);
      if (rows === undefined) continue;
      let sorted = t.sorted.get(partition);
      if (sorted === undefined) {
        sorted = [...rows.entries()].map(([id, item]) => ({ key: t.rangeKey === undefined ? { S: '' } : item[t.rangeKey]!, id }));
        sorted.sort((a, b) => order(a.key, b.key));
        t.sorted.set(partition, sorted);
      }
      for (const entry of sorted) candidates.push({ ...entry, partition });
    }
    if (r.ScanIndexForward === false) candidates.reverse();
    let start = 0;
    if (r.ExclusiveStartKey !== undefined) {
      const { partition, range } = locate(t, r.ExclusiveStartKey);
      start = candidates.findIndex((c) => c.partition === partition && c.id === range) + 1;
    }
    const items: Item[] = [];
    let scanned = 0;
    let bytes = 0;
    let last: Item | undefined;
    for (let i = start; i < candidates.length; i++) {
      const c = candidates[i]!;
      const item = t.partitions.get(c.partition)!.get(c.id)!;
      if (!keyCondition(item)) continue;
      scanned += 1;
      bytes += itemBytes(item);
      if (filter === undefined || filter(item)) items.push(item);
      last = keyOf(t, item);
      if ((r.Limit !== undefined && scanned >= r.Limit) || bytes >= MAX_PAGE_BYTES) {
        const more = candidates.slice(i + 1).some((rest) => keyCondition(t.partitions.get(rest.partition)!.get(rest.id)!));
        return { ...(r.Select === 'COUNT' ? {} : { Items: items }), Count: items.length, ScannedCount: scanned, ...(more ? { LastEvaluatedKey: last } : {}) };
      }
    }
    return { ...(r.Select === 'COUNT' ? {} : { Items: items }), Count: items.length, ScannedCount: scanned };
  };

  const answer = (response: ServerResponse, status: number, body: unknown): void => {
    const text = JSON.stringify(body);
    const send = (): void => {
      response.writeHead(status, { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': 'dynamodb-memory', 'content-length': Buffer.byteLength(text) });
      response.end(text);
    };
    if (delayMs > 0) setTimeout(send, delayMs);
    else send();
  };
  const handle = (request: IncomingMessage, response: ServerResponse, body: string): void => {
    const target = String(request.headers['x-amz-target'] ?? '');
    const name = target.startsWith(TARGET_PREFIX) ? target.slice(TARGET_PREFIX.length) : '';
    const operation = operations[name];
    counts[name] = (counts[name] ?? 0) + 1;
    try {
      if (operation === undefined) throw new ServiceError('UnknownOperationException', `not implemented here: ${target}`);
      answer(response, 200, operation(JSON.parse(body) as Request));
    } catch (error) {
      if (error instanceof ServiceError) answer(response, 400, { __type: `com.amazonaws.dynamodb.v20120810#${error.type}`, message: error.message, ...error.extra });
      else if (error instanceof ExpressionError || error instanceof SyntaxError) answer(response, 400, { __type: 'com.amazon.coral.validate#ValidationException', message: error.message });
      else answer(response, 500, { __type: 'com.amazonaws.dynamodb.v20120810#InternalServerError', message: String(error) });
    }
  };

  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => handle(request, response, Buffer.concat(chunks).toString('utf8')));
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  const endpoint = `http://${HOST}:${(server.address() as AddressInfo).port}`;
  const clients: DynamoDBClient[] = [];
  const client = (overrides: Partial<DynamoDBClientConfig> = {}): DynamoDBClient => {
    const c = new DynamoDBClient({ region: REGION, endpoint, credentials: CREDENTIALS, ...overrides });
    clients.push(c);
    return c;
  };
  return {
    endpoint,
    get delayMs() {
      return delayMs;
    },
    set delayMs(ms: number) {
      delayMs = ms;
    },
    counts,
    client,
    createLedgerTable: async (name) => {
      operations.CreateTable!({ TableName: name, KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }, { AttributeName: 'sk', KeyType: 'RANGE' }] });
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const c of clients.splice(0)) c.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
