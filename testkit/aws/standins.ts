/**
 * Local stand-ins for S3 (s3rver, in a child process) and DynamoDB (dynalite, in this process),
 * on 127.0.0.1, with real SDK clients configured for them. See docs/testing.md, "AWS stand-ins":
 * s3rver needs path-style requests, the S3RVER/S3RVER credentials and checksums only when
 * required (otherwise streamed bodies are stored with their aws-chunked framing); it ignores
 * `If-None-Match: *`. dynalite has no TransactWriteItems or UpdateTimeToLive, never expires
 * items, and ignores ReturnValuesOnConditionCheckFailure.
 *
 * Every client handed out is destroyed by `stop()`; dynalite drops its keep-alive connections
 * and the s3rver child exits (it also exits by itself when the test process goes away), so
 * nothing keeps the test process alive.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  type DynamoDBClientConfig,
} from '@aws-sdk/client-dynamodb';
import dynalite from 'dynalite';
import { LEDGER_PARTITION_KEY, LEDGER_SORT_KEY } from '../../lib/adapters/aws/dynamodb-ledger.js';

const HOST = '127.0.0.1';
const REGION = 'us-east-1';
const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
/** dynalite accepts any credentials; these are obviously fake. */
const DYNALITE_CREDENTIALS = { accessKeyId: 'dynalite-fake-key', secretAccessKey: 'dynalite-fake-secret' };
const TABLE_ACTIVE_TIMEOUT_MS = 5_000;
const CHILD_START_TIMEOUT_MS = 15_000;
const CHILD_STOP_TIMEOUT_MS = 5_000;
const requireFromHere = createRequire(import.meta.url);
const TABLE_POLL_INTERVAL_MS = 10;

export interface S3Standin {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  /** Where s3rver keeps its buckets. */
  readonly directory: string;
  /** A new S3Client for the stand-in (destroyed by `stop()`); `overrides` win. */
  client(overrides?: Partial<S3ClientConfig>): S3Client;
  createBucket(name: string): Promise<void>;
  stop(): Promise<void>;
}

export interface DynamoDbStandin {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  /** A new DynamoDBClient for the stand-in (destroyed by `stop()`); `overrides` win. */
  client(overrides?: Partial<DynamoDBClientConfig>): DynamoDBClient;
  /** Creates a table with the ledger's key schema (pk, sk), on-demand billing. */
  createLedgerTable(name: string): Promise<void>;
  stop(): Promise<void>;
}

function standinError(name: string, error: unknown): Error {
  const reason = error instanceof Error ? error.message : String(error);
  return new Error(`the ${name} stand-in could not start: ${reason}`, { cause: error });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((error?: Error | null) => (error === undefined || error === null ? resolve() : reject(error)));
    server.closeAllConnections();
  });
}

/**
 * The s3rver child: listens on 127.0.0.1 (a free port), prints `{"port":N}` once ready, and
 * exits when its stdin closes, so it never outlives the test process.
 */
const S3RVER_CHILD_SCRIPT = `
const S3rver = require(process.env.S3RVER_MODULE);
const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: process.env.S3RVER_DIRECTORY, vhostBuckets: false });
server.run().then(
  ({ port }) => process.stdout.write(JSON.stringify({ port }) + '\\n'),
  (error) => { process.stderr.write(String(error && error.stack || error)); process.exit(1); },
);
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

/**
 * s3rver in a child process (so its request handling never counts against the memory of the
 * code under test), keeping its buckets in a fresh temp dir.
 */
export async function startS3rver(): Promise<S3Standin> {
  const directory = await mkdtemp(join(tmpdir(), 'popdrain-s3rver-'));
  const child = spawn(process.execPath, ['-e', S3RVER_CHILD_SCRIPT], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, S3RVER_MODULE: requireFromHere.resolve('s3rver'), S3RVER_DIRECTORY: directory },
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let port: number;
  try {
    port = await readyPort(child);
  } catch (error) {
    child.kill('SIGKILL');
    await exited;
    await rm(directory, { recursive: true, force: true });
    throw standinError('S3 (s3rver)', error);
  }
  const endpoint = `http://${HOST}:${port}`;
  const clients: S3Client[] = [];
  const client = (overrides: Partial<S3ClientConfig> = {}): S3Client => {
    const c = new S3Client({
      region: REGION,
      endpoint,
      forcePathStyle: true,
      credentials: S3RVER_CREDENTIALS,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      ...overrides,
    });
    clients.push(c);
    return c;
  };
  const admin = client();
  return {
    endpoint,
    directory,
    client,
    createBucket: async (name) => {
      await admin.send(new CreateBucketCommand({ Bucket: name }));
    },
    stop: async () => {
      for (const c of clients) c.destroy();
      child.stdin?.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
      await rm(directory, { recursive: true, force: true });
    },
  };
}

function readyPort(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => fail(new Error(`no port after ${CHILD_START_TIMEOUT_MS} ms`)), CHILD_START_TIMEOUT_MS);
    const fail = (error: Error): void => {
      clearTimeout(timer);
      reject(new Error(`${error.message}${err === '' ? '' : `; stderr: ${err.slice(0, 2000)}`}`));
    };
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      err += d;
    });
    child.once('error', fail);
    child.once('exit', (code, signal) => fail(new Error(`exited (${code ?? signal}) before it was ready`)));
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const line = out.split('\n')[0];
      if (line === undefined || !out.includes('\n')) return;
      clearTimeout(timer);
      try {
        const { port } = JSON.parse(line) as { port: number };
        resolve(port);
      } catch {
        fail(new Error(`unexpected output ${JSON.stringify(line)}`));
      }
    });
  });
}

/** dynalite in memory on 127.0.0.1 (a free port); tables are ACTIVE at once. */
export async function startDynalite(): Promise<DynamoDbStandin> {
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, HOST, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    throw standinError('DynamoDB (dynalite)', error);
  }
  const { port } = server.address() as AddressInfo;
  const endpoint = `http://${HOST}:${port}`;
  const clients: DynamoDBClient[] = [];
  const client = (overrides: Partial<DynamoDBClientConfig> = {}): DynamoDBClient => {
    const c = new DynamoDBClient({ region: REGION, endpoint, credentials: DYNALITE_CREDENTIALS, ...overrides });
    clients.push(c);
    return c;
  };
  const admin = client();
  return {
    endpoint,
    client,
    createLedgerTable: async (name) => {
      await admin.send(
        new CreateTableCommand({
          TableName: name,
          AttributeDefinitions: [
            { AttributeName: LEDGER_PARTITION_KEY, AttributeType: 'S' },
            { AttributeName: LEDGER_SORT_KEY, AttributeType: 'S' },
          ],
          KeySchema: [
            { AttributeName: LEDGER_PARTITION_KEY, KeyType: 'HASH' },
            { AttributeName: LEDGER_SORT_KEY, KeyType: 'RANGE' },
          ],
          BillingMode: 'PAY_PER_REQUEST',
        }),
      );
      const deadline = Date.now() + TABLE_ACTIVE_TIMEOUT_MS;
      for (;;) {
        const { Table } = await admin.send(new DescribeTableCommand({ TableName: name }));
        if (Table?.TableStatus === 'ACTIVE') return;
        if (Date.now() > deadline) throw new Error(`table ${name} is still ${Table?.TableStatus ?? 'unknown'} after ${TABLE_ACTIVE_TIMEOUT_MS} ms`);
        await new Promise((resolve) => setTimeout(resolve, TABLE_POLL_INTERVAL_MS));
      }
    },
    stop: async () => {
      for (const c of clients) c.destroy();
      await closeServer(server);
    },
  };
}
