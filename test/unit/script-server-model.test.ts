// The scriptable POP3 server's decisions, without sockets: the mailbox model, CAPA, the feature
// defaults, SASL payload decoding, command matching and the log form of commands.
import { describe, expect, it } from 'vitest';
import { capabilityLines } from '../../lib/testing/pop3-server/capabilities.js';
import { redactCommand, splitCommand } from '../../lib/testing/pop3-server/command-line.js';
import { matchesCommand } from '../../lib/testing/pop3-server/command-matcher.js';
import type { SessionState } from '../../lib/testing/pop3-server/hooks.js';
import {
  expungeDeleted,
  findMessage,
  loadMaildrop,
  maildropTotals,
  type MailboxMessage,
} from '../../lib/testing/pop3-server/mailbox.js';
import { hookSets, resolveFeatures } from '../../lib/testing/pop3-server/options.js';
import { decodeBase64, parseOauthBearer, parseXoauth2 } from '../../lib/testing/pop3-server/sasl-payloads.js';

const msg = (text: string, extra: Partial<MailboxMessage> = {}): MailboxMessage => ({ bytes: Buffer.from(text), ...extra });
const TLS = { key: 'k', cert: 'c' };

describe('mailbox model', () => {
  it('numbers the messages not yet deleted from 1 and keeps given UIDs as they are', () => {
    const box = [msg('a', { uid: ' odd uid ' }), msg('gone', { deleted: true }), msg('bb', { uid: 'x' })];
    const drop = loadMaildrop(box, new WeakMap());
    expect(drop.map((m) => [m.number, m.uid, m.size, m.deleted])).toEqual([
      [1, ' odd uid ', 1, false],
      [2, 'x', 2, false],
    ]);
    expect(drop[1]?.stored).toBe(box[2]);
  });

  it('derives a UID from the bytes, unique within the maildrop and the same in the next session', () => {
    const box = [msg('same'), msg('same'), msg('other')];
    const assigned = new WeakMap<MailboxMessage, string>();
    const first = loadMaildrop(box, assigned).map((m) => m.uid);
    expect(first[0]).toMatch(/^[0-9a-f]{32}$/);
    expect(first[1]).toBe(`${first[0]}-2`);
    expect(first[2]).not.toBe(first[0]);
    box.shift();
    expect(loadMaildrop(box, assigned).map((m) => m.uid)).toEqual(first.slice(1));
    // A given UID that equals the derived one pushes the derived one aside.
    const clash = [msg('same', { uid: first[0] }), msg('same')];
    expect(loadMaildrop(clash, new WeakMap()).map((m) => m.uid)).toEqual([first[0], `${first[0]}-2`]);
  });

  it('finds a message only by a plain positive number, deleted or not', () => {
    const drop = loadMaildrop([msg('a'), msg('b')], new WeakMap());
    expect(findMessage(drop, '2')?.number).toBe(2);
    expect(findMessage(drop, 1)?.number).toBe(1);
    for (const bad of ['0', '01', '-1', '1.0', '+1', 'x', '', '3', undefined]) expect(findMessage(drop, bad)).toBeUndefined();
    drop[0]!.deleted = true;
    expect(findMessage(drop, '1')?.deleted).toBe(true);
  });

  it('counts what STAT reports without the messages marked deleted', () => {
    const drop = loadMaildrop([msg('a'), msg('bb'), msg('ccc')], new WeakMap());
    expect(maildropTotals(drop)).toEqual({ count: 3, octets: 6 });
    drop[1]!.deleted = true;
    expect(maildropTotals(drop)).toEqual({ count: 2, octets: 4 });
  });

  it('QUIT removes the marked messages from the maildrop and marks their entries deleted', () => {
    const box = [msg('a', { uid: 'u1' }), msg('b', { uid: 'u2' }), msg('c', { uid: 'u3' })];
    const drop = loadMaildrop(box, new WeakMap());
    drop[0]!.deleted = true;
    drop[2]!.deleted = true;
    const [first, , third] = box;
    expect(expungeDeleted(box, drop)).toEqual(['u1', 'u3']);
    expect(box.map((m) => m.uid)).toEqual(['u2']);
    expect([first?.deleted, third?.deleted]).toEqual([true, true]);
    // Without a maildrop entry (the test replaced it) the marks still apply to the messages.
    const orphan = loadMaildrop([msg('d', { uid: 'u4' })], new WeakMap());
    orphan[0]!.deleted = true;
    expect(expungeDeleted(undefined, orphan)).toEqual(['u4']);
    expect(orphan[0]?.stored.deleted).toBe(true);
  });
});

describe('features and capabilities', () => {
  it('fills in the defaults; STLS by default only with `tls` and without implicit TLS', () => {
    expect(resolveFeatures({})).toEqual({ uidl: true, top: true, pipelining: true, stls: false, apop: false, sasl: ['PLAIN', 'LOGIN'], user: true });
    expect(resolveFeatures({ tls: TLS }).stls).toBe(true);
    expect(resolveFeatures({ tls: TLS, implicitTls: true }).stls).toBe(false);
    expect(resolveFeatures({ tls: TLS, implicitTls: true, features: { stls: true } }).stls).toBe(false);
    expect(resolveFeatures({ features: { sasl: ['cram-md5', 'xoauth2'] } }).sasl).toEqual(['CRAM-MD5', 'XOAUTH2']);
  });

  it('refuses TLS features without a certificate', () => {
    expect(() => resolveFeatures({ implicitTls: true })).toThrow(/implicitTls needs the `tls` option/);
    expect(() => resolveFeatures({ features: { stls: true } })).toThrow(/features.stls needs the `tls` option/);
  });

  it('takes one hook set or several, in order', () => {
    const a = {};
    const b = {};
    expect(hookSets({})).toEqual([]);
    expect(hookSets({ hooks: a })[0]).toBe(a);
    const both = hookSets({ hooks: [a, b] });
    expect(both.length).toBe(2);
    expect(both[1]).toBe(b);
  });

  it('advertises STLS only on a plaintext connection before login; configured lines win', () => {
    const f = resolveFeatures({ tls: TLS });
    const plain = capabilityLines(f, undefined, false, 'AUTHORIZATION');
    expect(plain).toEqual(['TOP', 'UIDL', 'USER', 'SASL PLAIN LOGIN', 'PIPELINING', 'STLS', 'RESP-CODES', 'AUTH-RESP-CODE', 'IMPLEMENTATION popdrain-test-server']);
    expect(capabilityLines(f, undefined, true, 'AUTHORIZATION')).not.toContain('STLS');
    expect(capabilityLines(f, undefined, false, 'TRANSACTION')).not.toContain('STLS');
    const bare = resolveFeatures({ features: { top: false, uidl: false, user: false, sasl: [], pipelining: false } });
    expect(capabilityLines(bare, undefined, false, 'AUTHORIZATION')).toEqual(['RESP-CODES', 'AUTH-RESP-CODE', 'IMPLEMENTATION popdrain-test-server']);
    expect(capabilityLines(f, ['X-ONLY'], false, 'AUTHORIZATION')).toEqual(['X-ONLY']);
  });
});

describe('SASL payloads', () => {
  it('decodes strict base64 only', () => {
    expect(decodeBase64('')?.length).toBe(0);
    expect(decodeBase64('AGFsaWNlAHB3')?.toString()).toBe('\0alice\0pw');
    for (const bad of ['AGFsaWNlAHB', 'a b=', 'YQ', 'YQ===', '*']) expect(decodeBase64(bad)).toBeUndefined();
  });

  it('reads XOAUTH2: user and bearer token, both required', () => {
    expect(parseXoauth2(Buffer.from('user=alice\x01auth=Bearer t0k\x01\x01'))).toEqual({ user: 'alice', token: 't0k' });
    expect(parseXoauth2(Buffer.from('user=alice\x01\x01'))).toBeUndefined();
    expect(parseXoauth2(Buffer.from('auth=Bearer t0k\x01\x01'))).toBeUndefined();
  });

  it('reads OAUTHBEARER: the authzid unescaped or absent, no channel binding', () => {
    expect(parseOauthBearer(Buffer.from('n,a=a=2Cb=3Dc,\x01host=x\x01auth=Bearer t\x01\x01'))).toEqual({ user: 'a,b=c', token: 't' });
    expect(parseOauthBearer(Buffer.from('n,,\x01auth=Bearer t\x01\x01'))).toEqual({ user: undefined, token: 't' });
    expect(parseOauthBearer(Buffer.from('n,a=,\x01auth=Bearer t\x01\x01'))).toEqual({ user: undefined, token: 't' });
    expect(parseOauthBearer(Buffer.from('p=tls-unique,,\x01auth=Bearer t\x01\x01'))).toBeUndefined();
    expect(parseOauthBearer(Buffer.from('n,,\x01host=x\x01\x01'))).toBeUndefined();
    expect(parseOauthBearer(Buffer.from('n,,auth=Bearer t'))).toBeUndefined();
  });
});

describe('commands', () => {
  const state = {} as SessionState;

  it('matches a verb, a whole command, a pattern or a predicate', () => {
    expect(matchesCommand('retr', 'RETR  3', state)).toBe(true);
    expect(matchesCommand('RETR', 'RETRX 3', state)).toBe(false);
    expect(matchesCommand('RETR 3', 'retr 3', state)).toBe(true);
    expect(matchesCommand('RETR 3', 'RETR 30', state)).toBe(false);
    expect(matchesCommand(/^TOP \d+ 0$/, 'TOP 1 0', state)).toBe(true);
    expect(matchesCommand((line) => line.length > 4, 'NOOP', state)).toBe(false);
  });

  it('splits a line into an upper-case verb and its arguments', () => {
    expect(splitCommand('  top  1   0 ')).toEqual({ verb: 'TOP', args: ['1', '0'] });
    expect(splitCommand('')).toEqual({ verb: '', args: [] });
  });

  it('keeps passwords, digests and SASL payloads out of the log form', () => {
    expect(redactCommand('PASS secret words')).toBe('PASS <redacted>');
    expect(redactCommand('APOP alice 0123abcd')).toBe('APOP alice <redacted>');
    expect(redactCommand('AUTH PLAIN AGFsaWNlAHB3')).toBe('AUTH PLAIN <redacted>');
    expect(redactCommand('AUTH PLAIN')).toBe('AUTH PLAIN');
    expect(redactCommand('USER alice')).toBe('USER alice');
  });
});
