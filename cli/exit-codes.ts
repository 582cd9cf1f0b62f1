/** The command-line tool's exit codes, one per kind of outcome (documented in the README). */
import type { DrainReport, StopReason } from '../lib/drain/report.js';

export const EXIT = {
  /** Done: drained, or stopped at its budget, or dry run (the report says if more remains). */
  OK: 0,
  /** An unexpected internal error. */
  INTERNAL: 1,
  /** Bad command line, URL, option or configuration file. */
  USAGE: 2,
  /** The server refused the login. */
  AUTH: 3,
  /** TLS failed: certificate, host name, or STLS not offered. */
  TLS: 4,
  /** Network or server trouble: cannot connect, connection lost, timeouts, server errors. */
  NETWORK: 5,
  /** The mailbox is busy (in use, login delay, another run holds it): try again later. */
  BUSY: 6,
  /** Partial: some messages could not be stored, recorded or announced (they stay on the server). */
  PARTIAL: 7,
  /** The UIDL-reset guard stopped the run: check, then `popdrain status --accept-uidl-reset`. */
  UIDL_RESET: 8,
  /** Credentials could not be obtained (variable unset, file unreadable, token endpoint refused). */
  CREDENTIALS: 9,
  /** Interrupted (SIGINT/SIGTERM): the session ended within 2 s of the first signal, at once on a second. */
  INTERRUPTED: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

const BY_STOP: Record<StopReason, ExitCode> = {
  complete: EXIT.OK,
  deadline: EXIT.OK,
  'max-messages': EXIT.OK,
  'max-bytes': EXIT.OK,
  'dry-run': EXIT.OK,
  cancelled: EXIT.INTERRUPTED,
  busy: EXIT.BUSY,
  'in-use': EXIT.BUSY,
  'login-delay': EXIT.BUSY,
  'uidl-reset-suspected': EXIT.UIDL_RESET,
  'auth-failed': EXIT.AUTH,
  'tls-failed': EXIT.TLS,
  'connection-failed': EXIT.NETWORK,
  'connection-lost': EXIT.NETWORK,
  'server-error': EXIT.NETWORK,
  'protocol-error': EXIT.NETWORK,
  'store-failed': EXIT.PARTIAL,
  'ledger-failed': EXIT.PARTIAL,
  'events-failed': EXIT.PARTIAL,
  'lease-lost': EXIT.PARTIAL,
  'credentials-failed': EXIT.CREDENTIALS,
  'config-invalid': EXIT.USAGE,
  error: EXIT.INTERNAL,
};

export function exitCodeFor(report: DrainReport): ExitCode {
  const code = BY_STOP[report.stopReason];
  if (code === EXIT.OK && report.failures.length > 0) return EXIT.PARTIAL;
  return code;
}

/** For several mailboxes: the most severe outcome wins. */
const SEVERITY: ExitCode[] = [
  EXIT.INTERNAL,
  EXIT.USAGE,
  EXIT.AUTH,
  EXIT.TLS,
  EXIT.CREDENTIALS,
  EXIT.NETWORK,
  EXIT.UIDL_RESET,
  EXIT.PARTIAL,
  EXIT.BUSY,
  EXIT.INTERRUPTED,
  EXIT.OK,
];

export function worstExitCode(codes: ExitCode[]): ExitCode {
  for (const c of SEVERITY) if (codes.includes(c)) return c;
  return EXIT.OK;
}

/** A problem with what the user typed: one line on stderr, exit 2, never a stack trace. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(
    message: string,
    readonly exitCode: ExitCode = EXIT.USAGE,
  ) {
    super(message);
  }
}
