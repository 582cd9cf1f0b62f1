/**
 * Helpers for common misbehaviours of a whole answer or connection: scripted answers, silence
 * after a command, no greeting at all.
 */
import { applyAfter, budget, matchesCommand, type AfterAnswer, type CommandMatcher } from './command-matcher.js';
import type { Pop3ServerHooks, SessionState } from './hooks.js';

export type ScriptedResponse =
  | string
  | readonly string[]
  | Buffer
  | ((line: string, state: SessionState) => string | readonly string[] | Buffer);

export interface RespondWithOptions {
  /** @default 'continue' */
  then?: AfterAnswer;
  /** Act on the first `times` matching commands only. @default every one */
  times?: number;
}

/**
 * Answers matching commands with exactly the given text: a string is one line (CRLF added), an
 * array is several lines sent as they are (no dot-stuffing, no terminator added), a Buffer is
 * raw bytes. E.g. `respondWith('STAT', '+OK ' + 'x'.repeat(10_000))`,
 * `respondWith('PASS', '-ERR [SYS/TEMP] try later', { then: 'end' })`.
 */
export function respondWith(
  command: CommandMatcher,
  response: ScriptedResponse,
  options: RespondWithOptions = {},
): Pop3ServerHooks {
  const take = budget(options.times);
  return {
    async onCommand(conn, line, state) {
      if (!matchesCommand(command, line, state) || !take()) return false;
      const answer = typeof response === 'function' ? response(line, state) : response;
      if (Buffer.isBuffer(answer)) await conn.write(answer);
      else if (typeof answer === 'string') await conn.writeLine(answer);
      else for (const l of answer) await conn.writeLine(l);
      await applyAfter(conn, options.then ?? 'continue');
      return true;
    },
  };
}

/** After the matching command arrives, the server never answers again (proves client timeouts). */
export function silentAfter(command: CommandMatcher): Pop3ServerHooks {
  return {
    async onCommand(conn, line, state) {
      if (!matchesCommand(command, line, state)) return false;
      await conn.silence();
      return true;
    },
  };
}

/** Accepts the connection and sends nothing, not even a greeting. */
export function silentGreeting(): Pop3ServerHooks {
  return {
    async onConnect(conn) {
      await conn.silence();
      return true;
    },
  };
}
