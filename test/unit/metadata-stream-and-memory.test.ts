// The metadata extractor's stream (backpressure, destruction, result()) and its memory, which
// stays bounded whatever the shape of the message. The rest: metadata.test.ts.
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { MessageMetadata } from '../../lib/drain/events.js';
import { createMetadataExtractor } from '../../lib/drain/metadata.js';
import * as corpus from '../../testkit/fixtures/mail-corpus.js';
import { extract } from '../support/metadata-extraction.js';

describe('the stream', () => {
  it('applies backpressure while the MIME walk catches up, and holds little', async () => {
    const extractor = createMetadataExtractor();
    extractor.stream.write('Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/pdf\r\n\r\n');
    const line = Buffer.from(`${'x'.repeat(76)}\r\n`.repeat(800));
    let refused = 0;
    let maxBuffered = 0;
    for (let i = 0; i < 200; i++) {
      if (!extractor.stream.write(line)) {
        refused++;
        maxBuffered = Math.max(maxBuffered, extractor.stream.writableLength);
        await once(extractor.stream, 'drain');
      }
    }
    extractor.stream.end('\r\n--b--\r\n');
    const metadata = await extractor.result();
    expect(refused).toBeGreaterThan(0);
    expect(maxBuffered).toBeLessThanOrEqual(extractor.stream.writableHighWaterMark + line.length);
    expect(metadata.attachments).toEqual([{ contentType: 'application/pdf', size: 200 * line.length }]);
  });

  it('rejects result() when the stream is destroyed before its end, and never throws unasked', async () => {
    const asked = createMetadataExtractor();
    asked.stream.write('Subject: x\r\n');
    const result = asked.result();
    asked.stream.destroy();
    await expect(result).rejects.toThrow(/destroyed before/);

    const unasked = createMetadataExtractor();
    unasked.stream.on('error', () => {}); // destroy(error) emits it, as for any stream
    unasked.stream.write('Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n');
    unasked.stream.destroy(new Error('network gone'));
    await new Promise((resolve) => setTimeout(resolve, 20)); // an unhandled rejection would fail the run
    await expect(unasked.result()).rejects.toThrow('network gone');
  });

  it('gives the same answer to every result() call, before and after the end', async () => {
    const extractor = createMetadataExtractor();
    const early = extractor.result();
    extractor.stream.end(corpus.simpleText.message);
    expect(await early).toEqual(corpus.simpleText.expected);
    expect(await extractor.result()).toBe(await early);
  });
});

// -------------------------------------------------------------------------------------------

describe('memory stays bounded whatever the shape', () => {
  const MB = 1024 * 1024;

  /** `total` bytes of `line` repeated, in 64 KiB chunks made once. */
  function* repeated(line: string, total: number): Generator<Buffer> {
    const block = Buffer.from(line.repeat(Math.ceil((64 * 1024) / line.length)));
    for (let left = total; left > 0; left -= block.length) yield block.subarray(0, Math.min(left, block.length));
  }

  function* message(...parts: Array<string | Iterable<Buffer>>): Generator<Buffer> {
    for (const part of parts) {
      if (typeof part === 'string') yield Buffer.from(part);
      else yield* part;
    }
  }

  /** Peak RSS growth while extracting, sampled at every chunk. */
  async function peakGrowth(chunks: Iterable<Buffer>): Promise<{ growthMb: number; metadata: MessageMetadata }> {
    const before = process.memoryUsage.rss();
    let peak = before;
    const sampled = (function* () {
      for (const chunk of chunks) {
        peak = Math.max(peak, process.memoryUsage.rss());
        yield chunk;
      }
    })();
    const metadata = await extract(sampled);
    peak = Math.max(peak, process.memoryUsage.rss());
    return { growthMb: (peak - before) / MB, metadata };
  }

  const b64Line = `${Buffer.alloc(57, 0xab).toString('base64')}\r\n`;
  const textLine = 'The quick brown fox jumps over the lazy dog. 0123456789 abcdefghij\r\n';

  it('a 50 MB text body', async () => {
    const { growthMb, metadata } = await peakGrowth(message('Subject: big\r\n\r\n', repeated(textLine, 50 * MB)));
    expect(metadata).toEqual({ subject: 'big', attachments: [] });
    expect(growthMb).toBeLessThan(100);
  });

  it('a 50 MB base64 attachment (decoded size exact)', async () => {
    const lines = Math.ceil((50 * MB) / b64Line.length);
    const { growthMb, metadata } = await peakGrowth(
      message(
        'Subject: att\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n',
        '--b\r\nContent-Type: application/octet-stream; name=a.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n',
        repeated(b64Line, lines * b64Line.length),
        '\r\n--b--\r\n',
      ),
    );
    expect(metadata.attachments).toEqual([{ filename: 'a.bin', contentType: 'application/octet-stream', size: lines * 57 }]);
    expect(growthMb).toBeLessThan(100);
  }, 120_000);

  it('a text part of 10 MB inside a multipart, on one line', async () => {
    const { growthMb, metadata } = await peakGrowth(
      message('Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/pdf\r\n\r\n', repeated('x', 10 * MB), '\r\n--b--\r\n'),
    );
    expect(metadata.attachments).toEqual([{ contentType: 'application/pdf', size: 10 * MB }]);
    expect(growthMb).toBeLessThan(100);
  }, 60_000);

  it('10,000 tiny parts', async () => {
    const part = '--b\r\nContent-Type: text/plain\r\n\r\nx\r\n';
    const { growthMb, metadata } = await peakGrowth(
      message('Content-Type: multipart/mixed; boundary=b\r\n\r\n', repeated(part, 10_000 * part.length), '--b--\r\n'),
    );
    expect(metadata).toEqual({ attachments: [] });
    expect(growthMb).toBeLessThan(100);
  }, 60_000);
});
