// The CLI's mailbox URL: what it parses to, and that no error message ever quotes what stands
// before the host (a user, or a password someone put there, perhaps holding `@` or `/`).
import { describe, expect, it } from 'vitest';
import { parseMailboxUrl } from '../../cli/mailbox-url.js';
import { UsageError } from '../../cli/exit-codes.js';

function usageError(text: string, options: { insecurePlaintext?: boolean } = {}): UsageError {
  try {
    parseMailboxUrl(text, options);
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return error as UsageError;
  }
  throw new Error(`parsed: ${text}`);
}

describe('parseMailboxUrl', () => {
  it('parses implicit TLS, STLS and plaintext URLs with their default and given ports, percent-decoding the user', () => {
    expect(parseMailboxUrl('pop3s://jane%40example.com@mail.example.com')).toEqual({
      scheme: 'pop3s',
      user: 'jane@example.com',
      host: 'mail.example.com',
      port: 995,
      tls: 'implicit',
    });
    expect(parseMailboxUrl('POP3://jane@127.0.0.1:1110/')).toEqual({ scheme: 'pop3', user: 'jane', host: '127.0.0.1', port: 1110, tls: 'starttls' });
    expect(parseMailboxUrl('pop3://[::1]', { insecurePlaintext: true })).toEqual({ scheme: 'pop3', user: undefined, host: '::1', port: 110, tls: 'insecure-plaintext' });
  });

  it('refuses a password in the URL without quoting it, whatever characters it holds', () => {
    for (const url of [
      'pop3s://jane:hunter2@mail.example.com',
      'pop3s://jane:S3cr@tPW@mail.example.com',
      'pop3s://jane:hunter2@mail.example.com/inbox',
      'pop3s://jane:a/b?c#d@mail.example.com',
      'jane:hunter2@mail.example.com',
    ]) {
      const error = usageError(url);
      expect(error.message, url).toMatch(/do not put a password in the URL/);
      for (const secret of ['hunter2', 'S3cr', 'tPW', 'a/b']) expect(error.message, url).not.toContain(secret);
    }
  });

  it('masks the user part in every other error message, and still says what is wrong', () => {
    const cases: Array<[string, RegExp]> = [
      ['http://S3cr@tPW@mail.example.com', /not a mailbox URL: "http:\/\/\*\*\*@mail\.example\.com"/],
      ['pop3s://S3cr@tPW@mail.example.com/inbox', /not a mailbox URL: "pop3s:\/\/\*\*\*@mail\.example\.com\/inbox"/],
      ['pop3s://S3cr%ZZ@mail.example.com', /bad percent-encoding in the user part of "pop3s:\/\/\*\*\*@mail\.example\.com"/],
      ['pop3s://S3cr@mail.example.com:99999', /bad port "99999" in "pop3s:\/\/\*\*\*@mail\.example\.com:99999"/],
      ['pop3s://S3cr@[::1', /bad IPv6 address in "pop3s:\/\/\*\*\*@\[::1"/],
      ['pop3s://S3cr@a:1:2', /bad host in "pop3s:\/\/\*\*\*@a:1:2" \(IPv6 addresses go in brackets\)/],
    ];
    for (const [url, message] of cases) {
      const error = usageError(url);
      expect(error.message, url).toMatch(message);
      expect(error.message, url).not.toContain('S3cr');
    }
    expect(usageError('pop3s://mail.example.com:0').message).toBe('bad port "0" in "pop3s://mail.example.com:0"');
    expect(usageError('pop3s://jane@mail.example.com', { insecurePlaintext: true }).message).toMatch(/--insecure-plaintext goes with pop3:\/\//);
  });
});
