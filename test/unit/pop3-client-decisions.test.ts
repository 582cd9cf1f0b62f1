// The decisions the POP3 client takes apart from its socket, as pure functions: which login
// method to use, when a command or body is overdue, and how many RETRs to keep ahead.
import { describe, expect, it } from 'vitest';
import { chooseLoginMethod } from '../../lib/pop3/authenticate.js';
import { commands } from '../../lib/pop3/command.js';
import { overdue } from '../../lib/pop3/deadline.js';
import { Pop3Error } from '../../lib/pop3/errors.js';
import type { Pending } from '../../lib/pop3/pending.js';
import { NO_CAPABILITIES, parseCapabilities } from '../../lib/pop3/response.js';
import { ListingCollector } from '../../lib/pop3/listing-collector.js';
import { RetrievalWindow } from '../../lib/pop3/retrieval-window.js';
import type { SaslSession } from '../../lib/pop3/sasl/index.js';

const password = { user: 'jane', password: 'secret' };
const token = { user: 'jane', accessToken: 'tok' };
const caps = (...lines: string[]) => parseCapabilities(lines);
const TIMESTAMP = '<1896.697170952@dbc.mtview.ca.us>';

describe('chooseLoginMethod', () => {
  it('under TLS picks the method that needs no server-side secret; without TLS, challenge-response first', () => {
    const server = { greeting: 'ready', caps: caps('USER', 'SASL PLAIN SCRAM-SHA-256'), capaAnswered: true, tls: true };
    expect(chooseLoginMethod(password, 'auto', server)).toEqual({ method: 'PLAIN' });
    expect(chooseLoginMethod(password, 'auto', { ...server, tls: false })).toEqual({ method: 'SCRAM-SHA-256' });
    expect(chooseLoginMethod(password, 'auto', { ...server, caps: caps('USER') })).toEqual({ method: 'USER' });
  });

  it('carries the greeting timestamp with APOP, and refuses APOP without one', () => {
    const server = { greeting: `POP3 ready ${TIMESTAMP}`, caps: NO_CAPABILITIES, capaAnswered: false, tls: false };
    expect(chooseLoginMethod(password, 'auto', server)).toEqual({ method: 'APOP', timestamp: TIMESTAMP });
    // Under TLS the APOP banner alone does not mean the user has an APOP secret: USER/PASS.
    expect(chooseLoginMethod(password, 'auto', { ...server, tls: true })).toEqual({ method: 'USER' });
    expect(chooseLoginMethod(password, 'APOP', server)).toEqual({ method: 'APOP', timestamp: TIMESTAMP });
    const error = catchError(() => chooseLoginMethod(password, 'APOP', { ...server, greeting: 'POP3 ready' }));
    expect(error.code).toBe('MECHANISM_UNAVAILABLE');
    expect(error.message).toMatch(/no APOP timestamp/);
  });

  it('refuses a requested SASL mechanism that CAPA does not list, but tries it when CAPA lists none', () => {
    const listing = { greeting: 'ready', caps: caps('SASL PLAIN'), capaAnswered: true, tls: true };
    const error = catchError(() => chooseLoginMethod(password, 'CRAM-MD5', listing));
    expect(error.code).toBe('MECHANISM_UNAVAILABLE');
    expect(error.message).toBe('server does not offer CRAM-MD5 (offers PLAIN)');
    expect(chooseLoginMethod(password, 'CRAM-MD5', { ...listing, caps: caps('USER') })).toEqual({ method: 'CRAM-MD5' });
  });

  it('says what the server offers when nothing fits the credentials', () => {
    const server = { greeting: 'ready', caps: caps('USER', 'SASL PLAIN'), capaAnswered: true, tls: true };
    const error = catchError(() => chooseLoginMethod(token, 'auto', server));
    expect(error.code).toBe('MECHANISM_UNAVAILABLE');
    expect(error.phase).toBe('auth');
    expect(error.message).toBe('no authentication method in common: server offers [PLAIN USER] for an OAuth2 token');
  });
});

function catchError(fn: () => unknown): Pop3Error {
  try {
    fn();
  } catch (error) {
    if (error instanceof Pop3Error) return error;
    throw error;
  }
  throw new Error('expected a Pop3Error');
}

describe('overdue', () => {
  const base = { phase: 'transaction' as const, timeoutMs: 100, sent: true, waitingSince: 1_000, onErr: () => undefined };
  const retr: Pending = {
    ...base,
    kind: 'stream',
    command: commands.retr(3),
    messageNumber: 3,
    collectSize: undefined,
    body: undefined,
    discard: false,
    deliver: () => undefined,
  };
  const facts = { now: 1_050, readingBody: false, lastActivity: 1_000, bodyIdleMs: 500, server: '127.0.0.1:110' };

  it('runs a status line deadline from waitingSince, however recent the last byte', () => {
    expect(overdue(retr, facts)).toBeUndefined();
    const error = overdue(retr, { ...facts, now: 1_100, lastActivity: 1_099 });
    expect(error?.code).toBe('COMMAND_TIMEOUT');
    expect(error?.message).toBe('no answer to RETR 3 within 100 ms');
    expect(error?.command).toBe('RETR 3');
  });

  it('inside a body, limits inactivity instead', () => {
    expect(overdue(retr, { ...facts, readingBody: true, now: 5_000, lastActivity: 4_600 })).toBeUndefined();
    const error = overdue(retr, { ...facts, readingBody: true, now: 5_000, lastActivity: 4_500 });
    expect(error?.code).toBe('BODY_TIMEOUT');
  });

  it('names the greeting and a SASL exchange with its challenges', () => {
    const greeting: Pending = { ...base, phase: 'greeting', kind: 'greeting', command: undefined, onOk: () => undefined };
    const g = overdue(greeting, { ...facts, now: 2_000 });
    expect(g?.code).toBe('GREETING_TIMEOUT');
    expect(g?.message).toBe('no greeting from 127.0.0.1:110 within 100 ms');
    const sasl: Pending = {
      ...base,
      phase: 'auth',
      kind: 'sasl',
      command: commands.auth('PLAIN'),
      session: {} as SaslSession,
      challenges: 2,
      cancelled: undefined,
      onOk: () => undefined,
    };
    const s = overdue(sasl, { ...facts, now: 2_000 });
    expect(s?.code).toBe('COMMAND_TIMEOUT');
    expect(s?.message).toBe('the AUTH PLAIN exchange did not complete within 100 ms (2 challenges)');
  });

  it('never fires with a limit of 0', () => {
    expect(overdue({ ...retr, timeoutMs: 0 }, { ...facts, now: 1e9 })).toBeUndefined();
  });
});

describe('RetrievalWindow', () => {
  const items = (n: number, size?: number) => Array.from({ length: n }, (_, i) => ({ number: i + 1, size }));
  const numbers = (list: ReadonlyArray<{ number: number }>) => list.map((i) => i.number);

  it('fills the lookahead, then tops it up only once half of it was taken', () => {
    const w = new RetrievalWindow(items(20), 8, 8 * 1024 * 1024);
    const first = w.refill();
    expect(numbers(first)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    for (const item of first.slice(0, 3)) w.taken(item);
    expect(w.refill()).toEqual([]); // 5 ahead: more than half
    w.taken(first[3]!);
    expect(numbers(w.refill())).toEqual([9, 10, 11, 12]);
  });

  it('bounds the bytes ahead by listed size, counting a message before it is requested, but always requests one', () => {
    const w = new RetrievalWindow(items(5, 400), 8, 1_000);
    const first = w.refill();
    expect(numbers(first)).toEqual([1, 2]); // 800 fits in 1000; a third would make 1200
    w.taken(first[0]!);
    w.taken(first[1]!);
    expect(numbers(w.refill())).toEqual([3, 4]);
    const huge = new RetrievalWindow(items(2, 5_000), 8, 1_000);
    expect(numbers(huge.refill())).toEqual([1]);
    // A large message behind small ones waits until it fits, or until nothing else is ahead.
    const mixed = new RetrievalWindow([{ number: 1, size: 100 }, { number: 2, size: 26_000 }, { number: 3, size: 100 }], 8, 1_000);
    const small = mixed.refill();
    expect(numbers(small)).toEqual([1]);
    mixed.taken(small[0]!);
    expect(numbers(mixed.refill())).toEqual([2]);
  });

  it("requests only what the caller's admit lets go, then nothing more", () => {
    const asked: number[] = [];
    const w = new RetrievalWindow(items(10, 100), 8, 1_000, (item) => {
      asked.push(item.number);
      return item.number <= 3;
    });
    const first = w.refill();
    expect(numbers(first)).toEqual([1, 2, 3]);
    expect(asked).toEqual([1, 2, 3, 4]);
    for (const item of first) w.taken(item);
    expect(w.refill()).toEqual([]);
    expect(asked).toEqual([1, 2, 3, 4]);
  });

  it('stops at the end of the items', () => {
    const w = new RetrievalWindow(items(2), 8, 1_000);
    expect(numbers(w.refill())).toEqual([1, 2]);
    expect(w.refill()).toEqual([]);
  });
});

describe('ListingCollector', () => {
  const limits = { maxBytes: 1_000, maxLineBytes: 10 };
  const collect = (chunks: Buffer[]): Buffer => {
    const c = new ListingCollector(limits, 'transaction', 'UIDL');
    for (const chunk of chunks) c.push(chunk);
    return c.finish();
  };
  const splitsOf = (data: Buffer): Buffer[][] =>
    Array.from({ length: data.length + 1 }, (_, i) => [data.subarray(0, i), data.subarray(i)]);

  it('takes lines up to the limit (CR counted, LF not), split anywhere', () => {
    const ok = Buffer.from('1 abcdefg\r\n2 xyz\r\n12 abcdef\n', 'latin1'); // "1 abcdefg\r" is 10 bytes
    for (const chunks of splitsOf(ok)) expect(collect(chunks)).toEqual(ok);
  });

  it('refuses a line one byte longer as LIMIT_EXCEEDED, wherever the chunks are cut', () => {
    for (const data of [Buffer.from('1 abcdefgh\r\n'), Buffer.from('1 a\r\n2 abcdefgh\r\n'), Buffer.from('1 a\r\n2 abcdefghij')]) {
      for (const chunks of splitsOf(data)) {
        const error = catchError(() => collect(chunks));
        expect(error.code).toBe('LIMIT_EXCEEDED');
        expect(error.message).toBe('server sent a listing line longer than 10 bytes');
        expect(error.command).toBe('UIDL');
        expect(error.phase).toBe('transaction');
      }
    }
  });
});
