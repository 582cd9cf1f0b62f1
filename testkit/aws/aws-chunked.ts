/**
 * The `aws-chunked` content encoding the AWS SDK uses for streamed bodies with checksums (and
 * for SigV4 streaming signatures): `<hex size>[;chunk-signature=...]\r\n<bytes>\r\n` per chunk,
 * a last chunk of size 0, then trailer lines (`x-amz-checksum-crc32:...`) and an empty line.
 * A stand-in that stores the raw body would keep that framing inside the object.
 */
import type { IncomingHttpHeaders } from 'node:http';

const CRLF = Buffer.from('\r\n');

/** True when a request's body is aws-chunked framed. */
export function isAwsChunked(headers: IncomingHttpHeaders): boolean {
  const encoding = headers['content-encoding'];
  const sha = headers['x-amz-content-sha256'];
  return (
    (typeof encoding === 'string' && encoding.split(',').some((e) => e.trim() === 'aws-chunked')) ||
    (typeof sha === 'string' && sha.startsWith('STREAMING-'))
  );
}

/**
 * The payload of an aws-chunked body, without its framing, chunk signatures and trailers.
 * Throws on a malformed body (a size that is not hex, a chunk shorter than its size, no CRLF
 * after a chunk, no last chunk).
 */
export function decodeAwsChunked(raw: Buffer): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = raw.indexOf(CRLF, at);
    if (eol === -1) throw new Error('aws-chunked: a chunk header without CRLF (no last chunk)');
    const sizeText = raw.toString('latin1', at, eol).split(';')[0]!.trim();
    if (!/^[0-9a-fA-F]+$/.test(sizeText)) throw new Error(`aws-chunked: bad chunk size "${sizeText.slice(0, 20)}"`);
    const size = Number.parseInt(sizeText, 16);
    at = eol + 2;
    if (size === 0) return Buffer.concat(out);
    if (at + size + 2 > raw.length) throw new Error('aws-chunked: a chunk shorter than its size');
    out.push(raw.subarray(at, at + size));
    at += size;
    if (raw[at] !== 0x0d || raw[at + 1] !== 0x0a) throw new Error('aws-chunked: no CRLF after a chunk');
    at += 2;
  }
}
