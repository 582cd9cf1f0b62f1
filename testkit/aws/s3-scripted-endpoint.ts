/**
 * A tiny S3 endpoint on loopback for what s3rver will not do on demand: honour (or refuse)
 * `If-None-Match: *` with 412, answer HeadObject with chosen metadata, fail with 500 or 403, or
 * echo credentials in an error. Real S3Clients talk to it (path style), so serialization,
 * signing, error parsing and the SDK's retries are all exercised. It records every request
 * (method, key, query, headers, body size); bodies are counted, not kept.
 *
 * By default it behaves like a bucket that accepts everything: PutObject, the multipart calls
 * and HeadObject (404). A test's `handler` answers first; returning undefined falls back.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';

export type S3Operation =
  | 'PutObject'
  | 'HeadObject'
  | 'GetObject'
  | 'CreateMultipartUpload'
  | 'UploadPart'
  | 'CompleteMultipartUpload'
  | 'AbortMultipartUpload'
  | 'DeleteObject'
  | 'Other';

export interface S3Request {
  operation: S3Operation;
  method: string;
  bucket: string;
  key: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  bodyBytes: number;
  /** The body as text, for the small XML bodies (CompleteMultipartUpload); '' above 64 KiB. */
  text: string;
}

export interface S3Reply {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

export type S3Handler = (request: S3Request) => S3Reply | undefined;

export interface S3ScriptedEndpoint {
  readonly url: string;
  readonly requests: S3Request[];
  requestsFor(operation: S3Operation): S3Request[];
  setHandler(handler: S3Handler | undefined): void;
  /** An S3Client for this endpoint (fake credentials, path style); `overrides` win. */
  client(overrides?: Partial<S3ClientConfig>): S3Client;
  close(): Promise<void>;
}

const KEEP_TEXT_BYTES = 64 * 1024;

export function s3ErrorReply(status: number, code: string, message: string, extra: Record<string, string> = {}): S3Reply {
  const fields = Object.entries(extra)
    .map(([k, v]) => `<${k}>${v}</${k}>`)
    .join('');
  return {
    status,
    headers: { 'content-type': 'application/xml' },
    body: `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message>${fields}<RequestId>TESTREQUEST</RequestId><HostId>test-host</HostId></Error>`,
  };
}

function classify(method: string, query: URLSearchParams): S3Operation {
  if (method === 'PUT') return query.has('partNumber') ? 'UploadPart' : 'PutObject';
  if (method === 'POST' && query.has('uploads')) return 'CreateMultipartUpload';
  if (method === 'POST' && query.has('uploadId')) return 'CompleteMultipartUpload';
  if (method === 'DELETE') return query.has('uploadId') ? 'AbortMultipartUpload' : 'DeleteObject';
  if (method === 'HEAD') return 'HeadObject';
  if (method === 'GET') return 'GetObject';
  return 'Other';
}

function defaultReply(request: S3Request): S3Reply {
  switch (request.operation) {
    case 'PutObject':
      return { status: 200, headers: { etag: '"put-etag"' } };
    case 'CreateMultipartUpload':
      return {
        status: 200,
        headers: { 'content-type': 'application/xml' },
        body: `<?xml version="1.0" encoding="UTF-8"?>\n<InitiateMultipartUploadResult><Bucket>${request.bucket}</Bucket><Key>${request.key}</Key><UploadId>test-upload-1</UploadId></InitiateMultipartUploadResult>`,
      };
    case 'UploadPart':
      return { status: 200, headers: { etag: `"part-${request.query.get('partNumber') ?? '0'}"` } };
    case 'CompleteMultipartUpload':
      return {
        status: 200,
        headers: { 'content-type': 'application/xml' },
        body: `<?xml version="1.0" encoding="UTF-8"?>\n<CompleteMultipartUploadResult><Bucket>${request.bucket}</Bucket><Key>${request.key}</Key><ETag>"mpu-etag"</ETag></CompleteMultipartUploadResult>`,
      };
    case 'AbortMultipartUpload':
    case 'DeleteObject':
      return { status: 204 };
    case 'HeadObject':
      return { status: 404 };
    default:
      return s3ErrorReply(404, 'NoSuchKey', 'The specified key does not exist.');
  }
}

export async function startS3ScriptedEndpoint(handler?: S3Handler): Promise<S3ScriptedEndpoint> {
  const requests: S3Request[] = [];
  let current = handler;
  const clients: S3Client[] = [];

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const [, bucket = '', ...rest] = url.pathname.split('/');
    const key = rest.map((s) => decodeURIComponent(s)).join('/');
    let bodyBytes = 0;
    const kept: Buffer[] = [];
    for await (const chunk of req as AsyncIterable<Buffer>) {
      bodyBytes += chunk.length;
      if (bodyBytes <= KEEP_TEXT_BYTES) kept.push(chunk);
    }
    const method = req.method ?? 'GET';
    const request: S3Request = {
      operation: classify(method, url.searchParams),
      method,
      bucket: decodeURIComponent(bucket),
      key,
      query: url.searchParams,
      headers: req.headers,
      bodyBytes,
      text: bodyBytes <= KEEP_TEXT_BYTES ? Buffer.concat(kept).toString('utf8') : '',
    };
    requests.push(request);
    const reply = current?.(request) ?? defaultReply(request);
    const body = method === 'HEAD' ? '' : (reply.body ?? '');
    res.writeHead(reply.status, {
      'x-amz-request-id': 'TESTREQUEST',
      'content-length': String(method === 'HEAD' ? (reply.headers?.['content-length'] ?? 0) : Buffer.byteLength(body)),
      ...reply.headers,
    });
    res.end(body);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;

  return {
    url,
    requests,
    requestsFor: (operation) => requests.filter((r) => r.operation === operation),
    setHandler: (h) => {
      current = h;
    },
    client: (overrides = {}) => {
      const c = new S3Client({
        region: 'us-east-1',
        endpoint: url,
        forcePathStyle: true,
        credentials: { accessKeyId: 'AKIDSCRIPTEDFAKE', secretAccessKey: 'scripted-fake-secret' },
        ...overrides,
      });
      clients.push(c);
      return c;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of clients) c.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
