/**
 * What a strict JSON parser (jq, Go's encoding/json with validation, serde_json) would refuse in
 * a JSON text that JavaScript accepts: a lone UTF-16 surrogate, raw or as a `\uD8xx` escape
 * (RFC 8259 section 8.2: such text is not interoperable and cannot be encoded as UTF-8).
 */
const ESCAPED_HIGH = /\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})/;
const ESCAPED_LOW = /(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}/;
const RAW_LONE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Why a strict parser refuses `text`, or undefined when it parses it. */
export function strictJsonProblem(text: string): string | undefined {
  if (RAW_LONE.test(text)) return 'a lone surrogate (not encodable as UTF-8)';
  if (ESCAPED_HIGH.test(text) || ESCAPED_LOW.test(text)) return 'an escaped lone surrogate';
  try {
    JSON.parse(Buffer.from(text, 'utf8').toString('utf8'));
  } catch (error) {
    return `not JSON: ${(error as Error).message}`;
  }
  return undefined;
}
