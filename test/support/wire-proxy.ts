/**
 * A TCP proxy on loopback that counts the bytes the server sends and can throttle them to a
 * rate (a slow link), for tests that judge what crosses the wire rather than what is stored.
 * Bytes are not altered, so TLS runs end to end through it. (bench/latency-proxy.ts delays
 * instead of throttling.)
 */
import net from 'node:net';

export interface WireProxy {
  port: number;
  /** Bytes sent by the server to clients so far, over all connections. */
  readonly serverBytes: number;
  close(): Promise<void>;
}

export interface WireProxyOptions {
  /** Server-to-client bytes per second (default: unthrottled). */
  bytesPerSecond?: number;
}

/** Server-to-client, at most `bytesPerSecond`, in 10 ms slices; counts what was forwarded. */
function throttledPipe(from: net.Socket, to: net.Socket, bytesPerSecond: number | undefined, count: (n: number) => void): void {
  if (bytesPerSecond === undefined) {
    from.on('data', (chunk: Buffer) => {
      count(chunk.length);
      to.write(chunk);
    });
    from.on('end', () => to.end());
    return;
  }
  const slice = Math.max(1, Math.floor(bytesPerSecond / 100));
  const queue: Buffer[] = [];
  let ended = false;
  const timer = setInterval(() => {
    let budget = slice;
    while (budget > 0 && queue.length > 0) {
      const head = queue[0]!;
      const part = head.subarray(0, budget);
      if (part.length === head.length) queue.shift();
      else queue[0] = head.subarray(part.length);
      budget -= part.length;
      count(part.length);
      to.write(part);
    }
    if (queue.length < 16) from.resume();
    if (queue.length === 0 && ended) {
      clearInterval(timer);
      to.end();
    }
  }, 10);
  from.on('data', (chunk: Buffer) => {
    queue.push(chunk);
    if (queue.length >= 16) from.pause();
  });
  from.on('end', () => {
    ended = true;
  });
  from.on('close', () => {
    if (!ended) clearInterval(timer);
  });
  to.on('close', () => clearInterval(timer));
}

export function startWireProxy(targetHost: string, targetPort: number, options: WireProxyOptions = {}): Promise<WireProxy> {
  const sockets = new Set<net.Socket>();
  let serverBytes = 0;
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: targetHost, port: targetPort });
    for (const s of [client, upstream]) {
      s.setNoDelay(true);
      sockets.add(s);
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (chunk: Buffer) => upstream.write(chunk));
    client.on('end', () => upstream.end());
    throttledPipe(upstream, client, options.bytesPerSecond, (n) => {
      serverBytes += n;
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const address = server.address() as net.AddressInfo;
      resolve({
        port: address.port,
        get serverBytes() {
          return serverBytes;
        },
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}
