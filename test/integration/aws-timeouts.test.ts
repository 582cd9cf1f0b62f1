// The HTTP timeouts of popdrain's AWS SDK clients (AWS_HTTP_TIMEOUTS in lib/adapters/aws/http-timeouts.ts, used by the
// CLI and, through lambdas/runtime.ts, by the Lambdas). Without them an S3 endpoint that accepts
// the connection and never answers keeps a commit pending forever. Here, against loopback TCP
// servers that stall or trickle, the store the CLI builds (with shortened timeouts) fails the
// commit with a typed, retryable STORE_FAILED within seconds; and every client popdrain builds
// carries the documented defaults.
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { NodeHttpHandlerOptions } from '@smithy/types';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createAwsAdapters } from '../../cli/aws.js';
import { AWS_HTTP_TIMEOUTS, createS3Client, type AwsHttpTimeouts } from '../../lib/adapters/aws/http-timeouts.js';
import { clientConfig, createLedger } from '../../lambdas/runtime.js';
import { DrainError } from '../../lib/drain/errors.js';
import type { MessageStore } from '../../lib/drain/ports.js';

const SHORT: AwsHttpTimeouts = { connectionTimeout: 500, socketTimeout: 500, requestTimeout: 1_000 };
/** Three attempts (the SDK's default) of a short timeout each, plus backoff, with room to spare. */
const FAILS_WITHIN_MS = 10_000;

beforeAll(() => {
  // Fake credentials, no instance-metadata lookups: nothing leaves loopback.
  Object.assign(process.env, {
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_ACCESS_KEY_ID: 'AKIDTIMEOUTFAKE',
    AWS_SECRET_ACCESS_KEY: 'timeout-fake-secret',
    AWS_REGION: 'us-east-1',
  });
});

interface StallingServer {
  url: string;
  connections: number;
  close(): Promise<void>;
}

/** A TCP server that accepts connections, reads what comes, and answers with `onData` (or never). */
async function startStallingServer(onData?: (socket: Socket) => void): Promise<StallingServer> {
  const sockets = new Set<Socket>();
  const state = { connections: 0 };
  const server: Server = createServer((socket) => {
    state.connections += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.once('data', () => onData?.(socket));
    socket.on('data', () => undefined);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get connections() {
      return state.connections;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Writes a message of `size` random bytes and commits it; resolves to the commit's outcome and how long it took. */
async function commitTiming(store: MessageStore, size: number): Promise<{ error: unknown; ms: number }> {
  const body = randomBytes(size);
  const sha256 = createHash('sha256').update(body).digest('hex');
  const writer = await store.open('mbx-timeouts/m1.eml', { mailboxId: 'mbx-timeouts', uidl: 'u1', expectedSize: size });
  await new Promise<void>((resolve, reject) => writer.stream.end(body, (e?: Error | null) => (e ? reject(e) : resolve())));
  const started = Date.now();
  try {
    await writer.commit({ sha256, size, metadata: {} });
  } catch (error) {
    return { error, ms: Date.now() - started };
  }
  return { error: undefined, ms: Date.now() - started };
}

async function handlerOptions(client: { config: { requestHandler: unknown } }): Promise<NodeHttpHandlerOptions> {
  // The resolved options of the client's NodeHttpHandler (a private field, read for the test).
  return (client.config.requestHandler as { configProvider: Promise<NodeHttpHandlerOptions> }).configProvider;
}

describe('AWS client timeouts', () => {
  it('an S3 endpoint that accepts the connection and never answers fails the commit with a retryable STORE_FAILED', async () => {
    const server = await startStallingServer();
    cleanups.push(() => server.close());
    const { store } = createAwsAdapters({ endpoint: server.url, region: 'us-east-1', bucket: 'popdrain-timeouts', timeouts: SHORT });
    cleanups.push(async () => (store as unknown as { client: { destroy(): void } }).client.destroy());
    // A small message (one PutObject) and one large enough for `Expect: 100-continue`.
    for (const size of [200, 3 * 1024 * 1024]) {
      const before = server.connections;
      const { error, ms } = await commitTiming(store!, size);
      expect(error, `size ${size}`).toBeInstanceOf(DrainError);
      expect(error).toMatchObject({ code: 'STORE_FAILED', phase: 'store', retryable: true });
      expect((error as DrainError).message).toContain('TimeoutError');
      expect((error as DrainError).message).toContain('s3://popdrain-timeouts/messages/mbx-timeouts/m1.eml');
      expect(ms).toBeLessThan(FAILS_WITHIN_MS);
      // The SDK tried again (each attempt on a new connection) before giving up.
      expect(server.connections - before).toBeGreaterThanOrEqual(2);
    }
  }, 30_000);

  it('an endpoint that trickles its answer (never idle) is cut off by the request timeout', async () => {
    const timers: NodeJS.Timeout[] = [];
    const server = await startStallingServer((socket) => {
      socket.write('HTTP/1.1 200 OK\r\n');
      const timer = setInterval(() => socket.writable && socket.write('x-slow: 1\r\n'), 100);
      timers.push(timer);
      socket.on('close', () => clearInterval(timer));
    });
    cleanups.push(async () => {
      for (const t of timers) clearInterval(t);
      await server.close();
    });
    const { store } = createAwsAdapters({ endpoint: server.url, region: 'us-east-1', bucket: 'popdrain-timeouts', timeouts: SHORT });
    const { error, ms } = await commitTiming(store!, 200);
    expect(error).toBeInstanceOf(DrainError);
    expect(error).toMatchObject({ code: 'STORE_FAILED', retryable: true });
    expect((error as DrainError).message).toContain('TimeoutError');
    expect(ms).toBeLessThan(FAILS_WITHIN_MS);
  }, 30_000);

  it('every client of the CLI and the Lambdas has the documented timeouts by default', async () => {
    expect(AWS_HTTP_TIMEOUTS).toEqual({ connectionTimeout: 10_000, socketTimeout: 30_000, requestTimeout: 300_000 });
    const expected = { ...AWS_HTTP_TIMEOUTS, throwOnRequestTimeout: true };
    const aws = createAwsAdapters({ endpoint: 'http://127.0.0.1:9', region: 'us-east-1', bucket: 'b', table: 't', eventBus: 'e', secretsManager: true });
    const clientOf = (adapter: unknown) => (adapter as { client: { config: { requestHandler: unknown } } }).client;
    for (const adapter of [aws.store, aws.ledger, aws.events, aws.credentials]) {
      expect(await handlerOptions(clientOf(adapter))).toMatchObject(expected);
    }
    // What the Lambdas build their clients with (lambdas/runtime.ts, lambdas/drainer.ts, lambdas/scheduler.ts).
    expect(clientConfig().requestHandler).toEqual(expected);
    expect(await handlerOptions(createS3Client({ region: 'us-east-1' }))).toMatchObject(expected);
    expect(await handlerOptions(clientOf(createLedger('t')))).toMatchObject(expected);
  });
});
