/**
 * Text from outside (a server's answers inside errors, failures and log fields) made safe to
 * show: scrubbed of the run's secrets (lib/pop3/scrub.ts) and with control characters escaped
 * (lib/pop3/inert-text.ts). Applied where the run's words leave it: the logger and the report.
 */
import { inertText, scrubSecrets } from '../pop3/index.js';
import type { DrainLogger, LogFields } from './ports.js';
import type { DrainFailure } from './report.js';

export function safeText(text: string, secrets: readonly string[]): string {
  return inertText(scrubSecrets(text, secrets));
}

export function safeFailure(failure: DrainFailure, secrets: readonly string[]): DrainFailure {
  const message = safeText(failure.message, secrets);
  return message === failure.message ? failure : { ...failure, message };
}

function safeValue(value: unknown, secrets: readonly string[]): unknown {
  return typeof value === 'string' ? safeText(value, secrets) : value;
}

/** A logger whose messages and string fields are safe text; `secrets` is read at each call. */
export function safeLogger(base: DrainLogger, secrets: readonly string[]): DrainLogger {
  const clean = (fields?: LogFields): LogFields | undefined => {
    if (fields === undefined) return undefined;
    const out: LogFields = {};
    for (const [k, v] of Object.entries(fields)) out[k] = safeValue(v, secrets);
    return out;
  };
  return {
    debug: (m, f) => base.debug(safeText(m, secrets), clean(f)),
    info: (m, f) => base.info(safeText(m, secrets), clean(f)),
    warn: (m, f) => base.warn(safeText(m, secrets), clean(f)),
    error: (m, f) => base.error(safeText(m, secrets), clean(f)),
  };
}
