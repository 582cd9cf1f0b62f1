// The usual Date shape as the regular expression read it before parseCanonical replaced it
// (commit cd99010): the oracle of test/unit/mail-date-canonical.test.ts. Everything around the
// usual shape (the cut, the token-by-token forms, the JavaScript parser's fallback, the ISO
// range) is mail-date.ts's own, through mailDateWith, so the test compares the two readers of
// the usual shape and nothing else. Do not change the expression or its reading.
import { epochMs, mailDateWith, MONTHS } from '../../lib/drain/mail-date.js';

/** The usual shape, `Thu, 26 Nov 2026 12:00:00 +0000`, read without tokenizing. */
const CANONICAL = /^(?:[A-Za-z]{3}, ?)?(\d{1,2}) ([A-Za-z]{3}) (\d{4}) (\d{2}):(\d{2})(?::(\d{2}))? ([+-])(\d{2})(\d{2})$/;

/** As parseCanonical: milliseconds, null (a field out of range), undefined (an unknown month) or false (not this shape). */
function regexUsualShape(text: string): number | null | undefined | false {
  const m = CANONICAL.exec(text);
  if (m === null) return false;
  const month = MONTHS.get(m[2]!.toLowerCase());
  if (month === undefined) return undefined;
  const zoneMinutes = Number(m[9]);
  if (zoneMinutes > 59) return null;
  const zone = Number(m[8]) * 60 + zoneMinutes;
  const second = m[6] === undefined ? 0 : Number(m[6]);
  return epochMs(Number(m[3]), month, Number(m[1]), Number(m[4]), Number(m[5]), second, m[7] === '-' ? -zone : zone) ?? null;
}

/** parseMailDate with the regular expression reading the usual shape. */
export function parseMailDate(value: string): string | undefined {
  return mailDateWith(value, regexUsualShape);
}
