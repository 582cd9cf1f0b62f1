// OAuth2 token introspection endpoint (RFC 7662 shape) for Dovecot's oauth2 passdb.
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import type { Socket } from 'node:net';
import { HOST } from './shared.js';

export interface Introspection {
  server: HttpServer;
  url: string;
  tokens: Map<string, string>;
}

export async function startIntrospection(): Promise<Introspection> {
  const tokens = new Map<string, string>();
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      // introspection_mode post sends a form body; 'auth' would send a Bearer header.
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1];
      const token = form.get('token') ?? bearer ?? '';
      const user = tokens.get(token);
      const body =
        user === undefined ? { active: false } : { active: true, username: user, scope: 'mail' };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => resolve());
  });
  const addr = server.address();
  if (addr === null || typeof addr === 'string') {
    throw new Error('introspection server has no port');
  }
  // Dovecot keeps HTTP connections alive; don't let them hold close() up. Neither the server
  // nor its connections keep the test process alive (a forgotten stop() must not hang it).
  server.keepAliveTimeout = 1_000;
  server.unref();
  server.on('connection', (sock: Socket) => sock.unref());
  return { server, url: `http://${HOST}:${addr.port}/introspect`, tokens };
}

export function closeHttp(server: HttpServer): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}
