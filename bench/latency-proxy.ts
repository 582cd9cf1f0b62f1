/**
 * A TCP proxy on loopback that delays every chunk by a fixed time in each direction, keeping
 * order, to simulate a network round trip (5 ms each way = 10 ms RTT). Bytes are not altered,
 * so TLS runs end to end through it.
 */
import net from 'node:net';

export interface LatencyProxy {
  port: number;
  close(): Promise<void>;
}

function delayedPipe(from: net.Socket, to: net.Socket, delayMs: number): void {
  // Chunks leave in arrival order, each no earlier than arrival + delay. One timer at a time.
  const queue: Array<{ due: number; chunk: Buffer }> = [];
  let timer: NodeJS.Timeout | undefined;
  let ended = false;
  const drain = (): void => {
    timer = undefined;
    const now = performance.now();
    while (queue.length > 0 && queue[0]!.due <= now + 0.5) {
      to.write(queue.shift()!.chunk);
    }
    if (queue.length > 0) timer = setTimeout(drain, Math.max(0, queue[0]!.due - performance.now()));
    else if (ended) to.end();
  };
  from.on('data', (chunk: Buffer) => {
    queue.push({ due: performance.now() + delayMs, chunk });
    if (timer === undefined) timer = setTimeout(drain, delayMs);
  });
  from.on('end', () => {
    ended = true;
    if (timer === undefined && queue.length === 0) to.end();
  });
}

/** `observe` sees each chunk the client sends, as it arrives (to count requests; optional). */
export function startLatencyProxy(targetHost: string, targetPort: number, delayMs: number, observe?: (chunk: Buffer) => void): Promise<LatencyProxy> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: targetHost, port: targetPort });
    if (observe !== undefined) client.on('data', observe);
    for (const s of [client, upstream]) {
      s.setNoDelay(true);
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    delayedPipe(client, upstream, delayMs);
    delayedPipe(upstream, client, delayMs);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const address = server.address() as net.AddressInfo;
      resolve({
        port: address.port,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}
