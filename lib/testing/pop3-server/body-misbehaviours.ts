/**
 * Helpers for misbehaviours in the middle of a message body: a disconnect, a stall, a body that
 * never ends.
 */
import { splitCommand } from './command-line.js';
import { applyAfter, budget, type AfterAnswer } from './command-matcher.js';
import type { Pop3ServerHooks, SessionState } from './hooks.js';
import { encodeMultilineBody, extractTop, TERMINATOR } from './wire.js';

export interface PartialBodyOptions {
  /** @default 'RETR' */
  command?: 'RETR' | 'TOP';
  /** Only for this message number. @default any */
  message?: number;
  /** Act on the first `times` matching commands only. @default every one */
  times?: number;
}

/** RETR/TOP of an existing message: the status line and the full wire form of the answer. */
function bodyFor(line: string, state: SessionState, opts: PartialBodyOptions): { status: string; wire: Buffer } | undefined {
  const { verb, args } = splitCommand(line);
  if (verb !== (opts.command ?? 'RETR') || state.phase !== 'TRANSACTION') return undefined;
  const m = state.message(args[0]);
  if (m === undefined || (opts.message !== undefined && m.number !== opts.message)) return undefined;
  if (verb === 'TOP') {
    const n = Number(args[1]);
    if (!Number.isInteger(n) || n < 0) return undefined;
    return { status: '+OK', wire: encodeMultilineBody(extractTop(m.bytes, n)) };
  }
  return { status: `+OK ${m.size} octets`, wire: encodeMultilineBody(m.bytes) };
}

function partialBody(
  opts: PartialBodyOptions,
  cut: (wire: Buffer) => Buffer,
  then: Exclude<AfterAnswer, 'continue'>,
): Pop3ServerHooks {
  const take = budget(opts.times);
  return {
    async onCommand(conn, line, state) {
      const body = bodyFor(line, state, opts);
      if (body === undefined || !take()) return false;
      await conn.writeLine(body.status);
      const part = cut(body.wire);
      if (part.length > 0) await conn.write(part);
      await applyAfter(conn, then);
      return true;
    },
  };
}

/**
 * RETR (or TOP) sends its status line and the first `afterBytes` bytes of the body as they go on
 * the wire (dot-stuffed), then the connection drops.
 */
export function disconnectMidBody(
  afterBytes: number,
  options: PartialBodyOptions & { how?: 'end' | 'destroy' | 'reset' } = {},
): Pop3ServerHooks {
  return partialBody(options, (wire) => wire.subarray(0, afterBytes), options.how ?? 'destroy');
}

/** Like `disconnectMidBody`, but the connection then stays open and silent (body idle timeout). */
export function stallMidBody(afterBytes: number, options: PartialBodyOptions = {}): Pop3ServerHooks {
  return partialBody(options, (wire) => wire.subarray(0, afterBytes), 'silence');
}

/** RETR (or TOP) sends the whole body but never the terminating `.` line, then ends or stalls. */
export function bodyWithoutTerminator(
  options: PartialBodyOptions & { then?: 'end' | 'destroy' | 'silence' } = {},
): Pop3ServerHooks {
  return partialBody(options, (wire) => wire.subarray(0, wire.length - TERMINATOR.length), options.then ?? 'end');
}
