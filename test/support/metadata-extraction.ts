/**
 * How the metadata tests (test/unit/metadata*.test.ts) feed a message to the extractor: whole, in
 * random small chunks or byte by byte, through its stream (as the engine does) and through
 * readMetadata.
 */
import { once } from 'node:events';
import { expect } from 'vitest';
import type { MessageMetadata } from '../../lib/drain/events.js';
import { createMetadataExtractor, readMetadata, type MetadataExtractorOptions } from '../../lib/drain/metadata.js';
import { prng } from '../../testkit/fixtures/mail-corpus.js';

export type Feeding = 'whole' | 'bytes' | { seed: number };

function* pieces(message: Buffer, feeding: Feeding): Generator<Buffer> {
  if (feeding === 'whole') {
    yield message;
    return;
  }
  if (feeding === 'bytes') {
    for (let i = 0; i < message.length; i++) yield message.subarray(i, i + 1);
    return;
  }
  const next = prng(feeding.seed);
  for (let i = 0; i < message.length; ) {
    const n = 1 + Math.floor(next() * 97);
    yield message.subarray(i, i + n);
    i += n;
  }
}

/** Feed the message as the engine does (honouring write() returning false), end, await. */
export async function extract(
  message: Buffer | Iterable<Buffer>,
  feeding: Feeding = 'whole',
  options?: MetadataExtractorOptions,
): Promise<MessageMetadata> {
  const extractor = createMetadataExtractor(options);
  const chunks = Buffer.isBuffer(message) ? pieces(message, feeding) : message;
  for (const chunk of chunks) {
    if (!extractor.stream.write(chunk)) await once(extractor.stream, 'drain');
  }
  extractor.stream.end();
  return extractor.result();
}

/**
 * Whole, in random small chunks (three ways), and byte by byte when small: all the same,
 * through the stream and through readMetadata (the message at hand in those chunks).
 */
export async function extractEveryWay(message: Buffer, options?: MetadataExtractorOptions): Promise<MessageMetadata> {
  const whole = await extract(message, 'whole', options);
  expect(await readMetadata([message], options)).toEqual(whole);
  for (const seed of [1, 2, 3]) {
    expect(await extract(message, { seed }, options)).toEqual(whole);
    expect(await readMetadata([...pieces(message, { seed })], options)).toEqual(whole);
  }
  if (message.length <= 64 * 1024) {
    expect(await extract(message, 'bytes', options)).toEqual(whole);
    expect(await readMetadata([...pieces(message, 'bytes')], options)).toEqual(whole);
  }
  return whole;
}
