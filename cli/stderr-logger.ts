import { ignoreLogRecord, type DrainLogger } from '../lib/drain/ports.js';

/**
 * A logger for the engine and the credentials: warnings and errors on stderr (one line each),
 * nothing else. Printed with --quiet too: that silences the progress and the summary, not
 * what needs a person (a message that stays on the server, a rotated refresh token to save).
 * `omit`: records the caller shows otherwise (the drain's summary shows why a run stopped).
 */
export function stderrLogger(options: { omit?: (message: string) => boolean } = {}): DrainLogger {
  const print = (level: string, message: string, fields?: Record<string, unknown>): void => {
    if (options.omit?.(message) === true) return;
    const id = typeof fields?.mailboxId === 'string' ? `${fields.mailboxId}: ` : '';
    const extra = Object.entries(fields ?? {})
      .filter(([k]) => k !== 'mailboxId')
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    process.stderr.write(`popdrain: ${level}: ${id}${message}${extra ? ` (${extra})` : ''}\n`);
  };
  return {
    debug: ignoreLogRecord,
    info: ignoreLogRecord,
    warn: (m, f) => print('warning', m, f),
    error: (m, f) => print('error', m, f),
  };
}
