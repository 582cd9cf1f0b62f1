/**
 * Test messages for the metadata extractor (test/unit/metadata.test.ts) and the event schema
 * (test/unit/event-schema.test.ts): real-world shapes, each with the metadata it must give.
 * Built deterministically in memory; attachment contents are kept so decoded sizes are exact.
 */
import type { MessageMetadata } from '../../lib/drain/events.js';
import {
  MAX_ADDRESS_CHARS,
  MAX_CONTENT_TYPE_CHARS,
  MAX_FILENAME_CHARS,
  MAX_MESSAGE_ID_CHARS,
  MAX_NAME_CHARS,
  MAX_SUBJECT_CHARS,
  type MetadataExtractorOptions,
} from '../../lib/drain/metadata.js';

export interface CorpusMessage {
  name: string;
  message: Buffer;
  /** The metadata it must give; undefined where only "does not throw, same every way" is known. */
  expected: MessageMetadata | undefined;
  /** Extractor options it is read with. */
  options?: MetadataExtractorOptions;
}

/** A small seeded PRNG (mulberry32): the same bytes on every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomBytes(length: number, seed: number): Buffer {
  const next = prng(seed);
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = Math.floor(next() * 256);
  return out;
}

/** Base64 in 76-character lines, CRLF. */
export function base64Lines(data: Buffer): string {
  return (data.toString('base64').match(/.{1,76}/g) ?? []).join('\r\n');
}

/**
 * Quoted-printable (RFC 2045 6.7): CRLF in `data` stays a hard line break, lines are kept to
 * 76 characters with soft breaks, whitespace before a line end and everything not printable
 * ASCII is =XX.
 */
export function quotedPrintable(data: Buffer): string {
  const lines: string[] = [];
  let line = '';
  const push = (token: string): void => {
    if (line.length + token.length > 75) {
      lines.push(`${line}=`);
      line = '';
    }
    line += token;
  };
  for (let i = 0; i < data.length; i++) {
    const b = data[i]!;
    if (b === 0x0d && data[i + 1] === 0x0a) {
      lines.push(line);
      line = '';
      i++;
      continue;
    }
    const atLineEnd = i + 1 === data.length || (data[i + 1] === 0x0d && data[i + 2] === 0x0a);
    const literal = (b >= 33 && b <= 126 && b !== 0x3d) || ((b === 0x20 || b === 0x09) && !atLineEnd);
    push(literal ? String.fromCharCode(b) : `=${b.toString(16).toUpperCase().padStart(2, '0')}`);
  }
  lines.push(line);
  return lines.join('\r\n');
}

/** Join header and body lines with CRLF. */
export function crlf(...lines: string[]): string {
  return lines.join('\r\n');
}

/** The same message with bare LF line ends (as a maildir stores it). */
export function toLf(message: Buffer): Buffer {
  return Buffer.from(message.toString('latin1').replace(/\r\n/g, '\n'), 'latin1');
}

// -------------------------------------------------------------------------------------------

const pdf = randomBytes(3000, 1);
const csv = Buffer.from(
  Array.from({ length: 40 }, (_, i) => `${i};Zürich — café crème;${'x'.repeat(i * 3)};"quoted, field" = ${i * 7}`).join('\r\n'),
  'utf8',
);
const notes = 'line one\r\nline two';
const png = randomBytes(100, 2);
const zip = randomBytes(50, 3);
const innerMessage = crlf('From: inner@example.com', 'Subject: inner', '', 'inner body');

export const simpleText: CorpusMessage = {
  name: 'simple text',
  message: Buffer.from(
    crlf(
      'Return-Path: <alice@example.com>',
      'Received: from mx.example.com (mx.example.com [192.0.2.1])',
      '\tby pop.example.org with ESMTPS id 4Xk2; Thu, 26 Nov 2026 12:00:01 +0000',
      'Message-ID: <simple-1@example.com>',
      'Date: Thu, 26 Nov 2026 12:00:00 +0100',
      'From: Alice Example <alice@example.com>',
      'To: bob@example.org, "Carol C." <carol@example.org>',
      'Cc: Dave <dave@example.net>',
      'Subject: Lunch on Friday?',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=us-ascii',
      'Content-Transfer-Encoding: 7bit',
      '',
      'Hi Bob,',
      '',
      'shall we have lunch on Friday?',
      '.',
      '-- ',
      'Alice',
      '',
    ),
  ),
  expected: {
    messageId: '<simple-1@example.com>',
    date: '2026-11-26T11:00:00.000Z',
    from: [{ name: 'Alice Example', address: 'alice@example.com' }],
    to: [{ address: 'bob@example.org' }, { name: 'Carol C.', address: 'carol@example.org' }],
    cc: [{ name: 'Dave', address: 'dave@example.net' }],
    subject: 'Lunch on Friday?',
    attachments: [],
  },
};

export const simpleTextLf: CorpusMessage = {
  name: 'simple text, LF only',
  message: toLf(simpleText.message),
  expected: simpleText.expected,
};

const alternativeWithAttachmentsHeader = [
  'From: =?UTF-8?B?SsO8cmdlbiBNw7xsbGVy?= <juergen@example.de>',
  'To: =?ISO-8859-1?Q?Andr=E9?= Pirard <andre@example.be>',
  'Subject: =?UTF-8?Q?Rapport_annuel_=E2=80=93_2026?=',
  'Message-ID: <mp-1@example.de>',
  'Date: Wed, 25 Nov 2026 08:30:00 -0500',
  'MIME-Version: 1.0',
  'Content-Type: multipart/mixed; boundary="==outer=="',
];

export const alternativeWithAttachments: CorpusMessage = {
  name: 'multipart/alternative with base64, quoted-printable and 7bit attachments',
  message: Buffer.from(
    crlf(
      ...alternativeWithAttachmentsHeader,
      '',
      'This is a multi-part message in MIME format.',
      '--==outer==',
      'Content-Type: multipart/alternative; boundary="alt-b"',
      '',
      '--alt-b',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      'Bonjour, voir le rapport ci-joint. caf=C3=A9',
      '--alt-b',
      'Content-Type: text/html; charset=utf-8',
      '',
      '<p>Bonjour</p>',
      '--alt-b--',
      '',
      '--==outer==',
      'Content-Type: application/pdf; name="rapport.pdf"',
      'Content-Disposition: attachment; filename="rapport.pdf"',
      'Content-Transfer-Encoding: base64',
      '',
      base64Lines(pdf),
      '--==outer==',
      'Content-Type: text/csv; charset=utf-8; name="data.csv"',
      'Content-Disposition: attachment; filename="data.csv"',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      quotedPrintable(csv),
      '--==outer==',
      'Content-Type: text/plain; charset=us-ascii; name="notes.txt"',
      'Content-Disposition: attachment; filename="notes.txt"',
      'Content-Transfer-Encoding: 7bit',
      '',
      notes,
      '--==outer==--',
      '',
    ),
  ),
  expected: {
    messageId: '<mp-1@example.de>',
    date: '2026-11-25T13:30:00.000Z',
    from: [{ name: 'Jürgen Müller', address: 'juergen@example.de' }],
    to: [{ name: 'André Pirard', address: 'andre@example.be' }],
    subject: 'Rapport annuel – 2026',
    attachments: [
      { filename: 'rapport.pdf', contentType: 'application/pdf', size: pdf.length },
      { filename: 'data.csv', contentType: 'text/csv', size: csv.length },
      { filename: 'notes.txt', contentType: 'text/plain', size: notes.length },
    ],
  },
};

/** With LF line ends, hard line breaks inside the QP and 7bit parts are one byte shorter. */
export const alternativeWithAttachmentsLf: CorpusMessage = {
  name: 'multipart with attachments, LF only',
  message: toLf(alternativeWithAttachments.message),
  expected: {
    ...alternativeWithAttachments.expected!,
    attachments: [
      { filename: 'rapport.pdf', contentType: 'application/pdf', size: pdf.length },
      { filename: 'data.csv', contentType: 'text/csv', size: csv.length - 39 },
      { filename: 'notes.txt', contentType: 'text/plain', size: notes.length - 1 },
    ],
  },
};

export const nested: CorpusMessage = {
  name: 'nested multipart, inline image, attached and embedded messages',
  message: Buffer.from(
    crlf(
      'From: nested@example.com',
      'Subject: nested',
      'Content-Type: multipart/mixed; boundary=L1',
      '',
      '--L1',
      'Content-Type: multipart/related; boundary=L2',
      '',
      '--L2',
      'Content-Type: multipart/alternative; boundary=L3',
      '',
      '--L3',
      'Content-Type: text/plain',
      '',
      'plain',
      '--L3',
      'Content-Type: text/html',
      '',
      '<img src="cid:logo">',
      '--L3--',
      '--L2',
      'Content-Type: image/png',
      'Content-ID: <logo>',
      'Content-Disposition: inline',
      'Content-Transfer-Encoding: base64',
      '',
      base64Lines(png),
      '--L2--',
      '--L1',
      'Content-Type: message/rfc822',
      'Content-Disposition: attachment; filename="fwd.eml"',
      '',
      innerMessage,
      '--L1',
      'Content-Type: message/rfc822',
      'Content-Disposition: inline',
      '',
      'From: inline-inner@example.com',
      'Subject: inline inner',
      'Content-Type: multipart/mixed; boundary=IN',
      '',
      '--IN',
      'Content-Type: text/plain',
      '',
      'hello',
      '--IN',
      'Content-Type: application/zip; name="x.zip"',
      'Content-Transfer-Encoding: base64',
      '',
      base64Lines(zip),
      '--IN--',
      '--L1--',
      '',
    ),
  ),
  expected: {
    from: [{ address: 'nested@example.com' }],
    subject: 'nested',
    attachments: [
      { contentType: 'image/png', size: png.length },
      { filename: 'fwd.eml', contentType: 'message/rfc822', size: innerMessage.length },
      { filename: 'x.zip', contentType: 'application/zip', size: zip.length },
    ],
  },
};

export const encodedWords: CorpusMessage = {
  name: 'encoded words: UTF-8 and ISO-8859-1, Q and B, adjacent and mixed',
  message: Buffer.from(
    crlf(
      `From: =?ISO-8859-1?B?${Buffer.from('Zoë Çelik', 'latin1').toString('base64')}?= <zoe@example.com>`,
      'To: =?utf-8?q?J=C3=BCrgen?= <j@example.de>,',
      ' =?UTF-8?B?5bGx55Sw5aSq6YOO?= <yamada@example.jp>',
      'Subject: =?UTF-8?B?8J+OiSBQYXJ0eQ==?= =?ISO-8859-1?Q?=E0_la_ma=EEson?= ok',
      '',
      'body',
    ),
  ),
  expected: {
    from: [{ name: 'Zoë Çelik', address: 'zoe@example.com' }],
    to: [
      { name: 'Jürgen', address: 'j@example.de' },
      { name: '山田太郎', address: 'yamada@example.jp' },
    ],
    subject: '🎉 Partyà la maîson ok',
    attachments: [],
  },
};

export const groups: CorpusMessage = {
  name: 'address groups',
  message: Buffer.from(
    crlf(
      'From: "Doe, John" <john@example.com>',
      'To: Team: a@example.org, "B B" <b@example.org>;, c@example.org',
      'Cc: undisclosed-recipients:;',
      'Subject: groups',
      '',
      'body',
    ),
  ),
  expected: {
    from: [{ name: 'Doe, John', address: 'john@example.com' }],
    to: [{ address: 'a@example.org' }, { name: 'B B', address: 'b@example.org' }, { address: 'c@example.org' }],
    subject: 'groups',
    attachments: [],
  },
};

export const noHeaders: CorpusMessage = {
  name: 'no headers at all',
  message: Buffer.from('\r\nJust a body.\r\n'),
  expected: { attachments: [] },
};

export const missingHeaders: CorpusMessage = {
  name: 'none of the headers the metadata reads',
  message: Buffer.from(crlf('X-Mailer: something', 'Date: not a date at all', 'Subject:', '', 'body')),
  expected: { attachments: [] },
};

export const invalidUtf8: CorpusMessage = {
  name: 'raw 8-bit headers, valid and invalid UTF-8',
  message: Buffer.concat([
    Buffer.from('Subject: Caf\xe9 cr\xe8me\r\n', 'latin1'),
    Buffer.from('From: José <jose@example.es>\r\n', 'utf8'),
    Buffer.from('To: M\xfcller <mueller@example.de>\r\n', 'latin1'),
    Buffer.from('\r\nbody \xff\xfe\r\n', 'latin1'),
  ]),
  expected: {
    from: [{ name: 'José', address: 'jose@example.es' }],
    to: [{ name: 'Müller', address: 'mueller@example.de' }],
    subject: 'Café crème',
    attachments: [],
  },
};

export const headerOnly: CorpusMessage = {
  name: 'header only, no empty line, no body',
  message: Buffer.from(crlf('From: a@example.com', 'Subject: header only', 'Content-Type: application/pdf; name=x.pdf')),
  expected: {
    from: [{ address: 'a@example.com' }],
    subject: 'header only',
    attachments: [{ filename: 'x.pdf', contentType: 'application/pdf', size: 0 }],
  },
};

export const rootAttachment: CorpusMessage = {
  name: 'the root part is itself an attachment',
  message: Buffer.from(
    crlf(
      'From: scanner@example.com',
      'Subject: Scan',
      'Content-Type: application/octet-stream; name="scan.jpg"',
      'Content-Transfer-Encoding: base64',
      '',
      base64Lines(png),
      '',
    ),
  ),
  expected: {
    from: [{ address: 'scanner@example.com' }],
    subject: 'Scan',
    attachments: [{ filename: 'scan.jpg', contentType: 'image/jpeg', size: png.length }],
  },
};

export const garbage: CorpusMessage = {
  name: 'not MIME at all: random bytes',
  message: randomBytes(4096, 4),
  expected: undefined,
};

export const garbageWithLines: CorpusMessage = {
  name: 'not MIME at all: random lines with boundary-like dashes',
  message: Buffer.concat(
    Array.from({ length: 200 }, (_, i) =>
      Buffer.concat([randomBytes(i % 37, 100 + i), Buffer.from(i % 5 === 0 ? '\r\n--' : i % 7 === 0 ? '\n\n' : '\r\n', 'latin1')]),
    ),
  ),
  expected: undefined,
};

export const brokenMultipart: CorpusMessage = {
  name: 'multipart without its closing boundary, a part without headers, no boundary parameter',
  message: Buffer.from(
    crlf(
      'From: broken@example.com',
      'Content-Type: multipart/mixed; boundary="b1"',
      '',
      '--b1',
      '',
      'a part with no headers',
      '--b1',
      'Content-Type: multipart/alternative',
      '',
      'no boundary here',
      '--b1',
      'Content-Type: image/gif; name=a.gif',
      'Content-Transfer-Encoding: base64',
      '',
      'R0lGODlhAQABAAAAACw=',
      '',
    ),
  ),
  expected: {
    from: [{ address: 'broken@example.com' }],
    attachments: [{ filename: 'a.gif', contentType: 'image/gif', size: 14 }],
  },
};

/** Every message above, for tests that run over all of them. */
export const CORPUS: readonly CorpusMessage[] = [
  simpleText,
  simpleTextLf,
  alternativeWithAttachments,
  alternativeWithAttachmentsLf,
  nested,
  encodedWords,
  groups,
  noHeaders,
  missingHeaders,
  invalidUtf8,
  headerOnly,
  rootAttachment,
  garbage,
  garbageWithLines,
  brokenMultipart,
];

// -------------------------------------------------------------------------------------------
// Over the limits

const longLocal = 'l'.repeat(400);

export const longFields: CorpusMessage = {
  name: 'subject, Message-ID, name and address over their limits',
  message: Buffer.from(
    crlf(
      `Message-ID: <${'m'.repeat(1200)}@example.com>`,
      `Subject: ${'s'.repeat(5000)}`,
      `From: ${'N'.repeat(400)} <${longLocal}@example.com>`,
      '',
      '',
    ),
  ),
  expected: {
    messageId: `<${'m'.repeat(MAX_MESSAGE_ID_CHARS - 1)}`,
    from: [{ name: 'N'.repeat(MAX_NAME_CHARS), address: `${longLocal}@example.com`.slice(0, MAX_ADDRESS_CHARS) }],
    subject: 's'.repeat(MAX_SUBJECT_CHARS),
    attachments: [],
    truncated: ['messageId', 'subject', 'from'],
  },
};

export const manyAddresses: CorpusMessage = {
  name: '150 To addresses, 100 Cc addresses',
  message: Buffer.from(
    crlf(
      `To: ${Array.from({ length: 150 }, (_, i) => `user${i}@example.com`).join(', ')}`,
      `Cc: ${Array.from({ length: 100 }, (_, i) => `"Name, ${i}" <cc${i}@example.com>`).join(', ')}`,
      '',
      '',
    ),
  ),
  expected: {
    to: Array.from({ length: 100 }, (_, i) => ({ address: `user${i}@example.com` })),
    cc: Array.from({ length: 100 }, (_, i) => ({ name: `Name, ${i}`, address: `cc${i}@example.com` })),
    attachments: [],
    truncated: ['to'],
  },
};

const manyParts: string[] = [];
for (let i = 0; i < 120; i++) {
  manyParts.push('--b', `Content-Type: application/x-${i}`, `Content-Disposition: attachment; filename="f${i}.bin"`, '', `data ${i}`);
}

export const manyAttachments: CorpusMessage = {
  name: '120 attachments',
  message: Buffer.from(crlf('Content-Type: multipart/mixed; boundary=b', '', ...manyParts, '--b--', '')),
  expected: {
    attachments: Array.from({ length: 100 }, (_, i) => ({
      filename: `f${i}.bin`,
      contentType: `application/x-${i}`,
      size: `data ${i}`.length,
    })),
    truncated: ['attachments'],
  },
};

export const longAttachmentFields: CorpusMessage = {
  name: 'an attachment with a file name and a content type over their limits',
  message: Buffer.from(
    crlf(
      'Content-Type: multipart/mixed; boundary=b',
      '',
      '--b',
      `Content-Type: application/${'t'.repeat(300)}; name="${'n'.repeat(300)}.txt"`,
      '',
      'x',
      '--b--',
      '',
    ),
  ),
  expected: {
    attachments: [
      { filename: 'n'.repeat(MAX_FILENAME_CHARS), contentType: `application/${'t'.repeat(MAX_CONTENT_TYPE_CHARS - 12)}`, size: 1 },
    ],
    truncated: ['attachments'],
  },
};

/**
 * 3 lists x 100 entries x (320 + 320 characters), every name character \u0001 (6 bytes in
 * JSON): the limits per field alone would allow some 800 KB of metadata.
 */
export const jsonBudget: CorpusMessage = {
  name: 'addresses whose JSON would outgrow the event',
  message: Buffer.from(
    crlf(
      ...(['From', 'To', 'Cc'] as const).map(
        (header) =>
          `${header}: ${Array.from(
            { length: 100 },
            (_, i) => `=?utf-8?Q?${'=01'.repeat(MAX_NAME_CHARS)}?= <${header}${i}${'x'.repeat(300)}@example.com>`,
          ).join(', ')}`,
      ),
      'Subject: budget',
      '',
      '',
    ),
  ),
  expected: undefined,
  options: { maxHeaderBytes: 4 * 1024 * 1024 },
};

export const headerOverBudget: CorpusMessage = {
  name: 'a header block over maxHeaderBytes',
  message: Buffer.from(
    crlf(
      'Subject: kept',
      `X-Huge: ${'h'.repeat(5000)}`,
      ' continued huge',
      ...Array.from({ length: 20 }, (_, i) => `Received: from hop${i} by hop${i + 1}; Thu, 26 Nov 2026 12:00:00 +0000`),
      'From: late@example.com',
      'Content-Type: multipart/mixed; boundary=b',
      '',
      '--b',
      'Content-Type: image/gif',
      '',
      'GIF',
      '--b--',
    ),
  ),
  expected: {
    from: [{ address: 'late@example.com' }],
    subject: 'kept',
    attachments: [{ contentType: 'image/gif', size: 3 }],
    truncated: ['headers'],
  },
  options: { maxHeaderBytes: 4096 },
};

/** The messages over the limits. */
export const OVER_LIMITS: readonly CorpusMessage[] = [
  longFields,
  manyAddresses,
  manyAttachments,
  longAttachmentFields,
  jsonBudget,
  headerOverBudget,
];
