/**
 * The part of iconv-lite's API libmime uses (getCodec, decode, encodingExists, getDecoder),
 * on text-decoders.ts. Only the Lambda bundles use it, in place of iconv-lite.
 */
import { type Charset, type ChunkDecoder, resolveCharset } from './text-decoders.js';

interface Codec {
  /** libmime compares decoders by identity; one per charset. */
  readonly decoder: Charset;
}

const codecs = new WeakMap<Charset, Codec>();

function getCodec(name: string): Codec {
  const found = resolveCharset(name);
  if (found === undefined) throw new Error(`Encoding not recognized: '${name}'`);
  let codec = codecs.get(found);
  if (codec === undefined) codecs.set(found, (codec = { decoder: found }));
  return codec;
}

function toBytes(input: Uint8Array | string): Uint8Array {
  return typeof input === 'string' ? Buffer.from(input, 'binary') : input;
}

function decode(input: Uint8Array | string, name: string): string {
  const decoder = getCodec(name).decoder.createDecoder();
  return decoder.write(toBytes(input)) + (decoder.end() ?? '');
}

function encodingExists(name: string): boolean {
  return resolveCharset(name) !== undefined;
}

function getDecoder(name: string): ChunkDecoder {
  return getCodec(name).decoder.createDecoder();
}

export default { getCodec, decode, encodingExists, getDecoder };
