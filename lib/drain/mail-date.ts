/**
 * The Date header as an ISO 8601 instant. RFC 5322 date-times (with the obsolete forms: two-
 * and three-digit years, named zones, no seconds, comments) are read field by field; a value
 * that is not one but still names a four-digit year and a time of day (ISO 8601, asctime) is
 * left to the JavaScript date parser. Anything else is no date: V8's parser alone would make
 * a date of almost anything with a number in it ("garbage 5" is 1 May 2001).
 */

/** A Date header longer than this is cut first; a real one is under 50 characters. */
const MAX_DATE_CHARS = 200;

/** Month names (lower case) to their index; exported for the test oracle. */
export const MONTHS = new Map(['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'].map((m, i) => [m, i]));

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
  return mailDateWith(value, parseCanonical);
}

/**
 * What a date's usual shape reads to (as parseCanonical: false when the text does not have
 * it). A parameter so that test/support/mail-date-regex-oracle.ts can put the regular
 * expression this module used before in its place and compare everything else unchanged.
 */
export type UsualShapeReader = (text: string) => number | null | undefined | false;

/** parseMailDate with `readUsualShape` for the usual shape; any other text is tokenized. */
export function mailDateWith(value: string, readUsualShape: UsualShapeReader): string | undefined {
  const text = value.slice(0, MAX_DATE_CHARS);
  const usual = readUsualShape(text);
  const rfc = usual !== false ? usual : parseTokens(text);
  // An RFC 5322 date that is out of range (31 Feb, 25:00) is no date: V8 would roll it over.
  const ms = rfc === undefined ? parseOther(text) : rfc === null ? undefined : rfc;
  if (ms === undefined || !Number.isFinite(ms)) return undefined;
  // toISOString() would throw past the Date range and write six-digit years past 9999.
  if (ms < MIN_ISO_MS || ms > MAX_ISO_MS) return undefined;
  return new Date(ms).toISOString();
}

/** The month of three ASCII letters packed by `packed3` (any case). */
const MONTHS_PACKED = new Map([...MONTHS].map(([name, index]) => [packed3(name, 0), index]));

/** Three characters of `text` from `at`, lower-cased as ASCII letters, in one number. */
function packed3(text: string, at: number): number {
  return ((text.charCodeAt(at) | 0x20) << 16) | ((text.charCodeAt(at + 1) | 0x20) << 8) | (text.charCodeAt(at + 2) | 0x20);
}

/**
 * Milliseconds since the epoch of an RFC 5322 date-time in any of its forms, read token by
 * token; null when it has the shape but a field is out of range; undefined when it does not
 * have the shape.
 */
function parseTokens(text: string): number | null | undefined {
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

const SPACE = 0x20;
const COLON = 0x3a;

function isLetter(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

/** The decimal value of `count` digits of `text` from `at`, or -1 if one is not a digit. */
function digitsAt(text: string, at: number, count: number): number {
  let value = 0;
  for (let i = at; i < at + count; i++) {
    const d = text.charCodeAt(i) - 0x30;
    if (!(d >= 0 && d <= 9)) return -1; // also past the end (NaN)
    value = value * 10 + d;
  }
  return value;
}

/**
 * The usual shape, `Thu, 26 Nov 2026 12:00:00 +0000`, read character by character (no
 * tokens, no match arrays): exactly what
 * `/^(?:[A-Za-z]{3}, ?)?(\d{1,2}) ([A-Za-z]{3}) (\d{4}) (\d{2}):(\d{2})(?::(\d{2}))? ([+-])(\d{2})(\d{2})$/`
 * accepts. As parseTokens (undefined: the shape with an unknown month name), or false when
 * the text does not have this shape.
 */
function parseCanonical(t: string): number | null | undefined | false {
  let i = 0;
  if (isLetter(t.charCodeAt(0)) && isLetter(t.charCodeAt(1)) && isLetter(t.charCodeAt(2)) && t.charCodeAt(3) === 0x2c) {
    i = t.charCodeAt(4) === SPACE ? 5 : 4;
  }
  let day = digitsAt(t, i, 2);
  if (day >= 0) i += 2;
  else if ((day = digitsAt(t, i, 1)) >= 0) i += 1;
  else return false;
  if (t.charCodeAt(i) !== SPACE || !isLetter(t.charCodeAt(i + 1)) || !isLetter(t.charCodeAt(i + 2)) || !isLetter(t.charCodeAt(i + 3))) return false;
  const month = MONTHS_PACKED.get(packed3(t, i + 1));
  i += 4;
  if (t.charCodeAt(i) !== SPACE) return false;
  const year = digitsAt(t, i + 1, 4);
  if (year < 0 || t.charCodeAt(i + 5) !== SPACE) return false;
  i += 6;
  const hour = digitsAt(t, i, 2);
  const minute = digitsAt(t, i + 3, 2);
  if (hour < 0 || t.charCodeAt(i + 2) !== COLON || minute < 0) return false;
  i += 5;
  let second = 0;
  if (t.charCodeAt(i) === COLON) {
    second = digitsAt(t, i + 1, 2);
    if (second < 0) return false;
    i += 3;
  }
  const sign = t.charCodeAt(i + 1);
  const zoneHours = digitsAt(t, i + 2, 2);
  const zoneMinutes = digitsAt(t, i + 4, 2);
  if (t.charCodeAt(i) !== SPACE || (sign !== 0x2b && sign !== 0x2d) || zoneHours < 0 || zoneMinutes < 0 || t.length !== i + 6) return false;
  if (month === undefined) return undefined;
  if (zoneMinutes > 59) return null;
  const zone = zoneHours * 60 + zoneMinutes;
  return epochMs(year, month, day, hour, minute, second, sign === 0x2d ? -zone : zone) ?? null;
}

/** Milliseconds since the epoch of a validated date-time; undefined when a field is out of range. */
export function epochMs(
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
