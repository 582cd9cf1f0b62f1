// Reading a -ERR reply as the server means it: its response code honoured as CAPA announced
// (RFC 2449 RESP-CODES and LOGIN-DELAY, RFC 3206 AUTH-RESP-CODE).
import { describe, expect, it } from 'vitest';
import { effectiveResponseCode, errorFromStatus, NO_RESPONSE_CODE_FACTS } from '../../lib/pop3/errors.js';
import { parseCapabilities } from '../../lib/pop3/response.js';

const dovecotLike = parseCapabilities(['USER', 'RESP-CODES', 'AUTH-RESP-CODE', 'PIPELINING']);
const courierLike = parseCapabilities(['USER', 'LOGIN-DELAY 10', 'UTF8']);

describe('effectiveResponseCode', () => {
  it('takes any bracketed word as a code from a server that announces RESP-CODES', () => {
    expect(effectiveResponseCode('X-VENDOR', dovecotLike)).toBe('X-VENDOR');
    expect(effectiveResponseCode('in-use', dovecotLike)).toBe('IN-USE');
  });

  it('without RESP-CODES, only the codes RFC 2449 and RFC 3206 define; other brackets are text', () => {
    expect(effectiveResponseCode('X-VENDOR', courierLike)).toBeUndefined();
    expect(effectiveResponseCode('NOTE', NO_RESPONSE_CODE_FACTS)).toBeUndefined();
    for (const code of ['IN-USE', 'LOGIN-DELAY', 'SYS/TEMP', 'SYS/PERM', 'AUTH']) {
      expect(effectiveResponseCode(code, NO_RESPONSE_CODE_FACTS)).toBe(code);
    }
    expect(effectiveResponseCode(undefined, dovecotLike)).toBeUndefined();
  });
});

describe('errorFromStatus', () => {
  it('[LOGIN-DELAY] is retryable and carries CAPA LOGIN-DELAY as retryAfterSeconds, in the message too', () => {
    const e = errorFromStatus('[LOGIN-DELAY] wait', 'LOGIN-DELAY', 'auth', 'PASS ****', courierLike);
    expect(e.code).toBe('LOGIN_DELAY');
    expect(e.retryable).toBe(true);
    expect(e.retryAfterSeconds).toBe(10);
    expect(e.message).toBe('PASS **** failed in auth: -ERR [LOGIN-DELAY] wait (the server allows one login per 10 s: retry after that)');
    const unknown = errorFromStatus('[LOGIN-DELAY] wait', 'LOGIN-DELAY', 'auth', 'PASS ****', dovecotLike);
    expect(unknown.code).toBe('LOGIN_DELAY');
    expect(unknown.retryAfterSeconds).toBeUndefined();
  });

  it('under AUTH-RESP-CODE a refused login without [AUTH] is not about the credentials', () => {
    const e = errorFromStatus('Temporary failure', undefined, 'auth', 'PASS ****', dovecotLike);
    expect(e.code).toBe('COMMAND_FAILED');
    expect(e.retryable).toBe(true);
    expect(e.message).toMatch(/not a problem with the credentials/);
    const refused = errorFromStatus('[AUTH] Authentication failed', 'AUTH', 'auth', 'PASS ****', dovecotLike);
    expect(refused.code).toBe('AUTH_FAILED');
    expect(refused.retryable).toBe(false);
  });

  it('without AUTH-RESP-CODE any refused login is AUTH_FAILED; outside login, COMMAND_FAILED', () => {
    expect(errorFromStatus('bad password', undefined, 'auth', 'PASS ****', courierLike).code).toBe('AUTH_FAILED');
    expect(errorFromStatus('[X-VENDOR] bad', 'X-VENDOR', 'auth', 'PASS ****', courierLike).code).toBe('AUTH_FAILED');
    expect(errorFromStatus('no such message', undefined, 'transaction', 'RETR 9', dovecotLike).code).toBe('COMMAND_FAILED');
    expect(errorFromStatus('no such message', undefined, 'transaction', 'RETR 9', dovecotLike).retryable).toBe(false);
    expect(errorFromStatus('[SYS/TEMP] busy', 'SYS/TEMP', 'transaction', 'RETR 1', courierLike).code).toBe('SYS_TEMP');
  });
});
