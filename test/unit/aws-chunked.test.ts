import { describe, expect, it } from 'vitest';
import { decodeAwsChunked, isAwsChunked } from '../../testkit/aws/aws-chunked.js';

const frame = (chunks: string[], trailer = 'x-amz-checksum-crc32:AAAAAA==\r\n'): Buffer =>
  Buffer.from(`${chunks.map((c) => `${Buffer.byteLength(c).toString(16)};chunk-signature=ab12\r\n${c}\r\n`).join('')}0\r\n${trailer}\r\n`);

describe('aws-chunked decoding', () => {
  it('returns the payload without sizes, signatures and trailers', () => {
    expect(decodeAwsChunked(frame(['hello ', 'world\r\n', ''.padEnd(300, 'z')])).toString()).toBe(`hello world\r\n${''.padEnd(300, 'z')}`);
    expect(decodeAwsChunked(Buffer.from('3\r\nabc\r\n0\r\n\r\n')).toString()).toBe('abc');
    expect(decodeAwsChunked(frame([])).length).toBe(0);
  });

  it('refuses malformed framing', () => {
    expect(() => decodeAwsChunked(Buffer.from('5\r\nabc\r\n0\r\n\r\n'))).toThrow(/shorter|CRLF/);
    expect(() => decodeAwsChunked(Buffer.from('zz\r\nabc\r\n'))).toThrow(/bad chunk size/);
    expect(() => decodeAwsChunked(Buffer.from('3\r\nabcXY0\r\n\r\n'))).toThrow(/no CRLF after a chunk/);
    expect(() => decodeAwsChunked(Buffer.from('3\r\nabc\r\n'))).toThrow(/no last chunk/);
  });

  it('is recognised by content encoding or by a streaming payload hash', () => {
    expect(isAwsChunked({ 'content-encoding': 'aws-chunked' })).toBe(true);
    expect(isAwsChunked({ 'content-encoding': 'gzip, aws-chunked' })).toBe(true);
    expect(isAwsChunked({ 'x-amz-content-sha256': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER' })).toBe(true);
    expect(isAwsChunked({ 'content-encoding': 'gzip', 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' })).toBe(false);
  });
});
