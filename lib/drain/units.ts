/**
 * Sizes ("25MB", "1GiB") and durations ("90s", "10m") as the mailbox file and the command line
 * write them. Apart from config.ts so that the command-line tool parses its flags without
 * loading the configuration schema (zod) when it has no configuration file to read.
 */

const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
  k: 1e3,
  m: 1e6,
  g: 1e9,
};

/** "25MB", "1.5 GiB", "4096" or a number of bytes; undefined when it doesn't parse. */
/** Sizes and durations past this are not a limit anyone means (2^53 - 1 bytes or ms): refused. */
const LARGEST = Number.MAX_SAFE_INTEGER;

const sane = (n: number): number | undefined => (Number.isSafeInteger(n) && n >= 0 && n <= LARGEST ? n : undefined);

export function parseSize(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? sane(Math.floor(value)) : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
  if (m === null) return undefined;
  const unit = (m[2] ?? '').toLowerCase();
  const factor = unit === '' ? 1 : SIZE_UNITS[unit];
  if (factor === undefined) return undefined;
  return sane(Math.floor(Number(m[1]) * factor));
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000 };

/** "90s", "10m", "1h", "500ms" or a number of seconds, in milliseconds. */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? sane(Math.round(value * 1000)) : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value);
  if (m === null) return undefined;
  const unit = (m[2] ?? '').toLowerCase();
  const factor = unit === '' ? 1000 : DURATION_UNITS[unit];
  if (factor === undefined) return undefined;
  return sane(Math.round(Number(m[1]) * factor));
}
