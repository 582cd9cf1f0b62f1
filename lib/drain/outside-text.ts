/**
 * Text from outside (a server's answers inside errors, failures and log fields) made safe to
 * show: scrubbed of the run's secrets (lib/pop3/scrub.ts) and with control characters escaped
 * (lib/pop3/inert-text.ts). Applied where the run's words leave it: the logger and the report.
 */
import { inertText, scrubSecrets } from '../pop3/index.js';
import { ignoreLogRecord, type DrainLogger, type LogFields } from './ports.js';
import type { DrainFailure } from './report.js';

export function safeText(text: string, secrets: readonly string[]): string {
  return inertText(scrubSecrets(text, secrets));
}

export function safeFailure(failure: DrainFailure, secrets: readonly string[]): DrainFailure {
  const message = safeText(failure.message, secrets);
  return message === failure.message ? failure : { ...failure, message };
}

/**
 * The fields with each string made safe when it is read, once: a logger that drops a level
 * (the CLI's debug and info, Powertools below its level) never pays for scrubbing, and every
 * value a logger does read (Object.entries, JSON.stringify, a spread) is safe text.
 */
function safeFields(fields: LogFields, secrets: readonly string[]): LogFields {
  const out: LogFields = {};
  for (const [k, v] of Object.entries(fields)) {
    if (typeof v !== 'string') {
      out[k] = v;
      continue;
    }
    let safe: string | undefined;
    Object.defineProperty(out, k, { enumerable: true, configurable: true, get: () => (safe ??= safeText(v, secrets)) });
  }
  return out;
}

/** A logger whose messages and string fields are safe text; `secrets` is read at each call. */
export function safeLogger(base: DrainLogger, secrets: readonly string[]): DrainLogger {
  const clean = (fields?: LogFields): LogFields | undefined => {
    if (fields === undefined) return undefined;
    // A snapshot: the fields are scrubbed of the secrets in use when they were logged.
    return safeFields(fields, [...secrets]);
  };
  // A level the base drops stays dropped, at no cost (ports.ts, ignoreLogRecord).
  const level = (write: DrainLogger['debug']): DrainLogger['debug'] =>
    write === ignoreLogRecord ? ignoreLogRecord : (m, f) => write(safeText(m, secrets), clean(f));
  return { debug: level(base.debug), info: level(base.info), warn: level(base.warn), error: level(base.error) };
}
