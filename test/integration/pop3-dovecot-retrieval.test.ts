// The POP3 client against a real Dovecot (testkit/pop3-servers/dovecot.ts), on loopback only:
// byte-exact retrieval of a corpus (a 64 MiB message streamed in bounded memory), and deletion.
// One Dovecot for the file (test/support/pop3-dovecot-session.ts); each test has its own users,
// except the read-only tests of the byte-exact corpus, which share it (it holds a 64 MiB message).
// If Dovecot cannot start, beforeAll throws and every test here fails (never skips).
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { ServedDigest, servedBytes } from '../support/dovecot-served-form.js';
import { expectPop3Error } from '../support/expect-pop3-error.js';
import { largeMessage } from '../support/large-dotted-message.js';
import {
  dovecot,
  maildirNames,
  MiB,
  session,
  sessionsEnded,
  setUpDovecotSessions,
} from '../support/pop3-dovecot-session.js';
import { readAll } from '../support/read-all.js';

/** The large message of the corpus (served as ~65 MiB with CRLF). */
const LARGE_MESSAGE_BYTES = 64 * MiB;
/**
 * Process RSS may grow by at most this much while the large message streams. A streaming client
 * measured ~10-25 MiB here (socket chunks the collector has not freed yet); one that held the
 * message ~60 MiB. Hence a message twice this size: with 30 MiB the two overlap.
 */
const MAX_RSS_GROWTH_BYTES = 40 * MiB;
/**
 * Most bytes the large message's stream may hold unread (its high-water mark is 256 KiB). Without
 * backpressure it held ~2.5 MiB with the consumer below.
 */
const MAX_BUFFERED_BYTES = MiB;

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

function rss(): number {
  return process.memoryUsage().rss;
}

setUpDovecotSessions();

// ---------------------------------------------------------------------------------------------

describe('byte-exact retrieval', () => {
  const USER = 'corpus-user';
  const PASSWORD = 'corpus-password';
  const header = (subject: string, extra = ''): string =>
    `From: Corpus <corpus@popdrain.test>\nTo: drain@popdrain.test\nSubject: ${subject}\n` +
    `Message-ID: <${subject.replace(/\W+/g, '-')}@popdrain.test>\n${extra}`;
  const pseudoText = (length: number, first: string): string => {
    const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?-_=+';
    let s = first;
    for (let i = 0; s.length < length; i++) s += alphabet[(i * 31 + length) % alphabet.length];
    return s.slice(0, length);
  };
  const attachment = randomBytes(150_000);
  const attachmentBase64 = attachment.toString('base64').replace(/.{76}/g, '$&\n');

  /** name → bytes as delivered (LF line ends, as a maildir stores them). */
  const corpus: Array<[string, Buffer]> = [
    [
      'dots',
      Buffer.from(
        `${header('dots')}\n.\n..\n...\n.leading dot\n..two leading dots\n.\rdot then CR\n` +
          ` .space first\n.\ntext between\n.\n`,
        'latin1',
      ),
    ],
    ['ends-in-dot', Buffer.from(`${header('ends in dot')}\nfirst line\nfoo.\n`, 'latin1')],
    [
      '8bit',
      Buffer.concat([
        Buffer.from(
          `${header('8bit Grüße 日本', 'Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n')}\n` +
            'Grüße aus Köln, 日本語のテキスト, emoji 😀\n',
          'utf8',
        ),
        Buffer.from([0xff, 0xfe, 0x80, 0xc0, 0xc1, 0xf5, 0xe2, 0x82, 0x0a]), // invalid UTF-8
        Buffer.from([0x2e, 0xbf, 0x00, 0x01, 0x7f, 0x0d, 0x41, 0x0a]), // ".", continuation, NUL, lone CR
        Buffer.from('last line\n', 'utf8'),
      ]),
    ],
    ...[998, 1_000, 8_192, 65_536, 200_000].map((length): [string, Buffer] => [
      `line-${length}`,
      Buffer.from(
        `${header(`line of ${length}`)}\nbefore\n${pseudoText(length, 'L')}\n${pseudoText(length, '.')}\nafter\n`,
        'latin1',
      ),
    ]),
    [
      'attachment',
      Buffer.from(
        `${header('attachment', 'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b1"\n')}\n` +
          `This is a multi-part message in MIME format.\n--b1\nContent-Type: text/plain; charset=us-ascii\n\n` +
          `See the attachment.\n.\n--b1\nContent-Type: application/octet-stream; name="blob.bin"\n` +
          `Content-Transfer-Encoding: base64\nContent-Disposition: attachment; filename="blob.bin"\n\n` +
          `${attachmentBase64}\n--b1--\n`,
        'latin1',
      ),
    ],
    ['headers-only', Buffer.from(header('headers only'), 'latin1')],
    ['no-final-newline', Buffer.from(`${header('no final newline')}\nline one\nthe end.`, 'latin1')],
    ['no-final-newline-dot', Buffer.from(`${header('no final newline, dot')}\nline one\n.`, 'latin1')],
    ['large', largeMessage(LARGE_MESSAGE_BYTES, 'large')],
  ];
  type Expected = ReturnType<ServedDigest['finish']> & { name: string };
  let expected: Expected[];

  beforeAll(async () => {
    await dovecot.addUser(USER, PASSWORD);
    await dovecot.deliverMany(
      USER,
      corpus.map(([, bytes]) => bytes),
    );
    // What the server holds: the files must be what we delivered; Dovecot serves them as CRLF.
    const files = await dovecot.listMaildir(USER);
    expect(files).toHaveLength(corpus.length);
    expected = [];
    for (const [i, path] of files.entries()) {
      const [name, delivered] = corpus[i]!;
      // Streamed, so that no copy of the large message becomes garbage that the collector
      // would free in the middle of the RSS measurement below (and so hide a growth).
      const raw = createHash('sha256');
      const served = new ServedDigest();
      for await (const chunk of createReadStream(path)) {
        raw.update(chunk as Buffer);
        served.update(chunk as Buffer);
      }
      expect(raw.digest('hex'), `${name} is stored as delivered`).toBe(sha256(delivered));
      expected.push({ name, ...served.finish() });
    }
    const large = expected.at(-1)!;
    expect(large.listSize).toBeGreaterThan(25 * 1000 * 1000);
  }, 60_000);

  interface Run {
    digests: string[];
    sizes: number[];
    /** Most bytes the large message's stream held unread at once. */
    maxBuffered: number;
    /** Largest process RSS growth while the large message streamed. */
    rssGrowth: number;
  }

  async function retrieveAll(pipelining: boolean): Promise<Run> {
    const client = await session(USER, PASSWORD, { pipelining });
    expect(client.pipelining).toBe(pipelining);
    const list = await client.list();
    expect(list).toHaveLength(corpus.length);
    const run: Run = { digests: [], sizes: [], maxBuffered: 0, rssGrowth: 0 };
    for await (const message of client.retrieve(list)) {
      const isLarge = message.number === corpus.length;
      const hash = createHash('sha256');
      let bytes = 0;
      const baseline = rss();
      let peak = baseline;
      let nextSample = 0;
      for await (const chunk of message.stream) {
        hash.update(chunk as Buffer);
        bytes += (chunk as Buffer).length;
        if (!isLarge) continue;
        // The iterator takes everything the stream holds at once: a chunk's size is what was
        // buffered.
        run.maxBuffered = Math.max(run.maxBuffered, (chunk as Buffer).length);
        if (bytes >= nextSample) {
          peak = Math.max(peak, rss());
          nextSample += MiB;
          // A consumer slower than the server: without backpressure the body piles up.
          await new Promise((r) => setTimeout(r, 5));
        }
      }
      if (isLarge) run.rssGrowth = Math.max(peak, rss()) - baseline;
      run.digests.push(hash.digest('hex'));
      run.sizes.push(bytes);
    }
    await client.quit();
    return run;
  }

  it('RETR serves every message byte for byte as the CRLF form of the maildir file, pipelined and lock-step alike', async () => {
    const pipelined = await retrieveAll(true);
    const lockStep = await retrieveAll(false);
    for (const [i, e] of expected.entries()) {
      expect(pipelined.sizes[i], `${e.name}: served size`).toBe(e.servedSize);
      expect(pipelined.digests[i], `${e.name}: sha256 (pipelined)`).toBe(e.sha256);
    }
    expect(lockStep.digests).toEqual(pipelined.digests);
    expect(lockStep.sizes).toEqual(pipelined.sizes);
    // Streaming ~65 MiB must not hold it: the growth stays well below the message size, and the
    // stream never holds more than its high-water mark and a chunk (backpressure).
    for (const run of [pipelined, lockStep]) {
      expect(run.rssGrowth).toBeLessThan(MAX_RSS_GROWTH_BYTES);
      expect(run.maxBuffered).toBeLessThan(MAX_BUFFERED_BYTES);
    }
  });

  it('LIST sizes are the CRLF sizes (a message without final newline is served 2 bytes longer), STAT agrees, UIDLs are unique', async () => {
    const client = await session(USER, PASSWORD);
    const list = await client.list();
    expect(list.map((e) => e.number)).toEqual(corpus.map((_, i) => i + 1));
    expect(list.map((e) => e.size)).toEqual(expected.map((e) => e.listSize));
    for (const e of expected) expect(e.servedSize - e.listSize).toBe(e.endsWithNewline ? 0 : 2);
    expect(await client.listOne(3)).toEqual(list[2]);
    expect(await client.stat()).toEqual({ count: corpus.length, size: expected.reduce((n, e) => n + e.listSize, 0) });

    const uidl = await client.uidl();
    expect(uidl.map((e) => e.number)).toEqual(list.map((e) => e.number));
    expect(new Set(uidl.map((e) => e.uid)).size).toBe(corpus.length);
    expect(await client.uidlOne(5)).toEqual(uidl[4]);
    await client.quit();

    // Stable across sessions.
    const again = await session(USER, PASSWORD);
    expect(await again.uidl()).toEqual(uidl);
    await again.quit();
  });

  it('TOP n 0 is the header block and the blank line; TOP n k adds k body lines', async () => {
    const client = await session(USER, PASSWORD);
    const top = async (n: number, lines: number): Promise<Buffer> => readAll((await client.top(n, lines)).stream);
    for (const [i, [name, bytes]] of corpus.entries()) {
      if (name === 'headers-only' || name === 'large') continue;
      const headerEnd = bytes.indexOf('\n\n');
      expect(headerEnd, name).toBeGreaterThan(0);
      expect((await top(i + 1, 0)).equals(servedBytes(bytes.subarray(0, headerEnd + 2))), `${name}: TOP 0`).toBe(true);
    }
    // The dot-stuffed lines come back unstuffed.
    const dots = corpus[0]![1];
    const bodyStart = dots.indexOf('\n\n') + 2;
    expect((await top(1, 3)).toString('latin1')).toBe(
      servedBytes(dots.subarray(0, bodyStart)).toString('latin1') + '.\r\n..\r\n...\r\n',
    );
    // A message without a blank line: TOP gives just the headers (Dovecot adds no blank line).
    const headersOnly = corpus.findIndex(([name]) => name === 'headers-only');
    expect((await top(headersOnly + 1, 0)).equals(servedBytes(corpus[headersOnly]![1]))).toBe(true);
    // The large message: its headers, without reading the 64 MiB.
    const largeBytes = corpus.at(-1)![1];
    const largeHeaderEnd = largeBytes.indexOf('\n\n') + 2;
    expect((await top(corpus.length, 0)).equals(servedBytes(largeBytes.subarray(0, largeHeaderEnd)))).toBe(true);
    await client.quit();
  });
});

// ---------------------------------------------------------------------------------------------

describe('deletion', () => {
  const PASSWORD = 'dele-password';
  const messages = [1, 2, 3, 4].map((i) => Buffer.from(`Subject: dele ${i}\n\nmessage ${i}\n`));

  it('DELE takes effect only at QUIT: closing without QUIT keeps the message, QUIT removes exactly it', async () => {
    const user = 'dele-user';
    await dovecot.addUser(user, PASSWORD);
    await dovecot.deliverMany(user, messages);
    const files = await maildirNames(user);
    expect(files).toHaveLength(4);

    const first = await session(user, PASSWORD);
    const uidlBefore = await first.uidl();
    await first.dele(2);
    // Within the session the message is gone...
    expect((await first.stat()).count).toBe(3);
    await expectPop3Error(first.listOne(2), 'COMMAND_FAILED');
    // ...but the connection ends without QUIT.
    first.close();
    expect(first.isClosed).toBe(true);
    await sessionsEnded(user, 1);

    const second = await session(user, PASSWORD);
    expect((await second.stat()).count).toBe(4);
    expect(await second.uidl()).toEqual(uidlBefore);
    expect(await maildirNames(user)).toEqual(files);

    await second.dele(2);
    await second.quit();
    await sessionsEnded(user, 2);
    expect(await maildirNames(user)).toEqual(files.filter((_, i) => i !== 1));

    const third = await session(user, PASSWORD);
    const uidlAfter = await third.uidl();
    expect(uidlAfter.map((e) => e.uid)).toEqual(uidlBefore.filter((e) => e.number !== 2).map((e) => e.uid));
    expect(uidlAfter.map((e) => e.number)).toEqual([1, 2, 3]);
    expect((await readAll((await third.retr(2)).stream)).equals(servedBytes(messages[2]!))).toBe(true);
    await third.quit();
  });

  it('RSET undoes DELE', async () => {
    const user = 'rset-user';
    await dovecot.addUser(user, PASSWORD);
    await dovecot.deliverMany(user, messages);
    const files = await maildirNames(user);

    const first = await session(user, PASSWORD);
    const uidlBefore = await first.uidl();
    await first.dele(1);
    await first.dele(3);
    expect((await first.stat()).count).toBe(2);
    await first.rset();
    expect((await first.stat()).count).toBe(4);
    await first.quit();
    await sessionsEnded(user, 1);

    expect(await maildirNames(user)).toEqual(files);
    const second = await session(user, PASSWORD);
    expect(await second.uidl()).toEqual(uidlBefore);
    await second.quit();
  });
});
