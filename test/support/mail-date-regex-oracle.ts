// The Date parser as it was before its usual shape was read without a regular expression
// (commit cd99010): the oracle of test/unit/mail-date-canonical.test.ts. Do not change.
/**
 * The Date header as an ISO 8601 instant. RFC 5322 date-times (with the obsolete forms: two-
 * and three-digit years, named zones, no seconds, comments) are read field by field; a value
 * that is not one but still names a four-digit year and a time of day (ISO 8601, asctime) is
 * left to the JavaScript date parser. Anything else is no date: V8's parser alone would make
 * a date of almost anything with a number in it ("garbage 5" is 1 May 2001).
 */

/** A Date header longer than this is cut first; a real one is under 50 characters. */
const MAX_DATE_CHARS = 200;

const MONTHS = new Map(['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'].map((m, i) => [m, i]));

/** RFC 5322 4.3 obsolete zone names, in minutes east of UTC. Military letters count as UTC. */
const ZONES = new Map<string, number>([
  ['ut', 0], ['utc', 0], ['gmt', 0], ['z', 0],
  ['est', -300], ['edt', -240], ['cst', -360], ['cdt', -300],
  ['mst', -420], ['mdt', -360], ['pst', -480], ['pdt', -420],
]);

/** 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z: the four-digit-year ISO range. */
const MIN_ISO_MS = -62_167_219_200_000;
const MAX_ISO_MS = 253_402_300_799_999;

/** ISO 8601 text of the instant `value` names, or undefined when it names none. */
export function parseMailDate(value: string): string | undefined {
  const text = value.slice(0, MAX_DATE_CHARS);
  const rfc = parseRfc5322(text);
  // An RFC 5322 date that is out of range (31 Feb, 25:00) is no date: V8 would roll it over.
  const ms = rfc === undefined ? parseOther(text) : rfc === null ? undefined : rfc;
  if (ms === undefined || !Number.isFinite(ms)) return undefined;
  // toISOString() would throw past the Date range and write six-digit years past 9999.
  if (ms < MIN_ISO_MS || ms > MAX_ISO_MS) return undefined;
  return new Date(ms).toISOString();
}

/** The usual shape, `Thu, 26 Nov 2026 12:00:00 +0000`, read without tokenizing. */
const CANONICAL = /^(?:[A-Za-z]{3}, ?)?(\d{1,2}) ([A-Za-z]{3}) (\d{4}) (\d{2}):(\d{2})(?::(\d{2}))? ([+-])(\d{2})(\d{2})$/;

/**
 * Milliseconds since the epoch of an RFC 5322 date-time; null when it has the shape
 * but a field is out of range; undefined when it does not have the shape.
 */
function parseRfc5322(text: string): number | null | undefined {
  const m = CANONICAL.exec(text);
  if (m) {
    const month = MONTHS.get(m[2]!.toLowerCase());
    if (month === undefined) return undefined;
    const zoneMinutes = Number(m[9]);
    if (zoneMinutes > 59) return null;
    const zone = Number(m[8]) * 60 + zoneMinutes;
    const second = m[6] === undefined ? 0 : Number(m[6]);
    return epochMs(Number(m[3]), month, Number(m[1]), Number(m[4]), Number(m[5]), second, m[7] === '-' ? -zone : zone) ?? null;
  }
  const tokens = text
    .replace(/\([^()]*\)/g, ' ')
    .split(/[\s,]+/)
    .filter((t) => t.length > 0);
  let i = 0;
  // optional day of week
  if (tokens[i] !== undefined && /^[a-z]+\.?$/i.test(tokens[i]!)) i++;
  const [dayText, monthText, yearText, timeText, zoneText] = tokens.slice(i, i + 5);
  if (!dayText || !monthText || !yearText || !timeText) return undefined;
  if (!/^\d{1,2}$/.test(dayText) || !/^[a-z]{3,9}\.?$/i.test(monthText) || !/^\d{2,4}$/.test(yearText)) return undefined;
  const month = MONTHS.get(monthText.slice(0, 3).toLowerCase());
  const time = /^(\d{1,2}):(\d{2})(?::(\d{2}))?$/.exec(timeText);
  if (month === undefined || !time) return undefined;

  let year = Number(yearText);
  if (yearText.length === 2) year += year < 50 ? 2000 : 1900;
  else if (yearText.length === 3) year += 1900;
  let offsetMinutes = 0;
  if (zoneText !== undefined) {
    const numeric = /^([+-])(\d{2}):?(\d{2})$/.exec(zoneText);
    if (numeric) {
      if (Number(numeric[3]) > 59) return null;
      const minutes = Number(numeric[2]) * 60 + Number(numeric[3]);
      offsetMinutes = numeric[1] === '-' ? -minutes : minutes;
    } else {
      // Unknown names (CET, "MET DST", ...) are read as UTC, as RFC 5322 reads -0000.
      offsetMinutes = ZONES.get(zoneText.toLowerCase()) ?? 0;
    }
  }
  const second = time[3] === undefined ? 0 : Number(time[3]);
  return epochMs(year, month, Number(dayText), Number(time[1]), Number(time[2]), second, offsetMinutes) ?? null;
}

/** Milliseconds since the epoch of a validated date-time; undefined when a field is out of range. */
function epochMs(
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  rawSecond: number,
  offsetMinutes: number,
): number | undefined {
  if (day < 1 || day > daysInMonth(year, month) || hour > 23 || minute > 59 || rawSecond > 60) return undefined;
  // A leap second (60) is read as the last second of its minute.
  const second = Math.min(rawSecond, 59);
  let ms = Date.UTC(year, month, day, hour, minute, second);
  if (year < 100) {
    // Date.UTC reads years 0-99 as 1900-1999
    const date = new Date(ms);
    date.setUTCFullYear(year, month, day);
    ms = date.getTime();
  }
  return ms - offsetMinutes * 60_000;
}

function daysInMonth(year: number, month: number): number {
  if (month === 1) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 3 || month === 5 || month === 8 || month === 10 ? 30 : 31;
}

function parseOther(text: string): number | undefined {
  if (!/(?:^|\D)\d{4}(?:\D|$)/.test(text) || !/\d{1,2}:\d{2}/.test(text)) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
}
