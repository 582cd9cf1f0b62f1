import { describe, expect, it } from 'vitest';
import { apopDigest } from '../../lib/pop3/apop.js';
import { commands, REDACTED } from '../../lib/pop3/command.js';
import { cramMd5Session } from '../../lib/pop3/sasl/cram-md5.js';
import { loginSession } from '../../lib/pop3/sasl/login.js';
import { chooseAuthMethod, SaslError } from '../../lib/pop3/sasl/mechanism.js';
import { MAX_AUTH_LINE_OCTETS, oauthBearerSession, xoauth2Session } from '../../lib/pop3/sasl/oauth.js';
import { plainSession } from '../../lib/pop3/sasl/plain.js';
import { saslprep } from '../../lib/pop3/sasl/saslprep.js';
import { scramSession } from '../../lib/pop3/sasl/scram.js';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string): string => Buffer.from(s, 'base64').toString('utf8');

describe('SCRAM', () => {
  it('matches the RFC 5802 SCRAM-SHA-1 example and verifies the server signature', async () => {
    const s = scramSession('sha1', 'user', 'pencil', 'fyko+d2lbbFgONRv9qkxdawL');
    expect(unb64(s.initialResponse()!)).toBe('n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL');
    const final = await s.respond(b64('r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096'));
    expect(unb64(final)).toBe('c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=');
    expect(await s.respond(b64('v=rmF9pqV8S7suAoZWja4dJRkFsKQ='))).toBe('');
    expect(() => s.verifyCompletion!('')).not.toThrow();
  });

  it('matches the RFC 7677 SCRAM-SHA-256 example', async () => {
    const s = scramSession('sha256', 'user', 'pencil', 'rOprNGfwEbeRWgbNEkqO');
    const final = await s.respond(
      b64('r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096'),
    );
    expect(unb64(final)).toBe(
      'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
    );
    await s.respond(b64('v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4='));
    expect(() => s.verifyCompletion!('')).not.toThrow();
  });

  it('refuses a wrong server signature, a missing one, a foreign nonce and absurd iteration counts', async () => {
    const wrong = scramSession('sha1', 'user', 'pencil', 'fyko+d2lbbFgONRv9qkxdawL');
    await wrong.respond(b64('r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096'));
    await expect(async () => wrong.respond(b64('v=AAAAAAAAAAAAAAAAAAAAAAAAAAA='))).rejects.toThrow(/signature does not match/);

    const silent = scramSession('sha1', 'user', 'pencil', 'fyko+d2lbbFgONRv9qkxdawL');
    await silent.respond(b64('r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096'));
    expect(() => silent.verifyCompletion!('Logged in.')).toThrow(/without proving/);

    const foreign = scramSession('sha256', 'user', 'pencil', 'abc');
    await expect(async () => foreign.respond(b64('r=xyz123,s=QSXCR+Q6sek8bf92,i=4096'))).rejects.toThrow(/nonce/);

    const costly = scramSession('sha256', 'user', 'pencil', 'abc');
    await expect(async () => costly.respond(b64('r=abcdef,s=QSXCR+Q6sek8bf92,i=2000000000'))).rejects.toThrow(/iteration/);
  });

  it('escapes = and , in the user name', () => {
    const s = scramSession('sha256', 'a=b,c', 'x', 'n0nce');
    expect(unb64(s.initialResponse()!)).toBe('n,,n=a=3Db=2Cc,r=n0nce');
  });
});

describe('other mechanisms', () => {
  it('CRAM-MD5 matches RFC 2195', () => {
    const s = cramMd5Session('tim', 'tanstaaftanstaaf');
    expect(unb64(s.respond(b64('<1896.697170952@postoffice.reston.mci.net>')) as string)).toBe(
      'tim b913a602c7eda7a495b4e6e7334d3890',
    );
  });

  it('APOP matches RFC 1939', () => {
    expect(apopDigest('<1896.697170952@dbc.mtview.ca.us>', 'tanstaaf')).toBe('c4c9334bac560ecc979e58001b3e22fb');
  });

  it('PLAIN encodes authzid, user and password', () => {
    expect(unb64(plainSession('jane', 'secret').initialResponse()!)).toBe('\0jane\0secret');
  });

  it('XOAUTH2 sends the token after an empty challenge (Microsoft 365 two-step)', () => {
    const short = xoauth2Session('u@example.com', 'tok');
    expect(short.initialResponse()).toBeUndefined();
    expect(unb64(short.respond('') as string)).toBe('user=u@example.com\x01auth=Bearer tok\x01\x01');

    const longToken = 'x'.repeat(1500);
    const long = xoauth2Session('u@example.com', longToken);
    expect(long.initialResponse()).toBeUndefined();
    expect(unb64(long.respond('') as string)).toContain(`auth=Bearer ${longToken}`);
    // Then an error challenge: answered with an empty line, and the status is kept.
    expect(long.respond(b64('{"status":"401","schemes":"bearer","scope":"https://outlook.office.com/.default"}'))).toBe('');
    expect(long.failureDetail!()).toBe('server refused the token (status 401)');
    // OAUTHBEARER sends an initial response only while the AUTH line fits in 255 octets.
    expect(oauthBearerSession('u', 'x'.repeat(300)).initialResponse()).toBeUndefined();
    const inline = oauthBearerSession('u', 'x'.repeat(100)).initialResponse()!;
    expect(`AUTH OAUTHBEARER ${inline}\r\n`.length).toBeLessThanOrEqual(MAX_AUTH_LINE_OCTETS);
  });

  it('OAUTHBEARER builds the RFC 7628 message and answers an error with %x01', () => {
    const s = oauthBearerSession('u@example.com', 'tok', 'mail.example.com', 995);
    expect(unb64(s.initialResponse()!)).toBe('n,a=u@example.com,\x01host=mail.example.com\x01port=995\x01auth=Bearer tok\x01\x01');
    expect(s.respond(b64('{"status":"invalid_token"}'))).toBe(b64('\x01'));
    expect(s.failureDetail!()).toMatch(/invalid_token/);
  });

  it('saslprep maps non-ASCII spaces and refuses control characters', () => {
    expect(saslprep('pass\u00a0word')).toBe('pass word');
    expect(saslprep('I\u00adX')).toBe('IX');
    expect(() => saslprep('a\u0007b')).toThrow();
    expect(saslprep('plain ASCII ~!')).toBe('plain ASCII ~!');
  });
});

describe('choosing a method', () => {
  const all = { sasl: ['PLAIN', 'LOGIN', 'CRAM-MD5', 'SCRAM-SHA-1', 'SCRAM-SHA-256'], apop: true, user: true, capaKnown: true, tls: false };
  const pw = { user: 'u', password: 'p' };
  it('without TLS prefers challenge-response, strongest first', () => {
    expect(chooseAuthMethod(pw, all)).toBe('SCRAM-SHA-256');
    expect(chooseAuthMethod(pw, { ...all, sasl: ['PLAIN', 'LOGIN'] })).toBe('APOP');
    expect(chooseAuthMethod(pw, { ...all, sasl: ['LOGIN', 'PLAIN'], apop: false })).toBe('PLAIN');
    expect(chooseAuthMethod(pw, { ...all, sasl: [], apop: false, user: true })).toBe('USER');
    expect(chooseAuthMethod(pw, { ...all, sasl: [], apop: false, user: false })).toBeUndefined();
    expect(chooseAuthMethod(pw, { ...all, sasl: [], apop: false, user: false, capaKnown: false })).toBe('USER');
    expect(chooseAuthMethod(pw, { ...all, sasl: [], apop: true, user: false, capaKnown: false })).toBe('APOP');
  });
  it('under TLS sends the password first, so it works wherever PLAIN or USER/PASS would', () => {
    const tls = { ...all, tls: true };
    expect(chooseAuthMethod(pw, tls)).toBe('PLAIN');
    expect(chooseAuthMethod(pw, { ...tls, sasl: ['CRAM-MD5', 'LOGIN'] })).toBe('LOGIN');
    // An APOP banner (or CRAM-MD5/SCRAM in CAPA) does not mean the server holds that secret.
    expect(chooseAuthMethod(pw, { ...tls, sasl: ['CRAM-MD5', 'SCRAM-SHA-256'] })).toBe('USER');
    expect(chooseAuthMethod(pw, { ...tls, sasl: ['CRAM-MD5', 'SCRAM-SHA-1', 'SCRAM-SHA-256'], user: false })).toBe('SCRAM-SHA-256');
    expect(chooseAuthMethod(pw, { ...tls, sasl: ['CRAM-MD5'], user: false })).toBe('CRAM-MD5');
    expect(chooseAuthMethod(pw, { ...tls, sasl: [], user: false })).toBe('APOP');
    // No CAPA: an APOP banner with no CAPA still logs in with USER/PASS under TLS.
    expect(chooseAuthMethod(pw, { ...tls, sasl: [], apop: true, user: false, capaKnown: false })).toBe('USER');
  });
  it('uses OAUTHBEARER, then XOAUTH2, for tokens', () => {
    expect(chooseAuthMethod({ user: 'u', accessToken: 't' }, { ...all, sasl: ['XOAUTH2', 'OAUTHBEARER'] })).toBe('OAUTHBEARER');
    expect(chooseAuthMethod({ user: 'u', accessToken: 't' }, { ...all, sasl: ['PLAIN', 'XOAUTH2'] })).toBe('XOAUTH2');
    expect(chooseAuthMethod({ user: 'u', accessToken: 't' }, all)).toBeUndefined();
    expect(chooseAuthMethod({ user: 'u', accessToken: 't' }, { ...all, tls: true, sasl: ['XOAUTH2', 'PLAIN'] })).toBe('XOAUTH2');
  });
});

describe('commands', () => {
  it('never put credentials into the log form', () => {
    expect(commands.pass('hunter2').logForm).toBe(`PASS ${REDACTED}`);
    expect(commands.pass('hunter2').wire).toBe('PASS hunter2\r\n');
    expect(commands.auth('PLAIN', b64('\0u\0hunter2')).logForm).toBe(`AUTH PLAIN ${REDACTED}`);
    expect(commands.apop('u', 'c4c9334bac560ecc979e58001b3e22fb').logForm).toBe(`APOP u ${REDACTED}`);
  });
  it('refuse CR, LF and NUL in arguments (no command injection)', () => {
    expect(() => commands.user('bob\r\nDELE 1')).toThrow(/CR, LF/);
    expect(() => commands.pass('a\nb')).toThrow(/CR, LF/);
    expect(() => commands.retr(0)).toThrow(/message number/);
  });
});

describe('mechanisms do not answer a challenge they have no answer for', () => {
  it('PLAIN sends the credentials once: never again after the initial response', () => {
    const s = plainSession('jane', 'secret');
    s.initialResponse();
    expect(() => s.respond('')).toThrow(SaslError);
    // Without an initial response: one empty challenge is answered, nothing after it.
    const asked = plainSession('jane', 'secret');
    expect(unb64(asked.respond('') as string)).toBe('\0jane\0secret');
    expect(() => asked.respond('')).toThrow(SaslError);
    expect(() => plainSession('jane', 'secret').respond(b64('more?'))).toThrow(SaslError);
  });

  it('LOGIN cancels a third challenge, CRAM-MD5 a second', () => {
    const login = loginSession('jane', 'secret');
    login.respond(b64('Username:'));
    login.respond(b64('Password:'));
    expect(() => login.respond(b64('Again:'))).toThrow(SaslError);
    const cram = cramMd5Session('tim', 'tanstaaftanstaaf');
    cram.respond(b64('<1896.697170952@postoffice.reston.mci.net>'));
    expect(() => cram.respond(b64('<1897.697170952@postoffice.reston.mci.net>'))).toThrow(SaslError);
  });

  it('XOAUTH2 and OAUTHBEARER answer one error challenge, then cancel', () => {
    for (const s of [xoauth2Session('u', 'tok'), oauthBearerSession('u', 'tok')]) {
      if (s.initialResponse() === undefined) s.respond('');
      s.respond(b64('{"status":"401"}'));
      expect(() => s.respond(b64('{"status":"401"}'))).toThrow(SaslError);
      expect(() => s.respond('')).toThrow(SaslError);
    }
  });

  it('saslprep refuses prohibited characters with a SaslError that does not echo the input', () => {
    let error: unknown;
    try {
      saslprep('s\u00e9cret\u0007');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SaslError);
    expect((error as Error).message).not.toContain('cret');
  });
});
