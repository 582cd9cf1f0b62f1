/**
 * Text from outside: no secret in use comes back out through a server's answers (POP3 -ERR
 * text quoting PASS or a SASL payload, an OAuth2 token endpoint quoting the request), in any
 * encoding; control characters a server sends are escaped wherever they are shown. Scripted
 * POP3 server and the loopback token endpoint; drainMailbox over in-memory ports.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { refreshTokenGrant } from '../../lib/adapters/oauth2/token-client.js';
import { drainMailbox } from '../../lib/drain/drain-mailbox.js';
import { DEFAULT_UIDL_RESET_GUARD, type MailboxConfig } from '../../lib/drain/mailbox.js';
import { safeLogger } from '../../lib/drain/outside-text.js';
import { ignoreLogRecord, type LogFields } from '../../lib/drain/ports.js';
import { mailboxLogger } from '../../lib/drain/run-context.js';
import { inertText, scrubSecrets } from '../../lib/pop3/index.js';
import { startPop3Server, type Pop3ServerOptions, type Pop3TestServer } from '../../lib/testing/pop3-server/index.js';
import { memoryPorts } from '../support/memory-ports.js';
import { startTokenServer, type OAuth2TokenServer } from '../../testkit/oauth2/token-server.js';

const PASSWORD = 'pa$$-w0rd~Secret!';
const TOKEN = 'ya29.a0AfH6SMBx-token_value.with+symbols/and=';
const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const stripped = (s: string): string => s.replace(/[^A-Za-z0-9]/g, '');

/** Every form a leak may take. */
function forms(secret: string, user = 'alice'): string[] {
  return [
    secret,
    b64(secret),
    stripped(secret),
    encodeURIComponent(secret),
    new URLSearchParams({ x: secret }).toString().slice(2),
    b64(`\0${user}\0${secret}`),
    b64(`user=${user}\x01auth=Bearer ${secret}\x01\x01`),
    b64(`n,a=${user},\x01auth=Bearer ${secret}\x01\x01`),
  ];
}

const closers: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((s) => s.close()));
});

async function pop3(extra: Pop3ServerOptions): Promise<Pop3TestServer> {
  const s = await startPop3Server({ users: { alice: { password: PASSWORD, oauthTokens: [TOKEN] } }, mailboxes: { alice: [] }, ...extra });
  closers.push(s);
  return s;
}

function mailboxOf(s: Pop3TestServer, mechanism: MailboxConfig['mechanism'] = 'auto'): MailboxConfig {
  return {
    id: 'mbx-alice',
    host: s.host,
    port: s.port,
    tls: 'insecure-plaintext',
    user: 'alice',
    secret: { type: 'env', variable: 'UNUSED' },
    mechanism,
    deletePolicy: { mode: 'keep' },
    uidlResetGuard: DEFAULT_UIDL_RESET_GUARD,
  };
}

/** Run a drain and return everything it let out as text: report, trace, logs. */
async function everythingShown(s: Pop3TestServer, credentials: { password: string } | { accessToken: string }, mechanism: MailboxConfig['mechanism'] = 'auto'): Promise<string> {
  const out: string[] = [];
  const log = (level: string) => (m: string, f?: LogFields) => out.push(`${level} ${m} ${JSON.stringify(f ?? {})}`);
  const ports = memoryPorts();
  const p = { ...ports, credentials: { get: async () => ({ user: 'alice', ...credentials }) }, logger: { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') } };
  const report = await drainMailbox(mailboxOf(s, mechanism), p, {}, { leaseTtlMs: 60_000, trace: (e) => out.push(`trace ${e.line}`) });
  out.push(JSON.stringify(report));
  return out.join('\n');
}

/** An -ERR that quotes whatever the client sent, raw and base64-encoded. */
function echoing(verb: RegExp): Pop3ServerOptions['hooks'] {
  return {
    async onCommand(conn, line) {
      if (!verb.test(line)) return false;
      const arg = line.slice(line.indexOf(' ') + 1);
      await conn.writeLine(`-ERR [AUTH] refused "${arg}" b64=${b64(arg)} bare=${stripped(arg)}`);
      return true;
    },
    async onAuth(conn, _mechanism, given) {
      let initial = given;
      if (initial === undefined || initial === '') {
        await conn.writeLine('+ ');
        initial = (await conn.readLine()) ?? '';
      }
      await conn.writeLine(`-ERR [AUTH] refused ${initial ?? ''} decoded=${Buffer.from(initial ?? '', 'base64').toString('latin1').replace(/[\0\x01]/g, '|')}`);
      return true;
    },
  };
}

describe('no secret leaves through text from outside', () => {
  it.each([
    ['USER/PASS', 'USER' as const, { password: PASSWORD }, PASSWORD],
    ['SASL PLAIN', 'PLAIN' as const, { password: PASSWORD }, PASSWORD],
    ['XOAUTH2', 'XOAUTH2' as const, { accessToken: TOKEN }, TOKEN],
    ['OAUTHBEARER', 'OAUTHBEARER' as const, { accessToken: TOKEN }, TOKEN],
  ])('a server echoing the %s secret gets it scrubbed from the report, the trace and the logs', async (_name, mechanism, credentials, secret) => {
    const s = await pop3({ hooks: echoing(/^PASS /i), features: { sasl: ['PLAIN', 'XOAUTH2', 'OAUTHBEARER'] } });
    const shown = await everythingShown(s, credentials, mechanism);
    expect(shown).toContain('[redacted]');
    for (const form of forms(secret)) expect(shown).not.toContain(form);
  });

  it('an OAuth2 token endpoint quoting the client secret as its error code, or the refresh token stripped or in base64, leaks neither', async () => {
    const clientSecret = 'cs~Kq/7+Wz=9-client-secret';
    const refreshToken = '1//0g~rt+Yv=/refresh.token-tail';
    const server: OAuth2TokenServer = await startTokenServer({ clients: [{ clientId: 'c1', clientSecret }], refreshTokens: [refreshToken] });
    closers.push(server);
    const grant = { tokenEndpoint: server.url, clientId: 'c1', clientSecret, refreshToken };
    for (const fault of [
      { error: stripped(clientSecret), description: `token ${stripped(refreshToken)}` },
      { error: 'invalid_grant', description: `got ${b64(refreshToken)} and ${b64(`c1:${clientSecret}`)}` },
      { error: clientSecret.replace(/[^\w.-]/g, ''), description: 'x' },
    ]) {
      server.failNext(1, { kind: 'oauth-error', status: 400, ...fault });
      const message = await refreshTokenGrant(grant).then(
        () => 'granted',
        (e: Error) => e.message,
      );
      expect(message).toContain('refused');
      for (const form of [...forms(clientSecret), ...forms(refreshToken), clientSecret.replace(/[^\w.-]/g, '')]) expect(message).not.toContain(form);
    }
  });

  it('scrubSecrets leaves text without secrets as it is', () => {
    expect(scrubSecrets('-ERR [AUTH] invalid user name or password', [PASSWORD])).toBe('-ERR [AUTH] invalid user name or password');
  });

  it('a level the base logger drops (ignoreLogRecord) stays dropped through mailboxLogger and safeLogger; the others are written', () => {
    const seen: Array<[string, string, LogFields | undefined]> = [];
    const base = {
      debug: ignoreLogRecord,
      info: (m: string, f?: LogFields) => void seen.push(['info', m, f]),
      warn: ignoreLogRecord,
      error: (m: string, f?: LogFields) => void seen.push(['error', m, f]),
    };
    const log = safeLogger(mailboxLogger(base, 'mbx-alice'), [PASSWORD]);
    expect(log.debug).toBe(ignoreLogRecord);
    expect(log.warn).toBe(ignoreLogRecord);
    expect(log.info).not.toBe(ignoreLogRecord);
    log.debug('dropped', { uidl: 'u1' });
    log.info(`shown ${PASSWORD}`, { uidl: 'u2' });
    log.warn('dropped', { uidl: 'u3' });
    log.error('shown', { uidl: 'u4' });
    expect(seen.map(([level, m, f]) => [level, m, { ...f }])).toEqual([
      ['info', 'shown [redacted]', { mailboxId: 'mbx-alice', uidl: 'u2' }],
      ['error', 'shown', { mailboxId: 'mbx-alice', uidl: 'u4' }],
    ]);
  });

  it('safeLogger: every string field a logger reads is scrubbed (entries, JSON, spread), other values pass as they are', () => {
    const seen: LogFields[] = [];
    const keep = (_m: string, f?: LogFields): void => void (f !== undefined && seen.push(f));
    const base = { debug: keep, info: keep, warn: keep, error: keep };
    // As drainMailbox composes them: the mailbox id is added between the safe logger and the base.
    for (const log of [safeLogger(base, [PASSWORD]), safeLogger(mailboxLogger(base, 'mbx-alice'), [PASSWORD])]) {
      for (const [i, form] of forms(PASSWORD).entries()) log.debug('x', { n: i, quoted: `-ERR bad ${form} here`, plain: 'uidl-1' });
    }
    expect(seen).toHaveLength(2 * forms(PASSWORD).length);
    expect(seen.slice(forms(PASSWORD).length).map((f) => Object.keys(f))).toEqual(forms(PASSWORD).map(() => ['mailboxId', 'n', 'quoted', 'plain']));
    for (const f of seen) {
      const shown = [JSON.stringify(f), Object.entries(f).join(' '), String({ ...f }.quoted), String(f.quoted)];
      for (const text of shown) for (const form of forms(PASSWORD)) expect(text).not.toContain(form);
      expect(f.quoted).toContain('[redacted]');
      expect(f.plain).toBe('uidl-1');
      expect(typeof f.n).toBe('number');
    }
  });
});

describe('text from outside is inert', () => {
  const hostile = 'evil\x1b]0;owned\x07\r\npopdrain: done\0';

  it('control characters of a greeting and an -ERR are escaped in the trace, the logs and the report', async () => {
    const s = await pop3({
      greeting: `+OK ${hostile}`,
      hooks: {
        async onCommand(conn, line) {
          if (!/^PASS /i.test(line)) return false;
          await conn.writeLine(`-ERR [AUTH] ${hostile}`);
          return true;
        },
      },
    });
    const shown = await everythingShown(s, { password: PASSWORD }, 'USER');
    expect(shown).toContain('\\x1b]0;owned\\x07');
    expect(shown).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f]/);
    expect(shown.split('\n').some((l) => l.startsWith('popdrain: done'))).toBe(false);
  });

  it('inertText escapes C0, DEL, C1 and bidi overrides, and nothing else', () => {
    expect(inertText('a\x1bb\x07c\rd\ne\x7ff\x9bg\u202eh é €')).toBe('a\\x1bb\\x07c\\rd\\ne\\x7ff\\x9bg\\u202eh é €');
  });
});
