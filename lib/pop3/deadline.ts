/**
 * Whether the server has kept the head of the pipeline waiting too long, and the error that
 * says so. Inside a body or listing the limit is on inactivity (`lastActivity`); before a status
 * line, and through a whole SASL exchange, it is a deadline from `waitingSince` that bytes
 * trickling in or challenges do not extend; a multi-line response also has a limit on the whole
 * of it (`Pending.responseMs`), so a server that sends one byte just often enough cannot hold
 * the session for ever. A decision over times; no timers.
 */
import { Pop3Error, type Pop3ErrorCode } from './errors.js';
import type { Pending } from './pending.js';

export interface DeadlineFacts {
  now: number;
  /** The framer is inside a multi-line response. */
  readingBody: boolean;
  /** When the server last sent something (or we last wrote). */
  lastActivity: number;
  bodyIdleMs: number;
  /** For the message of a greeting timeout. */
  server: string;
}

/** The timeout error for `head`, or undefined while it is within its limit (0: no limit). */
export function overdue(head: Pending, facts: DeadlineFacts): Pop3Error | undefined {
  const reading = facts.readingBody;
  const whole = head.responseMs ?? 0;
  if (reading && whole > 0 && facts.now - head.waitingSince >= whole) {
    const what = head.command?.logForm ?? 'the greeting';
    return new Pop3Error('BODY_TIMEOUT', `the response to ${what} did not complete within ${whole} ms (the server sends too slowly)`, {
      phase: head.phase,
      command: head.command?.logForm,
    });
  }
  const limit = reading ? facts.bodyIdleMs : head.timeoutMs;
  const since = reading ? facts.lastActivity : head.waitingSince;
  if (limit <= 0 || facts.now - since < limit) return undefined;
  const what = head.command?.logForm ?? 'the greeting';
  let code: Pop3ErrorCode = 'COMMAND_TIMEOUT';
  let message = `no answer to ${what} within ${limit} ms`;
  if (head.kind === 'sasl' && head.challenges > 0) {
    message = `the ${what} exchange did not complete within ${limit} ms (${head.challenges} challenges)`;
  } else if (reading) {
    code = 'BODY_TIMEOUT';
    message = `server stopped sending in the middle of the response to ${what} (silent for ${limit} ms)`;
  } else if (head.kind === 'greeting') {
    code = 'GREETING_TIMEOUT';
    message = `no greeting from ${facts.server} within ${limit} ms`;
  }
  return new Pop3Error(code, message, { phase: head.phase, command: head.command?.logForm });
}
