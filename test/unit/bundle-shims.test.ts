/**
 * The Lambda bundles decode charsets with lambdas/bundle-shims/ (Node's TextDecoder) instead of
 * iconv-lite and encoding-japanese. These tests hold the shims to the libraries: the same text
 * for the charsets mail is written in, whole and fed in pieces; and the metadata extractor,
 * bundled with the Lambda aliases, gives the same metadata as from source for every corpus
 * message.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import encodingJapanese from 'encoding-japanese';
import iconv from 'iconv-lite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lambdaBundleAliases } from '../../infra/constructs/lambda-bundle.js';
import japaneseShim from '../../lambdas/bundle-shims/encoding-japanese.js';
import iconvShim from '../../lambdas/bundle-shims/iconv-lite.js';
import { readMetadata } from '../../lib/drain/metadata.js';
import { CORPUS, OVER_LIMITS, prng } from '../../testkit/fixtures/mail-corpus.js';

const ROOT = resolve(import.meta.dirname, '..', '..');

const TEXT = 'Grüße, Привет, Łódź, 日本語のテスト, 你好, 中文, 한국, €“ok”, ĀĞİŞ, ½ ok 123';

/** Charsets, and the part of TEXT each can write. */
const CHARSETS: [string, string][] = [
  ['windows-1252', 'Grüße, €“ok”, ½ ok 123'],
  ['windows-1250', 'Łódź, Grüße'],
  ['windows-1251', 'Привет, 123'],
  ['windows-1254', 'ĞİŞ Grüße'],
  ['windows-874', 'ok 123'],
  ['ISO-8859-2', 'Łódź, Grüße'],
  ['ISO-8859-5', 'Привет'],
  ['ISO-8859-7', 'αβγ'],
  ['ISO-8859-15', '€uro Grüße'],
  ['KOI8-R', 'Привет'],
  ['KOI8-U', 'Привіт'],
  ['Shift_JIS', '日本語のテスト ｱｲｳ'],
  ['EUC-JP', '日本語のテスト'],
  ['GBK', '你好, 中文'],
  ['gb18030', '你好, 中文, €, Ā, 😀'],
  ['Big5', '中文'],
  ['EUC-KR', '한국'],
  ['UTF-16LE', TEXT],
  ['UTF-16BE', TEXT],
  ['UTF-16', TEXT],
  ['UTF-32LE', `${TEXT} 😀`],
  ['UTF-32BE', `${TEXT} 😀`],
  ['macintosh', 'Grüße'],
];

/** Every byte, and runs of random bytes: what a broken or hostile header holds. */
const noise = (seed: number): Buffer => {
  const next = prng(seed);
  return Buffer.from(Array.from({ length: 300 }, (_, i) => (i < 256 ? i : Math.floor(next() * 256))));
};

describe('the iconv-lite shim', () => {
  for (const [charset, text] of CHARSETS) {
    it(`${charset}: the same text as iconv-lite, whole and in pieces`, () => {
      const bytes = iconv.encode(text, charset);
      expect(iconvShim.decode(bytes, charset)).toBe(iconv.decode(bytes, charset));
      expect(iconvShim.decode(bytes, charset)).toBe(text);
      const decoder = iconvShim.getDecoder(charset);
      let streamed = '';
      for (const byte of bytes) streamed += decoder.write(Buffer.from([byte]));
      expect(streamed + (decoder.end() ?? '')).toBe(text);
    });
  }

  const singleByte = ['windows-1250', 'windows-1251', 'windows-1252', 'windows-1253', 'windows-1254', 'windows-1255', 'windows-1256', 'windows-1257', 'windows-1258', 'windows-874'];
  // Node 20's ICU knows neither ISO-8859-16 nor x-mac-cyrillic: in the Lambda they decode as
  // UTF-8, as libmime decodes any charset it does not know.
  const isoLatin = ['2', '3', '4', '5', '6', '7', '8', '10', '13', '14', '15'].map((n) => `ISO-8859-${n}`);
  for (const charset of [...singleByte, ...isoLatin, 'KOI8-R', 'KOI8-U', 'IBM866', 'macintosh']) {
    it(`${charset}: every byte value decodes as iconv-lite decodes it`, () => {
      const bytes = noise(1);
      expect(iconvShim.decode(bytes, charset)).toBe(iconv.decode(bytes, charset));
    });
  }

  // Multi-byte charsets agree on text (above) and on the ASCII range; on invalid sequences
  // ICU and iconv-lite place their U+FFFD differently, and both are documented as lossy there.
  for (const charset of ['Shift_JIS', 'EUC-JP', 'GBK', 'gb18030', 'Big5', 'EUC-KR']) {
    it(`${charset}: every ASCII byte decodes as iconv-lite decodes it`, () => {
      const bytes = Buffer.from(Array.from({ length: 128 }, (_, i) => i));
      expect(iconvShim.decode(bytes, charset)).toBe(iconv.decode(bytes, charset));
    });
  }

  it('names resolve as iconv-lite resolves them; one codec per charset; unknown names are refused', () => {
    for (const name of ['cp1251', 'WINDOWS1251', 'win-1251', 'Shift-JIS', 'sjis', 'utf8', 'UTF_16le', 'ucs2', 'ks_c_5601-1987']) {
      expect(iconvShim.encodingExists(name), name).toBe(iconv.encodingExists(name));
    }
    expect(iconvShim.getCodec('cp1251')).toBe(iconvShim.getCodec('windows-1251'));
    expect(iconvShim.getCodec('utf7')).toBe(iconvShim.getCodec('unicode-1-1-utf-7'));
    expect(iconvShim.getCodec('utf7')).not.toBe(iconvShim.getCodec('utf-8'));
    expect(iconvShim.encodingExists('x-no-such-charset')).toBe(false);
    expect(() => iconvShim.decode(Buffer.from('a'), 'x-no-such-charset')).toThrow(/not recognized/);
  });

  it('UTF-16 and UTF-32 without a byte order: a BOM decides, else the same guess as iconv-lite', () => {
    for (const [charset, encoded] of [
      ['UTF-16', iconv.encode('abc ü', 'utf-16be')],
      ['UTF-16', iconv.encode('abc ü', 'utf-16le')],
      ['UTF-16', Buffer.concat([Buffer.from([0xfe, 0xff]), iconv.encode('日本', 'utf-16be')])],
      ['UTF-32', iconv.encode('abc 😀', 'utf-32be')],
      ['UTF-32', Buffer.concat([Buffer.from([0xff, 0xfe, 0, 0]), iconv.encode('日本', 'utf-32le')])],
    ] as const) {
      expect(iconvShim.decode(encoded, charset)).toBe(iconv.decode(encoded, charset));
    }
  });
});

describe('the encoding-japanese shim', () => {
  const japanese = '日本語のテスト、東京都千代田区 ｱｲｳｴｵ 123';
  for (const [from, to] of [
    ['ISO-2022-JP', 'JIS'],
    ['JIS', 'JIS'],
    ['EUCJP', 'EUCJP'],
  ] as const) {
    it(`${from}: the same text as encoding-japanese`, () => {
      const text = to === 'JIS' ? japanese.replace(/[ｱ-ｵ]/g, '') : japanese; // ISO-2022-JP has no half-width kana
      const bytes = Buffer.from(encodingJapanese.convert(encodingJapanese.stringToCode(text), { to, from: 'UNICODE' }));
      const options = { to: 'UNICODE', from, type: 'string' } as const;
      expect(japaneseShim.convert(bytes, options)).toBe(encodingJapanese.convert(bytes, options));
      expect(japaneseShim.convert(bytes, options)).toBe(text);
    });
  }
});

describe('the metadata extractor as the Lambda bundle builds it', () => {
  let dir: string;
  let bundled: typeof readMetadata;
  let inputs: string[];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'popdrain-shims-'));
    const outfile = join(dir, 'metadata.mjs');
    const result = await build({
      entryPoints: [join(ROOT, 'lib', 'drain', 'metadata.ts')],
      outfile,
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'esm',
      mainFields: ['module', 'main'],
      banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
      alias: lambdaBundleAliases(ROOT),
      metafile: true,
      logLevel: 'error',
    });
    inputs = Object.keys(result.metafile.inputs);
    ({ readMetadata: bundled } = (await import(pathToFileURL(outfile).href)) as { readMetadata: typeof readMetadata });
  }, 60_000);

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('holds neither iconv-lite nor encoding-japanese, and one copy of libmime', () => {
    expect(inputs.filter((f) => /node_modules\/(iconv-lite|encoding-japanese)\//.test(f))).toEqual([]);
    expect(inputs.filter((f) => f.includes('lambdas/bundle-shims/'))).toHaveLength(3);
    expect(inputs.filter((f) => /node_modules\/libmime\/dist\/esm\//.test(f))).toEqual([]);
  });

  for (const entry of [...CORPUS, ...OVER_LIMITS]) {
    it(`${entry.name}: the same metadata as from source`, async () => {
      expect(await bundled([entry.message], entry.options)).toEqual(await readMetadata([entry.message], entry.options));
    });
  }
});
