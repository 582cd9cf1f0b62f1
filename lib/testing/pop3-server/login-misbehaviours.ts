/**
 * Helpers for logins that go wrong on purpose: RFC 2449 / RFC 3206 response codes after good
 * credentials, and Microsoft's dialect of XOAUTH2.
 */
import { applyAfter, budget, type AfterAnswer } from './command-matcher.js';
import type { Pop3ServerHooks } from './hooks.js';
import { decodeBase64, parseXoauth2 } from './sasl-payloads.js';

/** Extended response codes of RFC 2449 and RFC 3206. */
export type LoginResponseCode = 'IN-USE' | 'LOGIN-DELAY' | 'SYS/TEMP' | 'SYS/PERM' | 'AUTH';

const RESPONSE_CODE_TEXT: Record<LoginResponseCode, string> = {
  'IN-USE': 'Mailbox is locked by another session',
  'LOGIN-DELAY': 'Logged in too recently',
  'SYS/TEMP': 'Temporary system failure, try again later',
  'SYS/PERM': 'Permanent system failure',
  AUTH: 'Authentication failed',
};

export interface RejectLoginOptions {
  /** @default a text that fits the code */
  text?: string;
  /** Reject the first `times` logins with good credentials, then let them through. @default all */
  times?: number;
  /** @default 'continue' (the session stays in AUTHORIZATION) */
  then?: AfterAnswer;
  /** Only for this user. @default any */
  user?: string;
}

/**
 * Answers a login with good credentials (USER/PASS, APOP or AUTH) with `-ERR [code] text`,
 * e.g. `rejectLogin('IN-USE', { times: 1 })`. `code: null` sends `-ERR text` without a code.
 */
export function rejectLogin(code: LoginResponseCode | null, options: RejectLoginOptions = {}): Pop3ServerHooks {
  const take = budget(options.times);
  const text = options.text ?? (code === null ? 'Login failed' : RESPONSE_CODE_TEXT[code]);
  const line = code === null ? `-ERR ${text}` : `-ERR [${code}] ${text}`;
  return {
    async onLogin(conn, user) {
      if ((options.user !== undefined && user !== options.user) || !take()) return undefined;
      await conn.writeLine(line);
      await applyAfter(conn, options.then ?? 'continue');
      return true;
    },
  };
}

/** What outlook.office365.com answers to CAPA. */
export const MICROSOFT_CAPABILITIES: readonly string[] = ['TOP', 'UIDL', 'SASL PLAIN XOAUTH2', 'USER'];

export interface MicrosoftXoauth2Options {
  /**
   * What `AUTH XOAUTH2 <initial-response>` gets. Exchange Online answers it with a protocol
   * error and closes the connection; clients must send the payload on its own line.
   * @default 'protocol-error'
   */
  initialResponse?: 'protocol-error' | 'accept';
  /** The continuation line. Exchange sends a bare `+` without the space RFC 5034 asks for. @default '+' */
  challenge?: string;
}

/**
 * XOAUTH2 the way Exchange Online does it: `AUTH XOAUTH2`, a bare `+`, the base64 payload on
 * the next line, then `+OK User successfully authenticated.` or a plain `-ERR` (no error
 * challenge, no [AUTH] code). Combine with `capabilities: MICROSOFT_CAPABILITIES`.
 */
export function microsoftXoauth2(options: MicrosoftXoauth2Options = {}): Pop3ServerHooks {
  return {
    async onAuth(conn, mechanism, initialResponse) {
      if (mechanism !== 'XOAUTH2') return undefined;
      let payload = initialResponse;
      if (payload !== undefined && (options.initialResponse ?? 'protocol-error') === 'protocol-error') {
        await conn.writeLine('-ERR Protocol error. Connection is closed. 10');
        conn.end();
        return true;
      }
      if (payload === undefined) {
        await conn.writeLine(options.challenge ?? '+');
        const line = await conn.readLine();
        if (line === null) return true;
        payload = line;
      }
      const decoded = decodeBase64(payload);
      const parsed = decoded === undefined ? undefined : parseXoauth2(decoded);
      if (parsed !== undefined && conn.checkOAuthToken(parsed.user, parsed.token)) {
        return { user: parsed.user, response: '+OK User successfully authenticated.' };
      }
      await conn.writeLine('-ERR Authentication failure: unknown user name or bad password.');
      return true;
    },
  };
}
