/**
 * An S3 endpoint on loopback that keeps objects in memory and answers every request after a
 * configurable delay (default 20 ms, about S3's first-byte latency from a Lambda in the same
 * region), so a drain into it measures the drain at S3's latency rather than a stand-in's own
 * speed (s3rver writes files and serves ~200 objects/s). Path-style only, for real S3Clients.
 *
 * Operations: CreateBucket, PutObject, GetObject, HeadObject, DeleteObject, ListObjects (v1,
 * `marker`) and ListObjectsV2 (`continuation-token`, `start-after`), CreateMultipartUpload,
 * UploadPart, CompleteMultipartUpload, AbortMultipartUpload. PutObject and
 * CompleteMultipartUpload honour `If-None-Match: *` (412 PreconditionFailed when the key exists)
 * and CompleteMultipartUpload honours `x-amz-mp-object-size`. PutObject and UploadPart check an
 * `x-amz-checksum-sha256` header against the body (400 BadDigest otherwise), as S3 does. User metadata (`x-amz-meta-*`)
 * and Content-Type are kept and served back. Bodies sent with `aws-chunked` framing (the SDK's
 * default checksums on streamed bodies) are decoded, so the stored bytes are the object's bytes.
 * Not modelled: versioning, ranges, copies, delimiters, ACLs, signatures (any credentials pass).
 *
 * Lives in test/support (not bench/) because it is a stand-in like the others here: the bench's
 * `popdrain-drain-s3-latency` row and the tests both use it.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeAwsChunked, isAwsChunked } from './aws-chunked.js';

/** About S3's latency per request from within its region. */
export const DEFAULT_S3_LATENCY_MS = 20;
/** ListObjects pages hold at most this many keys (S3's own limit). */
const MAX_LIST_KEYS = 1000;

export interface S3LatencyEndpointOptions {
  /** Each answer leaves this long after its request was read. @default 20 */
  delayMs?: number;
  /** Buckets that exist from the start (others are made with CreateBucket). @default [] */
  buckets?: string[];
}

export interface StoredObject {
  body: Buffer;
  etag: string;
  contentType: string | undefined;
  metadata: Record<string, string>;
  lastModified: Date;
}

export interface S3LatencyEndpoint {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** The delay every answer waits; may be changed between requests. */
  delayMs: number;
  /**
   * Requests answered, by operation name (`PutObject`, `UploadPart`, ...), and under
   * `aws-chunked` the bodies that arrived with that framing.
   */
  readonly counts: Readonly<Record<string, number>>;
  createBucket(name: string): void;
  object(bucket: string, key: string): StoredObject | undefined;
  /** Keys in a bucket under a prefix, in S3's (byte) order. */
  keys(bucket: string, prefix?: string): string[];
  /** Forgets every object under a prefix (to bound memory between bench runs); returns how many. */
  deletePrefix(bucket: string, prefix: string): number;
  close(): Promise<void>;
}

interface Upload {
  bucket: string;
  key: string;
  contentType: string | undefined;
  metadata: Record<string, string>;
  parts: Map<number, { body: Buffer; etag: string }>;
}

interface Reply {
  status: number;
  headers?: Record<string, string>;
  body?: Buffer | string;
}

const xmlEscape = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');

const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex');

function xml(body: string, status = 200): Reply {
  return { status, headers: { 'content-type': 'application/xml' }, body: `<?xml version="1.0" encoding="UTF-8"?>\n${body}` };
}

function errorReply(status: number, code: string, message: string): Reply {
  return xml(`<Error><Code>${code}</Code><Message>${xmlEscape(message)}</Message><RequestId>LATENCYREQUEST</RequestId></Error>`, status);
}

function userMetadata(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (name.startsWith('x-amz-meta-') && typeof value === 'string') out[name.slice('x-amz-meta-'.length)] = value;
  }
  return out;
}

function objectHeaders(o: StoredObject): Record<string, string> {
  const headers: Record<string, string> = {
    etag: o.etag,
    'last-modified': o.lastModified.toUTCString(),
    'content-length': String(o.body.length),
    'content-type': o.contentType ?? 'binary/octet-stream',
  };
  for (const [k, v] of Object.entries(o.metadata)) headers[`x-amz-meta-${k}`] = v;
  return headers;
}

async function readBody(req: IncomingMessage, count: (what: string) => void): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
  const raw = Buffer.concat(chunks);
  if (!isAwsChunked(req.headers)) return raw;
  count('aws-chunked');
  const decoded = decodeAwsChunked(raw);
  const declared = req.headers['x-amz-decoded-content-length'];
  if (typeof declared === 'string' && Number(declared) !== decoded.length) {
    throw new Error(`aws-chunked: x-amz-decoded-content-length ${declared} but ${decoded.length} bytes`);
  }
  return decoded;
}

/** The part numbers and ETags of a CompleteMultipartUpload body, in the order given. */
export function parseCompletedParts(text: string): Array<{ partNumber: number; etag: string }> {
  const parts: Array<{ partNumber: number; etag: string }> = [];
  for (const m of text.matchAll(/<Part>([\s\S]*?)<\/Part>/g)) {
    const inner = m[1]!;
    const partNumber = Number(/<PartNumber>\s*(\d+)\s*<\/PartNumber>/.exec(inner)?.[1]);
    const etag = (/<ETag>([\s\S]*?)<\/ETag>/.exec(inner)?.[1] ?? '').replace(/&quot;/g, '"').trim();
    parts.push({ partNumber, etag });
  }
  return parts;
}

export async function startS3LatencyEndpoint(options: S3LatencyEndpointOptions = {}): Promise<S3LatencyEndpoint> {
  const buckets = new Map<string, Map<string, StoredObject>>();
  const uploads = new Map<string, Upload>();
  const counts: Record<string, number> = {};
  let nextUpload = 1;
  for (const b of options.buckets ?? []) buckets.set(b, new Map());

  const count = (operation: string): void => {
    counts[operation] = (counts[operation] ?? 0) + 1;
  };

  const list = (bucket: Map<string, StoredObject>, q: URLSearchParams, v2: boolean): Reply => {
    const prefix = q.get('prefix') ?? '';
    const maxKeys = Math.min(MAX_LIST_KEYS, Number(q.get('max-keys') ?? MAX_LIST_KEYS));
    const after = v2 ? (q.get('continuation-token') ?? q.get('start-after') ?? '') : (q.get('marker') ?? '');
    const keys = [...bucket.keys()].filter((k) => k.startsWith(prefix) && compareKeys(k, after) > 0).sort(compareKeys);
    const page = keys.slice(0, maxKeys);
    const truncated = keys.length > page.length;
    const contents = page
      .map((k) => {
        const o = bucket.get(k)!;
        return `<Contents><Key>${xmlEscape(k)}</Key><LastModified>${o.lastModified.toISOString()}</LastModified><ETag>${xmlEscape(o.etag)}</ETag><Size>${o.body.length}</Size><StorageClass>STANDARD</StorageClass></Contents>`;
      })
      .join('');
    const name = `<Name>${xmlEscape(q.get('bucket-name') ?? '')}</Name><Prefix>${xmlEscape(prefix)}</Prefix><MaxKeys>${maxKeys}</MaxKeys>`;
    const tail = v2
      ? `<KeyCount>${page.length}</KeyCount>${truncated ? `<NextContinuationToken>${xmlEscape(page.at(-1)!)}</NextContinuationToken>` : ''}`
      : `<Marker>${xmlEscape(after)}</Marker>${truncated ? `<NextMarker>${xmlEscape(page.at(-1)!)}</NextMarker>` : ''}`;
    return xml(`<ListBucketResult>${name}${tail}<IsTruncated>${truncated}</IsTruncated>${contents}</ListBucketResult>`);
  };

  const handle = async (req: IncomingMessage): Promise<Reply> => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const [, bucketName = '', ...rest] = url.pathname.split('/');
    const bucketId = decodeURIComponent(bucketName);
    const key = rest.map((s) => decodeURIComponent(s)).join('/');
    const q = url.searchParams;
    const method = req.method ?? 'GET';
    const body = await readBody(req, count);

    if (key === '') {
      if (method === 'PUT') {
        count('CreateBucket');
        if (!buckets.has(bucketId)) buckets.set(bucketId, new Map());
        return { status: 200, headers: { location: `/${bucketId}` } };
      }
      const bucket = buckets.get(bucketId);
      if (bucket === undefined) return errorReply(404, 'NoSuchBucket', 'The specified bucket does not exist');
      if (method === 'GET') {
        const v2 = q.get('list-type') === '2';
        count(v2 ? 'ListObjectsV2' : 'ListObjects');
        q.set('bucket-name', bucketId);
        return list(bucket, q, v2);
      }
      return errorReply(501, 'NotImplemented', `${method} on a bucket is not modelled`);
    }

    const bucket = buckets.get(bucketId);
    if (bucket === undefined) return errorReply(404, 'NoSuchBucket', 'The specified bucket does not exist');
    const claimed = req.headers['x-amz-checksum-sha256'];
    if (method === 'PUT' && typeof claimed === 'string' && createHash('sha256').update(body).digest('base64') !== claimed) {
      count('BadDigest');
      return errorReply(400, 'BadDigest', 'The SHA256 you specified did not match the calculated checksum.');
    }
    const existsGuard = (): Reply | undefined =>
      req.headers['if-none-match'] === '*' && bucket.has(key)
        ? errorReply(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold')
        : undefined;

    if (method === 'PUT' && q.has('partNumber')) {
      count('UploadPart');
      const upload = uploads.get(q.get('uploadId') ?? '');
      if (upload === undefined) return errorReply(404, 'NoSuchUpload', 'The specified upload does not exist');
      const etag = `"${md5(body)}"`;
      upload.parts.set(Number(q.get('partNumber')), { body, etag });
      return { status: 200, headers: { etag } };
    }
    if (method === 'PUT') {
      count('PutObject');
      if (req.headers['x-amz-copy-source'] !== undefined) return errorReply(501, 'NotImplemented', 'CopyObject is not modelled');
      const refused = existsGuard();
      if (refused !== undefined) return refused;
      const etag = `"${md5(body)}"`;
      bucket.set(key, { body, etag, contentType: req.headers['content-type'], metadata: userMetadata(req), lastModified: new Date() });
      return { status: 200, headers: { etag } };
    }
    if (method === 'POST' && q.has('uploads')) {
      count('CreateMultipartUpload');
      const uploadId = `latency-upload-${nextUpload++}`;
      uploads.set(uploadId, { bucket: bucketId, key, contentType: req.headers['content-type'], metadata: userMetadata(req), parts: new Map() });
      return xml(
        `<InitiateMultipartUploadResult><Bucket>${xmlEscape(bucketId)}</Bucket><Key>${xmlEscape(key)}</Key><UploadId>${uploadId}</UploadId></InitiateMultipartUploadResult>`,
      );
    }
    if (method === 'POST' && q.has('uploadId')) {
      count('CompleteMultipartUpload');
      const uploadId = q.get('uploadId')!;
      const upload = uploads.get(uploadId);
      if (upload === undefined || upload.bucket !== bucketId || upload.key !== key) {
        return errorReply(404, 'NoSuchUpload', 'The specified upload does not exist');
      }
      const refused = existsGuard();
      if (refused !== undefined) return refused;
      const listed = parseCompletedParts(body.toString('utf8'));
      if (listed.length === 0) return errorReply(400, 'MalformedXML', 'no parts listed');
      const bodies: Buffer[] = [];
      let previous = 0;
      for (const p of listed) {
        const part = upload.parts.get(p.partNumber);
        if (part === undefined || part.etag !== p.etag) return errorReply(400, 'InvalidPart', `part ${p.partNumber} was not uploaded as listed`);
        if (p.partNumber <= previous) return errorReply(400, 'InvalidPartOrder', 'parts must be listed in ascending order');
        previous = p.partNumber;
        bodies.push(part.body);
      }
      const whole = Buffer.concat(bodies);
      const declared = req.headers['x-amz-mp-object-size'];
      if (typeof declared === 'string' && Number(declared) !== whole.length) {
        return errorReply(400, 'InvalidRequest', `x-amz-mp-object-size ${declared} does not match ${whole.length}`);
      }
      const etag = `"${md5(Buffer.from(listed.map((p) => upload.parts.get(p.partNumber)!.etag.slice(1, -1)).join(''), 'hex'))}-${listed.length}"`;
      bucket.set(key, { body: whole, etag, contentType: upload.contentType, metadata: upload.metadata, lastModified: new Date() });
      uploads.delete(uploadId);
      return xml(
        `<CompleteMultipartUploadResult><Bucket>${xmlEscape(bucketId)}</Bucket><Key>${xmlEscape(key)}</Key><ETag>${xmlEscape(etag)}</ETag></CompleteMultipartUploadResult>`,
      );
    }
    if (method === 'DELETE' && q.has('uploadId')) {
      count('AbortMultipartUpload');
      if (!uploads.delete(q.get('uploadId')!)) return errorReply(404, 'NoSuchUpload', 'The specified upload does not exist');
      return { status: 204 };
    }
    if (method === 'DELETE') {
      count('DeleteObject');
      bucket.delete(key);
      return { status: 204 };
    }
    if (method === 'HEAD' || method === 'GET') {
      count(method === 'HEAD' ? 'HeadObject' : 'GetObject');
      const o = bucket.get(key);
      if (o === undefined) return errorReply(404, 'NoSuchKey', 'The specified key does not exist.');
      return { status: 200, headers: objectHeaders(o), body: o.body };
    }
    return errorReply(501, 'NotImplemented', `${method} is not modelled`);
  };

  const endpoint: { delayMs: number } = { delayMs: options.delayMs ?? DEFAULT_S3_LATENCY_MS };
  const answer = (req: IncomingMessage, res: ServerResponse, reply: Reply): void => {
    const head = req.method === 'HEAD';
    const body = reply.body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(reply.body) ? reply.body : Buffer.from(reply.body);
    res.writeHead(reply.status, {
      'x-amz-request-id': 'LATENCYREQUEST',
      'content-length': String(body.length),
      ...reply.headers,
    });
    res.end(head ? undefined : body);
  };
  const server: Server = createServer((req, res) => {
    handle(req)
      .catch((error: unknown) => errorReply(500, 'InternalError', error instanceof Error ? error.message : String(error)))
      .then((reply) => {
        if (endpoint.delayMs <= 0) answer(req, res, reply);
        else setTimeout(() => answer(req, res, reply), endpoint.delayMs);
      })
      .catch(() => res.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    get delayMs() {
      return endpoint.delayMs;
    },
    set delayMs(ms: number) {
      endpoint.delayMs = ms;
    },
    counts,
    createBucket: (name) => {
      if (!buckets.has(name)) buckets.set(name, new Map());
    },
    object: (bucket, key) => buckets.get(bucket)?.get(key),
    keys: (bucket, prefix = '') => [...(buckets.get(bucket)?.keys() ?? [])].filter((k) => k.startsWith(prefix)).sort(compareKeys),
    deletePrefix: (bucket, prefix) => {
      const b = buckets.get(bucket);
      let n = 0;
      for (const k of [...(b?.keys() ?? [])]) if (k.startsWith(prefix) && b!.delete(k)) n++;
      return n;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** S3 lists keys in the order of their UTF-8 bytes. */
function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
