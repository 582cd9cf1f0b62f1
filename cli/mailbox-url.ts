/**
 * `pop3s://user@host[:port]` (implicit TLS, port 995) and `pop3://user@host[:port]` (STLS
 * required, port 110). The user part is percent-decoded, since logins are often e-mail
 * addresses: `pop3s://jane%40example.com@mail.example.com`.
 */
import type { TlsMode } from '../lib/pop3/index.js';
import { UsageError } from './exit-codes.js';

export interface MailboxUrl {
  scheme: 'pop3' | 'pop3s';
  user: string | undefined;
  host: string;
  port: number;
  tls: TlsMode;
}

/**
 * The URL as an error message may quote it: everything before its last `@` (the user, and a
 * password if one was put there, perhaps holding `@` or `/` itself) is masked.
 */
function quoted(text: string): string {
  const t = text.trim();
  const at = t.lastIndexOf('@');
  if (at === -1) return `"${t}"`;
  const schemeEnd = t.indexOf('://');
  const scheme = schemeEnd !== -1 && schemeEnd < at ? t.slice(0, schemeEnd + 3) : '';
  return `"${scheme}***${t.slice(at)}"`;
}

export function parseMailboxUrl(text: string, options: { insecurePlaintext?: boolean } = {}): MailboxUrl {
  const trimmed = text.trim();
  // A password is refused before anything else, and never quoted: whatever stands between the
  // scheme and the last `@` is the user part, and a `:` there is a password.
  const schemeEnd = trimmed.indexOf('://');
  const at = trimmed.lastIndexOf('@');
  if (at !== -1 && trimmed.slice(schemeEnd === -1 ? 0 : schemeEnd + 3, at).includes(':')) {
    throw new UsageError('do not put a password in the URL: use POPDRAIN_PASSWORD, --password-file or the prompt');
  }
  const m = /^(pop3s?):\/\/(?:([^@/?#]*)@)?([^/?#@]+)\/?$/i.exec(trimmed);
  if (m === null) {
    throw new UsageError(`not a mailbox URL: ${quoted(text)} (expected pop3s://user@host[:port] or pop3://user@host[:port])`);
  }
  const scheme = m[1]!.toLowerCase() as 'pop3' | 'pop3s';
  let user: string | undefined;
  if (m[2] !== undefined && m[2] !== '') {
    try {
      user = decodeURIComponent(m[2]);
    } catch {
      throw new UsageError(`bad percent-encoding in the user part of ${quoted(text)}`);
    }
  }
  const hostPort = m[3]!;
  let host: string;
  let portText: string | undefined;
  if (hostPort.startsWith('[')) {
    const end = hostPort.indexOf(']');
    if (end === -1) throw new UsageError(`bad IPv6 address in ${quoted(text)}`);
    host = hostPort.slice(1, end);
    const rest = hostPort.slice(end + 1);
    if (rest !== '' && !rest.startsWith(':')) throw new UsageError(`bad host in ${quoted(text)}`);
    portText = rest === '' ? undefined : rest.slice(1);
  } else {
    const parts = hostPort.split(':');
    if (parts.length > 2) throw new UsageError(`bad host in ${quoted(text)} (IPv6 addresses go in brackets)`);
    host = parts[0]!;
    portText = parts[1];
  }
  if (!/^[A-Za-z0-9.:-]+$/.test(host) || host.length === 0) throw new UsageError(`bad host name "${host}"`);
  let port = scheme === 'pop3s' ? 995 : 110;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
      throw new UsageError(`bad port "${portText}" in ${quoted(text)}`);
    }
    port = Number(portText);
  }
  let tls: TlsMode = scheme === 'pop3s' ? 'implicit' : 'starttls';
  if (options.insecurePlaintext === true) {
    if (scheme === 'pop3s') throw new UsageError('--insecure-plaintext goes with pop3:// URLs, not pop3s://');
    tls = 'insecure-plaintext';
  }
  return { scheme, user, host, port, tls };
}
