/**
 * The part of encoding-japanese's API libmime uses: `convert(bytes, { to: 'UNICODE', from,
 * type: 'string' })` for ISO-2022-JP (JIS) and EUC-JP, on Node's `TextDecoder`. Only the Lambda
 * bundles use it, in place of encoding-japanese; anything else throws, and libmime then falls
 * back to its iconv-lite path (the iconv-lite shim).
 */
import { canonicalName, resolveCharset } from './text-decoders.js';

interface ConvertOptions {
  to: string;
  from: string;
  type?: string;
}

function japaneseLabel(from: string): string | undefined {
  const name = canonicalName(from);
  if (name.startsWith('jis') || name.startsWith('iso2022jp')) return 'iso-2022-jp';
  if (name.startsWith('eucjp')) return 'euc-jp';
  if (name === 'sjis' || name === 'shiftjis') return 'shift_jis';
  return undefined;
}

function convert(data: Uint8Array, options: ConvertOptions): string {
  const label = options.to === 'UNICODE' && options.type === 'string' ? japaneseLabel(options.from) : undefined;
  const charset = label === undefined ? undefined : resolveCharset(label);
  if (charset === undefined) throw new Error(`encoding-japanese shim: unsupported conversion from ${options.from} to ${options.to}`);
  const decoder = charset.createDecoder();
  return decoder.write(data) + (decoder.end() ?? '');
}

export default { convert };
