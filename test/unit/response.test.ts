// Parsing what a POP3 server answers: UIDL lines (escaping bytes outside printable ASCII rather
// than refusing the mailbox), listing numbers, the APOP timestamp of the greeting, CAPA's typed facts.
import { describe, expect, it } from 'vitest';
import { MAX_UIDL_BYTES } from '../../lib/pop3/limits.js';
import { apopTimestamp, checkListingNumbers, MalformedResponseError, NO_CAPABILITIES, parseCapabilities, parseListLine, parseUidlLine } from '../../lib/pop3/response.js';

/** A listing line as the client reads it: one character per byte (latin1). */
const asRead = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');

describe('parseUidlLine', () => {
  it('keeps RFC 1939 unique-ids as they are', () => {
    expect(parseUidlLine('1 whqtswO00WBw418f9t5JxYwZ', MAX_UIDL_BYTES)).toEqual({ number: 1, uid: 'whqtswO00WBw418f9t5JxYwZ' });
    expect(parseUidlLine('  12\tabc%41/../x ', MAX_UIDL_BYTES)).toEqual({ number: 12, uid: 'abc%41/../x' });
  });

  it('writes each byte outside 0x21..0x7E as %XX: printable, the same for the same bytes, different for different ones', () => {
    expect(parseUidlLine(asRead('3 café'), MAX_UIDL_BYTES)).toEqual({ number: 3, uid: 'caf%C3%A9' });
    expect(parseUidlLine(asRead('3 cafe\u0301'), MAX_UIDL_BYTES).uid).toBe('cafe%CC%81');
    expect(parseUidlLine('4 a\u0001b\u007f', MAX_UIDL_BYTES).uid).toBe('a%01b%7F');
    expect(parseUidlLine(asRead('3 café'), MAX_UIDL_BYTES).uid).toMatch(/^[!-~]+$/);
  });

  it('refuses malformed lines and over-long ids, quoting the line without its raw bytes', () => {
    expect(() => parseUidlLine('x abc', MAX_UIDL_BYTES)).toThrow(MalformedResponseError);
    expect(() => parseUidlLine('1', MAX_UIDL_BYTES)).toThrow(/malformed UIDL line/);
    expect(() => parseUidlLine('1 a b', MAX_UIDL_BYTES)).toThrow(/malformed UIDL line/);
    expect(() => parseUidlLine(`1 ${'a'.repeat(MAX_UIDL_BYTES + 1)}`, MAX_UIDL_BYTES)).toThrow(/longer than 512 bytes/);
    expect(() => parseUidlLine(asRead(`1 ${'é'.repeat(100)}`), MAX_UIDL_BYTES)).toThrow(/longer than 512 bytes once escaped/);
    let message = '';
    try {
      parseUidlLine(asRead('1 é é'), MAX_UIDL_BYTES);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/^malformed UIDL line: "1 \?\? \?\?"$/);
  });
});

describe('checkListingNumbers', () => {
  it('accepts numbers from 1, each once, in any order', () => {
    expect(() => checkListingNumbers([parseListLine('2 10'), parseListLine('1 20'), parseListLine('7 5')], 'LIST')).not.toThrow();
    expect(() => checkListingNumbers([], 'UIDL')).not.toThrow();
  });

  it('refuses message number 0 and a number listed twice', () => {
    expect(() => checkListingNumbers([parseListLine('0 5')], 'LIST')).toThrow(/LIST listed message number 0 \(numbers start at 1\)/);
    expect(() => checkListingNumbers([{ number: 1 }, { number: 7 }, { number: 1 }], 'UIDL')).toThrow(/UIDL listed message number 1 twice/);
  });
});

describe('apopTimestamp', () => {
  it('finds an RFC 1939 msg-id in the greeting', () => {
    expect(apopTimestamp('POP3 server ready <1896.697170952@dbc.mtview.ca.us>')).toBe('<1896.697170952@dbc.mtview.ca.us>');
    expect(apopTimestamp('ready <a@b> and more')).toBe('<a@b>');
  });

  it('does not take any <...> for one: it needs an @ with something on both sides', () => {
    expect(apopTimestamp('Dovecot ready.')).toBeUndefined();
    expect(apopTimestamp('ready <x>')).toBeUndefined();
    expect(apopTimestamp('ready <@host>')).toBeUndefined();
    expect(apopTimestamp('ready <user@>')).toBeUndefined();
    expect(apopTimestamp('ready <a b@c>')).toBeUndefined();
  });
});

describe('parseCapabilities', () => {
  it('reads the typed facts of RFC 2449 and RFC 3206 as Courier, Cyrus and Dovecot announce them', () => {
    const courier = parseCapabilities(['TOP', 'USER', 'LOGIN-DELAY 10', 'PIPELINING', 'UIDL', 'IMPLEMENTATION Courier Mail Server', 'UTF8', 'STLS']);
    expect(courier.loginDelaySeconds).toBe(10);
    expect(courier.expire).toBeUndefined();
    expect(courier.implementation).toBe('Courier Mail Server');
    expect(courier.respCodes).toBe(false);
    expect(courier.authRespCode).toBe(false);
    const cyrus = parseCapabilities(['EXPIRE NEVER', 'LOGIN-DELAY 0', 'TOP', 'UIDL', 'PIPELINING', 'RESP-CODES', 'AUTH-RESP-CODE', 'USER', 'IMPLEMENTATION Cyrus POP3 3.6.1']);
    expect(cyrus.expire).toEqual({ kind: 'never' });
    expect(cyrus.loginDelaySeconds).toBe(0);
    expect(cyrus.respCodes).toBe(true);
    expect(cyrus.authRespCode).toBe(true);
    expect(cyrus.implementation).toBe('Cyrus POP3 3.6.1');
  });

  it('EXPIRE in days (0: the server deletes what was retrieved), with USER after login, case-insensitively', () => {
    expect(parseCapabilities(['EXPIRE 0']).expire).toEqual({ kind: 'days', days: 0 });
    expect(parseCapabilities(['expire 31 USER']).expire).toEqual({ kind: 'days', days: 31 });
    expect(parseCapabilities(['EXPIRE never']).expire).toEqual({ kind: 'never' });
    expect(parseCapabilities(['login-delay 900 USER']).loginDelaySeconds).toBe(900);
  });

  it('ignores arguments that are not numbers rather than refusing CAPA', () => {
    expect(parseCapabilities(['EXPIRE soon']).expire).toBeUndefined();
    expect(parseCapabilities(['EXPIRE']).expire).toBeUndefined();
    expect(parseCapabilities(['LOGIN-DELAY -5']).loginDelaySeconds).toBeUndefined();
    expect(parseCapabilities(['LOGIN-DELAY']).loginDelaySeconds).toBeUndefined();
    expect(parseCapabilities(['IMPLEMENTATION']).implementation).toBeUndefined();
  });

  it('knows nothing of a server that did not answer CAPA', () => {
    expect(NO_CAPABILITIES.loginDelaySeconds).toBeUndefined();
    expect(NO_CAPABILITIES.expire).toBeUndefined();
    expect(NO_CAPABILITIES.respCodes).toBe(false);
    expect(NO_CAPABILITIES.authRespCode).toBe(false);
    expect(NO_CAPABILITIES.implementation).toBeUndefined();
  });
});
