// The metadata extractor: the mail libraries it loads on first need, what it reads of real
// messages however they are fed, the limits that keep the event small, and its parts (decoded
// sizes, the address shortcut, dates). The stream and its memory: metadata-stream-and-memory.test.ts.
import { once } from 'node:events';
import libbase64 from 'libbase64';
import libqp from 'libqp';
import addressparser from 'nodemailer/lib/addressparser';
import { describe, expect, it } from 'vitest';
import { parseSimple } from '../../lib/drain/address-list.js';
import { createDecodedSizeCounter } from '../../lib/drain/decoded-size.js';
import { MAX_EVENT_ENTRY_BYTES, type EmailStoredDetail } from '../../lib/drain/events.js';
import { LIBRARIES_NOT_LOADED, mailLibraries } from '../../lib/drain/mail-libraries.js';
import { parseMailDate } from '../../lib/drain/mail-date.js';
import {
  createMetadataExtractor,
  readMetadata,
  MAX_METADATA_JSON_BYTES,
  MAX_MIME_DEPTH,
  MAX_NAME_CHARS,
  MAX_SUBJECT_CHARS,
} from '../../lib/drain/metadata.js';
import * as corpus from '../../testkit/fixtures/mail-corpus.js';
import { base64Lines, CORPUS, crlf, OVER_LIMITS, prng, randomBytes } from '../../testkit/fixtures/mail-corpus.js';
import { extract, extractEveryWay } from '../support/metadata-extraction.js';

function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value));
}

// -------------------------------------------------------------------------------------------

describe('mail libraries load on first need', () => {
  // Runs first in this file (a fresh process): nothing has loaded the libraries yet.
  it('reads a plain text message without loading them', async () => {
    expect(await extractEveryWay(corpus.simpleText.message)).toEqual(corpus.simpleText.expected);
    expect(() => mailLibraries()).toThrow(LIBRARIES_NOT_LOADED);
  });

  it('loads them in the middle of a message, fed byte by byte, and reads it right', async () => {
    expect(await extract(corpus.encodedWords.message, 'bytes')).toEqual(corpus.encodedWords.expected);
    expect(mailLibraries().libmime).toBeDefined();
  });
});

describe('metadata of real messages', () => {
  for (const entry of CORPUS) {
    it(`${entry.name}: the same however it is fed${entry.expected ? ', and as expected' : ''}`, async () => {
      const metadata = await extractEveryWay(entry.message);
      if (entry.expected) expect(metadata).toEqual(entry.expected);
      expect(Array.isArray(metadata.attachments)).toBe(true);
      // Never an undefined-valued key (DynamoDB and JSON round trips would differ).
      expect(JSON.parse(JSON.stringify(metadata))).toEqual(metadata);
      expect(Object.values(metadata)).not.toContain(undefined);
    });
  }

  it('reads the first Message-ID, Date, From and Subject, every To and Cc', async () => {
    const message = Buffer.from(
      crlf(
        'Message-ID: first@example.com',
        'Message-ID: <second@example.com>',
        'From: one@example.com',
        'From: two@example.com',
        'To: a@example.com',
        'Subject: first',
        'To: b@example.com, c@example.com',
        'Subject: second',
        'Cc: d@example.com',
        'Cc: e@example.com',
        '',
        '',
      ),
    );
    expect(await extractEveryWay(message)).toEqual({
      messageId: '<first@example.com>',
      from: [{ address: 'one@example.com' }],
      to: [{ address: 'a@example.com' }, { address: 'b@example.com' }, { address: 'c@example.com' }],
      cc: [{ address: 'd@example.com' }, { address: 'e@example.com' }],
      subject: 'first',
      attachments: [],
    });
  });

  it('takes an encoded word in an address only when it decodes to a plain address', async () => {
    const message = Buffer.from(
      crlf(
        // a whole value that is one encoded word is a display name, as addressparser reads it
        `To: =?utf-8?B?${Buffer.from('ceo@bank.example').toString('base64')}?=`,
        'Cc: <=?utf-8?Q?ceo?=@bank.example>, Fake <=?utf-8?Q?a=20b=40c?=@x.example>',
        '',
        '',
      ),
    );
    const metadata = await extractEveryWay(message);
    expect(metadata.to).toEqual([{ name: 'ceo@bank.example' }]);
    expect(metadata.cc).toEqual([{ address: 'ceo@bank.example' }, { name: 'Fake' }]);
  });

  it('treats folded headers and odd spacing as mailsplit does', async () => {
    const message = Buffer.from(
      crlf('SUBJECT :  folded', '\tsubject  ', 'content-TYPE: text/plain;', ' charset="utf-8"', 'from:x@example.com', '', 'body'),
    );
    expect(await extractEveryWay(message)).toEqual({
      from: [{ address: 'x@example.com' }],
      subject: 'folded subject',
      attachments: [],
    });
  });

  it('counts an attachment whose boundary closes the message without a final line break', async () => {
    const data = randomBytes(1234, 9);
    const message = Buffer.from(
      crlf(
        'Content-Type: multipart/mixed; boundary=x',
        '',
        '--x',
        'Content-Type: application/octet-stream',
        'Content-Transfer-Encoding: base64',
        '',
        base64Lines(data),
        '--x--',
      ),
    );
    expect((await extractEveryWay(message)).attachments).toEqual([{ contentType: 'application/octet-stream', size: data.length }]);
  });

  it('refines application/octet-stream from the file name, and decodes RFC 2231 file names', async () => {
    const message = Buffer.from(
      crlf(
        'Content-Type: multipart/mixed; boundary=x',
        '',
        '--x',
        "Content-Type: application/octet-stream; name*=utf-8''r%C3%A9sum%C3%A9.pdf",
        '',
        'abc',
        '--x',
        'Content-Type: application/octet-stream',
        'Content-Disposition: attachment; filename="=?UTF-8?Q?=C3=A9t=C3=A9.png?="',
        '',
        'abcd',
        '--x--',
      ),
    );
    expect((await extractEveryWay(message)).attachments).toEqual([
      { filename: 'résumé.pdf', contentType: 'application/pdf', size: 3 },
      { filename: 'été.png', contentType: 'image/png', size: 4 },
    ]);
  });
});

describe('limits keep the event small', () => {
  for (const entry of OVER_LIMITS.filter((e) => e.expected)) {
    it(`${entry.name}: cut, and said so`, async () => {
      expect(await extractEveryWay(entry.message, entry.options)).toEqual(entry.expected);
    });
  }

  it('keeps the whole metadata within its JSON budget, even of control characters', async () => {
    const metadata = await extract(corpus.jsonBudget.message, 'whole', corpus.jsonBudget.options);
    expect(jsonBytes(metadata)).toBeLessThanOrEqual(MAX_METADATA_JSON_BYTES);
    expect(jsonBytes(metadata)).toBeGreaterThan(MAX_METADATA_JSON_BYTES - 4096); // cut no more than needed
    expect(metadata.subject).toBe('budget');
    expect(metadata.truncated).toEqual(['from', 'to', 'cc']);
    expect(metadata.to?.[0]).toEqual({ name: '\u0001'.repeat(MAX_NAME_CHARS), address: `To0${'x'.repeat(300)}@example.com` });
  });

  it('fits the largest metadata in an EventBridge entry, with the rest of the detail at its largest', async () => {
    const metadata = await extract(corpus.jsonBudget.message, 'whole', corpus.jsonBudget.options);
    const detail: EmailStoredDetail = {
      schemaVersion: 1,
      id: '00000000-0000-8000-8000-000000000000',
      mailboxId: 'm'.repeat(128),
      uidl: '~'.repeat(512),
      storage: { type: 's3', bucket: 'b'.repeat(63), key: 'k'.repeat(1024), versionId: 'v'.repeat(1024) },
      size: Number.MAX_SAFE_INTEGER,
      sha256: 'f'.repeat(64),
      storedAt: new Date().toISOString(),
      metadata,
      metadataError: '\u0001'.repeat(1000),
    };
    // as the EventBridge sink counts an entry: Source, DetailType, Detail (and Resources)
    const entryBytes = Buffer.byteLength('popdrain') + Buffer.byteLength('Email Stored') + jsonBytes(detail) + 2048;
    expect(entryBytes).toBeLessThan(MAX_EVENT_ENTRY_BYTES);
  });

  it('never splits a surrogate pair when cutting', async () => {
    const message = Buffer.from(`Subject: ${'a'.repeat(MAX_SUBJECT_CHARS - 1)}😀😀\r\n\r\n`, 'utf8');
    const metadata = await extract(message);
    expect(metadata.subject).toBe('a'.repeat(MAX_SUBJECT_CHARS - 1));
    expect(metadata.truncated).toEqual(['subject']);
  });

  it('drops a 5 MB header line', async () => {
    const metadata = await extract(
      (function* () {
        yield Buffer.from('From: a@example.com\r\nSubject: ');
        const block = Buffer.alloc(64 * 1024, 'y');
        for (let i = 0; i < 80; i++) yield block;
        yield Buffer.from('\r\nTo: b@example.com\r\n\r\nbody\r\n');
      })(),
    );
    expect(metadata).toEqual({
      from: [{ address: 'a@example.com' }],
      to: [{ address: 'b@example.com' }],
      attachments: [],
      truncated: ['headers'],
    });
  });

  it('stops walking MIME nested deeper than the limit, keeping what it found', async () => {
    const depth = MAX_MIME_DEPTH + 5;
    const lines: string[] = ['Content-Type: multipart/mixed; boundary=d0', ''];
    for (let i = 0; i < depth; i++) {
      lines.push(`--d${i}`);
      if (i === 0) lines.push('Content-Type: image/png', '', 'png', `--d${i}`);
      lines.push(`Content-Type: multipart/mixed; boundary=d${i + 1}`, '');
    }
    lines.push(`--d${depth}`, 'Content-Type: image/jpeg', '', 'jpeg');
    const metadata = await extractEveryWay(Buffer.from(crlf(...lines)));
    expect(metadata.attachments).toEqual([{ contentType: 'image/png', size: 3 }]);
    expect(metadata.truncated).toEqual(['attachments']);
  });

  it('gives up the walk when mailsplit refuses a part (a part header over the limit)', async () => {
    const message = Buffer.from(
      crlf(
        'Subject: refused',
        'Content-Type: multipart/mixed; boundary=b',
        '',
        '--b',
        'Content-Type: image/png',
        '',
        'png',
        '--b',
        `X-Huge: ${'z'.repeat(8000)}`,
        'Content-Type: image/gif',
        '',
        'gif',
        '--b--',
      ),
    );
    expect(await extractEveryWay(message, { maxHeaderBytes: 2048 })).toEqual({
      subject: 'refused',
      attachments: [{ contentType: 'image/png', size: 3 }],
      truncated: ['attachments'],
    });
  });

  it('reads hostile header values in linear time', async () => {
    // Each of these took seconds to minutes with a backtracking regular expression.
    const hostile = [
      `Content-Type: text/plain; charset=a${' '.repeat(200_000)}x`,
      `To: ${'a '.repeat(100_000)}x`,
      `To: <${'=?'.repeat(100_000)}@x>`,
      `To: g: ${Array.from({ length: 10_000 }, (_, i) => `a${i}@x.y (c)`).join(', ')};`,
      `Subject: ${'=?utf-8?q?a=C3=A9?= '.repeat(12_000)}`,
      `Date: 1 ${' '.repeat(200_000)}x`,
      `Date: ${'('.repeat(100_000)}`,
      `Message-ID: ${'<'.repeat(200_000)}`,
      `Subject: a${'\r\n b'.repeat(60_000)}`,
    ];
    for (const header of hostile) {
      const started = performance.now();
      await extract(Buffer.from(`${header}\r\n\r\nbody\r\n`));
      expect(performance.now() - started, header.slice(0, 40)).toBeLessThan(2000);
    }
  });

  it('rejects a maxHeaderBytes that is no size', () => {
    expect(() => createMetadataExtractor({ maxHeaderBytes: 10 })).toThrow(RangeError);
    expect(() => readMetadata([], { maxHeaderBytes: 10 })).toThrow(RangeError);
    expect(() => createMetadataExtractor({ maxHeaderBytes: Number.NaN })).toThrow(RangeError);
  });
});

describe('parts of the extractor', () => {
  it('counts decoded sizes exactly as libbase64 and libqp decode, however chunked', async () => {
    const alphabet = [...'=\r\n \t=AF0a9g=\r\n==  =3D=\u00ff+/QUJD-_'].map((c) => c.charCodeAt(0));
    const next = prng(42);
    const counted = (encoding: string, data: Buffer): number => {
      const counter = createDecodedSizeCounter(encoding);
      for (let i = 0; i < data.length; ) {
        const n = 1 + Math.floor(next() * 5);
        counter.write(data.subarray(i, i + n));
        i += n;
      }
      return counter.end();
    };
    for (let t = 0; t < 3000; t++) {
      const data = Buffer.alloc(Math.floor(next() * 60));
      for (let i = 0; i < data.length; i++) data[i] = next() < 0.1 ? Math.floor(next() * 256) : alphabet[Math.floor(next() * alphabet.length)]!;
      expect(counted('quoted-printable', data), JSON.stringify(data.toString('latin1'))).toBe(libqp.decode(data).length);
      const decoder = new libbase64.Decoder();
      let decoded = 0;
      decoder.on('data', (chunk: Buffer) => (decoded += chunk.length));
      decoder.end(data);
      await once(decoder, 'end');
      expect(counted('base64', data), JSON.stringify(data.toString('latin1'))).toBe(decoded);
      expect(counted('8bit', data)).toBe(data.length);
    }
  });

  it('reads addresses through its shortcut exactly as addressparser does', () => {
    const values = [
      'a@b.example',
      'Bench Sender <sender@example.com>',
      '"Bob B" <b@c.example>',
      '" Bob " <b@c.example>',
      'John Q. Public <jqp@x.example>',
      '=?utf-8?Q?Andr=C3=A9?= <a@b.example>',
      "O'Neil <o'neil@x.example>",
      'a.b+c@d-e.example',
      'x@y.example, z@w.example',
      'A <a@b.example>, b@c.example , "C" <c@d.example>',
      '"" <a@b.example>',
      '#hash <a@b.example>',
      'first last <FIRST.last@x.y>',
      '-a- <a@b.example>',
    ];
    for (const value of values) {
      const fast = parseSimple(value);
      expect(fast, value).toBeDefined();
      expect(fast, value).toEqual(addressparser(value, { flatten: true }).map(({ name, address }) => ({ name, address })));
    }
    // Shapes it must leave to addressparser
    expect(parseSimple('"Doe, John" <j@d.example>, x@y.example')).toEqual([
      { name: 'Doe, John', address: 'j@d.example' },
      { name: '', address: 'x@y.example' },
    ]);
    for (const value of ['"Doe \\"JD\\" John" <j@d.example>', 'Team: a@b.example;', 'a@b.example,,c@d.example', 'a@b.example (comment)', 'Name  Two <a@b.example>', 'José <j@e.example>', 'a=b@c.example', '<a@b.example>']) {
      expect(parseSimple(value), value).toBeUndefined();
    }
  });

  it('reads Date headers in their RFC 5322 forms, and nothing else as a date', () => {
    const cases: Array<[string, string | undefined]> = [
      ['Thu, 26 Nov 2026 12:00:00 +0000', '2026-11-26T12:00:00.000Z'],
      ['Thu, 26 Nov 2026 12:00:00 -0530', '2026-11-26T17:30:00.000Z'],
      ['26 Nov 2026 12:00 +0100', '2026-11-26T11:00:00.000Z'],
      ['Thu,  6 Nov 2026 12:00:00 +0000 (UTC)', '2026-11-06T12:00:00.000Z'],
      ['Thu, 26 Nov 26 12:00:00 EST', '2026-11-26T17:00:00.000Z'],
      ['Sun, 26 Dec 99 23:59:60 GMT', '1999-12-26T23:59:59.000Z'],
      ['Thu, 26 November 2026 12:00:00 CET', '2026-11-26T12:00:00.000Z'],
      ['Thu, 29 Feb 2024 12:00:00 +0000', '2024-02-29T12:00:00.000Z'],
      ['2026-11-26T12:00:00+01:00', '2026-11-26T11:00:00.000Z'],
      ['Thu Nov 26 12:00:00 2026', new Date('Thu Nov 26 12:00:00 2026').toISOString()],
      ['Thu, 29 Feb 2026 12:00:00 +0000', undefined],
      ['Thu, 26 Nov 2026 25:00:00 +0000', undefined],
      ['Thu, 26 Nov 2026 12:00:00 +0099', undefined],
      ['garbage 5', undefined],
      ['', undefined],
      [`Thu, 26 Nov 2026 12:00:00 +0000${' '.repeat(100_000)}x`, '2026-11-26T12:00:00.000Z'],
    ];
    for (const [value, iso] of cases) expect(parseMailDate(value), value.slice(0, 60)).toBe(iso);
  });
});
