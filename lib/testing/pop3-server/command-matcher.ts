/**
 * The building blocks of the misbehaviour helpers: which command a helper reacts to, what the
 * server does after a scripted answer, and how many times a helper acts.
 */
import { splitCommand } from './command-line.js';
import type { ScriptedConnection, SessionState } from './hooks.js';

/**
 * Which command a helper reacts to: a verb (`'RETR'` matches `RETR 3`), a whole command when it
 * contains a space (`'RETR 3'`), a pattern tested on the raw line, or a predicate.
 */
export type CommandMatcher = string | RegExp | ((line: string, state: SessionState) => boolean);

/** What the server does after a scripted answer. */
export type AfterAnswer = 'continue' | 'end' | 'destroy' | 'reset' | 'silence';

export function matchesCommand(matcher: CommandMatcher, line: string, state: SessionState): boolean {
  if (typeof matcher === 'function') return matcher(line, state);
  if (matcher instanceof RegExp) return matcher.test(line);
  const want = matcher.trim().replace(/ +/g, ' ').toUpperCase();
  const got = line.trim().replace(/ +/g, ' ').toUpperCase();
  return want.includes(' ') ? got === want : splitCommand(got).verb === want;
}

export async function applyAfter(conn: ScriptedConnection, after: AfterAnswer): Promise<void> {
  switch (after) {
    case 'continue':
      return;
    case 'end':
      return conn.end();
    case 'destroy':
      return conn.destroy();
    case 'reset':
      return conn.reset();
    case 'silence':
      return conn.silence();
  }
}

/** A counter for `times` options: true while the helper should still act. */
export function budget(times: number | undefined): () => boolean {
  let left = times ?? Number.POSITIVE_INFINITY;
  return () => {
    if (left <= 0) return false;
    left -= 1;
    return true;
  };
}
