import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { LineTooLongError, ResponseFramer } from '../../lib/pop3/framer.js';

/** Dot-stuff a message that ends in CRLF, as a server does (independent of the framer). */
function stuff(message: Buffer): Buffer {
  const out: number[] = [];
  let lineStart = true;
  for (let i = 0; i < message.length; i++) {
    const b = message[i]!;
    if (lineStart && b === 0x2e) out.push(0x2e);
    out.push(b);
    lineStart = b === 0x0a && i > 0 && message[i - 1] === 0x0d;
  }
  return Buffer.from(out);
}

interface Framed {
  lines: string[];
  bodies: Buffer[];
}

/**
 * Run a wire transcript through the framer, fed in the given pieces. Every `+OK body` status
 * line announces a multi-line response; any other line is a single-line response.
 */
function frame(pieces: Buffer[]): Framed {
  const result: Framed = { lines: [], bodies: [] };
  let current: Buffer[] | undefined;
  const framer: ResponseFramer = new ResponseFramer(
    {
      onLine: (line) => {
        const text = line.toString('latin1');
        result.lines.push(text);
        if (text.startsWith('+OK body')) {
          current = [];
          framer.beginBody();
        }
      },
      onBodyData: (data) => {
        // The framer hands out views of the pushed chunks; copy to prove nothing is reused.
        current!.push(Buffer.from(data));
      },
      onBodyEnd: () => {
        result.bodies.push(Buffer.concat(current!));
        current = undefined;
      },
    },
    1024,
  );
  for (const p of pieces) framer.push(p);
  expect(framer.readingBody).toBe(false);
  return result;
}

function transcript(messages: Buffer[]): Buffer {
  const parts: Buffer[] = [];
  messages.forEach((m, i) => {
    parts.push(Buffer.from(`+OK body ${i}\r\n`), stuff(m), Buffer.from('.\r\n'));
  });
  parts.push(Buffer.from('+OK done\r\n'));
  return Buffer.concat(parts);
}

function splitAt(buf: Buffer, offsets: number[]): Buffer[] {
  const sorted = [...new Set(offsets)].filter((o) => o > 0 && o < buf.length).sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let prev = 0;
  for (const o of sorted) {
    pieces.push(buf.subarray(prev, o));
    prev = o;
  }
  pieces.push(buf.subarray(prev));
  return pieces;
}

const small: Record<string, string> = {
  plain: 'Subject: hi\r\n\r\nhello\r\n',
  'line that is just a dot': 'Subject: x\r\n\r\n.\r\nafter\r\n',
  'ends with a dot line': 'Subject: x\r\n\r\nbody\r\n.\r\n',
  'lines starting with . and ..': '.hidden: h\r\n\r\n.one\r\n..two\r\n...three\r\n',
  'body ending in a dot': 'Subject: x\r\n\r\nthe end.\r\n',
  'dot then CR not LF': 'A: b\r\n\r\n.\rodd\r\n',
  'CR alone and LF alone inside lines': 'A: b\r\n\r\nx\ry\nz\r\n\n.\n\r\n',
  'empty lines and CRLF runs': '\r\n\r\n\r\n',
  'headers only': 'From: a@example.com\r\nSubject: no body\r\n',
  'dot CR CR LF': 'A: b\r\n\r\n.\r\r\n',
  'terminator-like text inside a line': 'A: b\r\n\r\nfoo\r\n.\r\nbar. \r\n',
  'utf8 and invalid bytes': 'Subject: =?utf-8?q?x?=\r\n\r\n',
};

describe('ResponseFramer', () => {
  for (const [name, text] of Object.entries(small)) {
    it(`reproduces "${name}" exactly at every split offset`, () => {
      const message =
        name === 'utf8 and invalid bytes'
          ? Buffer.concat([Buffer.from(text), Buffer.from('gr\u00fc\u00dfe \u2603\r\n', 'utf8'), Buffer.from([0xff, 0xfe, 0x80, 0x2e, 0x0d, 0x0a])])
          : Buffer.from(text, 'latin1');
      const wire = transcript([message, message]);
      for (let a = 0; a <= wire.length; a++) {
        const { lines, bodies } = frame(splitAt(wire, [a]));
        expect(bodies, `split at ${a}`).toEqual([message, message]);
        expect(lines).toEqual(['+OK body 0', '+OK body 1', '+OK done']);
      }
      // And byte by byte.
      const bytes = Array.from({ length: wire.length }, (_, i) => i);
      expect(frame(splitAt(wire, bytes)).bodies).toEqual([message, message]);
    });
  }

  it('splits every small fixture at every pair of offsets', () => {
    const message = Buffer.from('.a\r\n..\r\n.\r\nz.\r\n.\r\r\n', 'latin1');
    const wire = transcript([message]);
    for (let a = 1; a < wire.length; a++) {
      for (let b = a + 1; b < wire.length; b++) {
        expect(frame(splitAt(wire, [a, b])).bodies[0]!.equals(message), `splits ${a},${b}`).toBe(true);
      }
    }
  });

  it('handles long lines and large bodies split around every CRLF, dot and terminator plus random offsets', () => {
    const lines: Buffer[] = [];
    for (const n of [998, 1000, 8192, 65536, 200_000]) lines.push(Buffer.alloc(n, 0x61), Buffer.from('\r\n'));
    lines.push(Buffer.from('.\r\n..\r\n.x\r\n'));
    lines.push(Buffer.from(randomBytes(300_000).toString('base64').replace(/(.{76})/g, '$1\r\n') + '\r\n'));
    lines.push(Buffer.from('last line ends in a dot.\r\n'));
    const message = Buffer.concat([Buffer.from('Subject: big\r\n\r\n'), ...lines]);
    const wire = transcript([message, Buffer.from('x\r\n')]);

    // Boundaries that matter: around each CR, LF and dot.
    const interesting: number[] = [];
    for (let i = 0; i < wire.length; i++) {
      const b = wire[i];
      if (b === 0x0d || b === 0x0a || b === 0x2e) interesting.push(i - 1, i, i + 1, i + 2);
    }
    // Cut at every interesting offset in groups so each group yields one run.
    const expected = createHash('sha256').update(message).digest('hex');
    const group = 97;
    for (let g = 0; g < interesting.length; g += group) {
      const { bodies } = frame(splitAt(wire, interesting.slice(g, g + group)));
      expect(createHash('sha256').update(bodies[0]!).digest('hex')).toBe(expected);
      expect(bodies[1]!.toString()).toBe('x\r\n');
    }
    for (let run = 0; run < 50; run++) {
      const offsets = Array.from({ length: 200 }, () => Math.floor(Math.random() * wire.length));
      const { bodies } = frame(splitAt(wire, offsets));
      expect(createHash('sha256').update(bodies[0]!).digest('hex')).toBe(expected);
    }
  });

  it('reproduces random messages over the alphabet CR, LF, dot, a at random splits', () => {
    const alphabet = [0x0d, 0x0a, 0x2e, 0x61];
    for (let run = 0; run < 2000; run++) {
      const len = Math.floor(Math.random() * 40);
      const body = Buffer.from(Array.from({ length: len }, () => alphabet[Math.floor(Math.random() * 4)]!));
      const message = Buffer.concat([body, Buffer.from('\r\n')]);
      const wire = transcript([message]);
      const offsets = Array.from({ length: Math.floor(Math.random() * 8) }, () => Math.floor(Math.random() * wire.length));
      const { bodies, lines } = frame(splitAt(wire, offsets));
      expect(bodies[0]!.equals(message), `message ${JSON.stringify(message.toString('latin1'))} split at ${offsets}`).toBe(true);
      expect(lines[lines.length - 1]).toBe('+OK done');
    }
  });

  it('passes body data on without copying whole chunks again', () => {
    const chunk = Buffer.from('+OK body\r\nabc\r\ndef\r\n.\r\n');
    const seen: Buffer[] = [];
    const framer = new ResponseFramer(
      {
        onLine: () => framer.beginBody(),
        onBodyData: (d) => seen.push(d),
        onBodyEnd: () => {},
      },
      512,
    );
    framer.push(chunk);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.buffer).toBe(chunk.buffer);
  });

  it('refuses a status line longer than the limit, even when it arrives in pieces', () => {
    const framer = new ResponseFramer({ onLine: () => {}, onBodyData: () => {}, onBodyEnd: () => {} }, 64);
    expect(() => {
      for (let i = 0; i < 10; i++) framer.push(Buffer.alloc(10, 0x41));
    }).toThrow(LineTooLongError);
    const framer2 = new ResponseFramer({ onLine: () => {}, onBodyData: () => {}, onBodyEnd: () => {} }, 64);
    expect(() => framer2.push(Buffer.from(`+OK ${'x'.repeat(100)}\r\n`))).toThrow(LineTooLongError);
  });

  it('keeps the rest of a chunk when a line handler stops, for the STLS check', () => {
    const lines: string[] = [];
    const framer = new ResponseFramer(
      {
        onLine: (l) => {
          lines.push(l.toString());
          return false;
        },
        onBodyData: () => {},
        onBodyEnd: () => {},
      },
      512,
    );
    framer.push(Buffer.from('+OK begin TLS\r\n+OK injected\r\n'));
    expect(lines).toEqual(['+OK begin TLS']);
    expect(framer.bufferedBytes).toBe('+OK injected\r\n'.length);
    expect(framer.takeBuffered().toString()).toBe('+OK injected\r\n');
  });

  it('accepts status lines ended by a bare LF', () => {
    expect(frame([Buffer.from('+OK one\n+OK done\r\n')]).lines).toEqual(['+OK one', '+OK done']);
  });
});
