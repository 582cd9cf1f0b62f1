// What `popdrain check` says about the login: the method the automatic choice would use and why,
// and CAPA's typed facts in words.
import { describe, expect, it } from 'vitest';
import { capabilityFacts } from '../../cli/capability-facts.js';
import { explainLoginChoice } from '../../lib/pop3/login-explanation.js';
import { NO_CAPABILITIES, parseCapabilities } from '../../lib/pop3/response.js';

const caps = (...lines: string[]) => parseCapabilities(lines);
const APOP_GREETING = 'POP3 ready <1896.697170952@example.org>';

describe('explainLoginChoice', () => {
  it('under TLS: PLAIN, the first method that needs no server-side secret, even with SCRAM, CRAM-MD5 and APOP offered', () => {
    const server = { greeting: APOP_GREETING, caps: caps('USER', 'SASL SCRAM-SHA-256 CRAM-MD5 PLAIN LOGIN'), capaAnswered: true, tls: true };
    const e = explainLoginChoice('password', 'auto', server);
    expect(e.method).toBe('PLAIN');
    expect(e.reason).toBe('under TLS, the first method that needs no server-side secret (order PLAIN, LOGIN, USER, SCRAM-SHA-256, SCRAM-SHA-1, CRAM-MD5, APOP)');
  });

  it('under TLS with only challenge-response offered: says so', () => {
    const e = explainLoginChoice('password', 'auto', { greeting: 'ready', caps: caps('SASL SCRAM-SHA-256'), capaAnswered: true, tls: true });
    expect(e.method).toBe('SCRAM-SHA-256');
    expect(e.reason).toMatch(/^under TLS, but the server offers no method that needs no server-side secret/);
  });

  it('without TLS: challenge-response first; the clear password only when nothing else is offered', () => {
    const apop = explainLoginChoice('password', 'auto', { greeting: APOP_GREETING, caps: caps('USER'), capaAnswered: true, tls: false });
    expect(apop.method).toBe('APOP');
    expect(apop.reason).toMatch(/^without TLS, challenge-response first so the password never crosses the wire/);
    const user = explainLoginChoice('password', 'auto', { greeting: 'ready', caps: caps('USER'), capaAnswered: true, tls: false });
    expect(user.method).toBe('USER');
    expect(user.reason).toMatch(/^without TLS and no challenge-response method offered: the password crosses the wire in clear/);
  });

  it('no CAPA: USER/PASS under TLS even with an APOP banner', () => {
    const e = explainLoginChoice('password', 'auto', { greeting: APOP_GREETING, caps: NO_CAPABILITIES, capaAnswered: false, tls: true });
    expect(e).toEqual({ method: 'USER', reason: "no CAPA, so USER/PASS, RFC 1939's baseline (an APOP timestamp is not used under TLS: it needs a server-side secret)" });
  });

  it('a forced method, a token, and no method in common', () => {
    const server = { greeting: 'ready', caps: caps('USER', 'SASL PLAIN XOAUTH2'), capaAnswered: true, tls: true };
    expect(explainLoginChoice('password', 'USER', server)).toEqual({ method: 'USER', reason: 'asked for by name (--auth)' });
    expect(explainLoginChoice('token', 'auto', server).method).toBe('XOAUTH2');
    const none = explainLoginChoice('token', 'auto', { ...server, caps: caps('USER', 'SASL PLAIN') });
    expect(none.method).toBeUndefined();
    expect(none.reason).toMatch(/no authentication method in common/);
  });
});

describe('capabilityFacts', () => {
  it('names the server, its login delay and its EXPIRE', () => {
    expect(capabilityFacts(caps('IMPLEMENTATION Courier Mail Server', 'LOGIN-DELAY 10'))).toEqual([
      'implementation: Courier Mail Server',
      'login delay: at least 10 s between logins',
    ]);
    expect(capabilityFacts(caps('EXPIRE NEVER'))).toEqual(['expire: never (retrieved messages stay until deleted)']);
    expect(capabilityFacts(caps('EXPIRE 0'))).toEqual(['expire: 0 days: the server deletes every message once retrieved, so keeping mail on the server cannot work']);
    expect(capabilityFacts(caps('EXPIRE 30'))).toEqual(['expire: the server may delete retrieved messages after 30 days']);
    expect(capabilityFacts(NO_CAPABILITIES)).toEqual([]);
  });
});
