/**
 * Validate an event envelope against schemas/popdrain-events.schema.json (JSON Schema 2020-12)
 * with ajv. Tests only: ajv is a dev dependency and stays out of the runtime bundle.
 */
import { readFileSync } from 'node:fs';
import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js';

export const EVENT_SCHEMA_PATH = new URL('../../schemas/popdrain-events.schema.json', import.meta.url);

/** RFC 3339 date-time (the `date-time` format); ajv ships no formats of its own. */
const RFC3339 = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt]([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)$/;

const schema: unknown = JSON.parse(readFileSync(EVENT_SCHEMA_PATH, 'utf8'));
// strict: the schema itself must use no unknown keywords or formats.
const ajv = new Ajv2020({ strict: true, allErrors: true });
ajv.addFormat('date-time', { type: 'string', validate: (value: string) => RFC3339.test(value) && !Number.isNaN(Date.parse(value)) });
const validate = ajv.compile(schema as object);

/** The schema violations of `envelope`, one readable line each; empty when it is valid. */
export function validateEventEnvelope(envelope: unknown): string[] {
  if (validate(envelope)) return [];
  return (validate.errors ?? []).map(describe);
}

function describe(error: ErrorObject): string {
  const where = error.instancePath || '(envelope)';
  const params = Object.keys(error.params).length > 0 ? ` ${JSON.stringify(error.params)}` : '';
  return `${where} ${error.message ?? error.keyword}${params}`;
}
