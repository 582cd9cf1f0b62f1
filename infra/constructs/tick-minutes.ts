/**
 * How often the scheduler runs: decisions only (no constructs), so they are unit-tested
 * without a synth.
 */
import type { ConfiguredMailbox } from '../../lib/drain/config.js';

/** The longest tick: the scheduler runs at least once an hour. */
export const MAX_TICK_MINUTES = 60;

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/** The default tick: every schedule is a whole number of ticks, and ticks are at most an hour. */
export function defaultTickMinutes(mailboxes: readonly Pick<ConfiguredMailbox, 'everyMinutes'>[]): number {
  const g = mailboxes.map((m) => m.everyMinutes).reduce(gcd, 0);
  for (let d = Math.min(g, MAX_TICK_MINUTES); d > 1; d--) if (g % d === 0) return d;
  return 1;
}

/** The verdict on a tick: its value, or why it is refused, and the mailboxes it does not divide. */
export interface TickVerdict {
  readonly tickMinutes: number;
  /** Set when the tick is not a whole number of minutes from 1 to MAX_TICK_MINUTES. */
  readonly error?: string;
  /** `"id" (everyMinutes)` of each mailbox whose schedule is not a multiple of the tick. */
  readonly uneven: readonly string[];
}

/** The tick to use: `requested`, or the default for these mailboxes when none is requested. */
export function decideTickMinutes(requested: number | undefined, mailboxes: readonly Pick<ConfiguredMailbox, 'id' | 'everyMinutes'>[]): TickVerdict {
  const tick = requested ?? defaultTickMinutes(mailboxes);
  if (!Number.isInteger(tick) || tick < 1 || tick > MAX_TICK_MINUTES) {
    return { tickMinutes: tick, uneven: [], error: `PopDrain: tickMinutes must be a whole number of minutes from 1 to ${MAX_TICK_MINUTES}, not ${tick}` };
  }
  return { tickMinutes: tick, uneven: mailboxes.filter((m) => m.everyMinutes % tick !== 0).map((m) => `"${m.id}" (${m.everyMinutes})`) };
}
