/**
 * Command-line values checked once for every command that takes them (drain, poll): a clear
 * usage error naming the flag and the value, or the number.
 */
import { parseDuration, parseSize } from '../lib/drain/units.js';
import { UsageError } from './exit-codes.js';

/** A whole number of at least 1 that is exactly representable (no 1e20 rounded to a neighbour). */
export function positiveInt(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 1 || !Number.isSafeInteger(Number(value))) throw new UsageError(`${flag} wants a whole number of at least 1, not "${value}"`);
  return Number(value);
}

/** A size in bytes ("25MB", "1GiB", "4096"), more than 0. */
export function size(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = parseSize(value);
  if (n === undefined || n <= 0) throw new UsageError(`${flag} wants a size such as 25MB, 1GiB or 4096, not "${value}"`);
  return n;
}

/** A duration in milliseconds ("90s", "10m", "1h") of at least `min` ms. */
export function duration(value: string | undefined, flag: string, min = 1): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseDuration(value);
  if (ms === undefined || ms < min) throw new UsageError(`${flag} wants a duration of at least ${min >= 60_000 ? `${min / 60_000}m` : `${min} ms`} such as 90s, 10m or 1h, not "${value}"`);
  return ms;
}
