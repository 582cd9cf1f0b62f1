/**
 * What an error means for the run: the failure the report lists, and the reason the run
 * stops. Pure mappings from the POP3 client's and the adapters' error codes.
 */
import { isPop3Error, type Pop3Error } from '../pop3/index.js';
import { describeError, isDrainError, type DrainError, type DrainPhase } from './errors.js';
import type { DrainFailure, StopReason } from './report.js';

/**
 * The failure the report lists for an error. A typed error brings its code and phase; any other
 * exception is a defect, INTERNAL_ERROR, in `phase` (the step that met it).
 */
export function failureOf(error: unknown, phase: DrainPhase, uidl?: string): DrainFailure {
  const failure: DrainFailure =
    isDrainError(error) || isPop3Error(error)
      ? { code: error.code, phase: error.phase, message: error.message, retryable: error.retryable }
      : { code: 'INTERNAL_ERROR', phase, message: describeError(error), retryable: false };
  if (isPop3Error(error) && error.hint !== undefined) failure.hint = error.hint;
  return uidl === undefined ? failure : { uidl, ...failure };
}

export function stopReasonForPop3(error: Pop3Error): StopReason {
  switch (error.code) {
    case 'AUTH_FAILED':
    case 'MECHANISM_UNAVAILABLE':
      return 'auth-failed';
    case 'TLS_FAILED':
    case 'STLS_UNAVAILABLE':
      return 'tls-failed';
    case 'IN_USE':
      return 'in-use';
    case 'LOGIN_DELAY':
      return 'login-delay';
    case 'CONNECT_FAILED':
    case 'CONNECT_TIMEOUT':
    case 'GREETING_TIMEOUT':
      return 'connection-failed';
    case 'CONNECTION_CLOSED':
    case 'COMMAND_TIMEOUT':
    case 'BODY_TIMEOUT':
      return 'connection-lost';
    case 'SYS_TEMP':
    case 'SYS_PERM':
    case 'COMMAND_FAILED':
      return 'server-error';
    case 'PROTOCOL_ERROR':
    case 'LIMIT_EXCEEDED':
      return 'protocol-error';
    case 'ABORTED':
      return 'cancelled';
    default:
      return 'error';
  }
}

export function stopReasonForDrain(error: DrainError): StopReason {
  switch (error.code) {
    case 'STORE_FAILED':
    case 'STORE_CONFLICT':
      return 'store-failed';
    case 'LEDGER_FAILED':
    case 'LEDGER_CONFLICT':
      return 'ledger-failed';
    case 'EVENTS_FAILED':
      return 'events-failed';
    case 'CREDENTIALS_FAILED':
      return 'credentials-failed';
    case 'CONFIG_INVALID':
      return 'config-invalid';
    case 'LEASE_HELD':
      return 'lease-lost';
    default:
      return 'error';
  }
}

/** Stop taking new messages; carries the reason (thrown by the pipeline, caught by the run). */
export class StopRun extends Error {
  constructor(
    readonly reason: StopReason,
    readonly failure?: DrainFailure,
  ) {
    super(reason);
  }
}

/**
 * Why the run ended on this error (met in `phase`), and the failure it reports. A POP3 abort
 * the caller did not ask for (`cancelled` false) is the hard deadline closing the session.
 */
export function runStopFor(error: unknown, cancelled: boolean, phase: DrainPhase): { reason: StopReason; failure: DrainFailure | undefined } {
  if (error instanceof StopRun) return { reason: error.reason, failure: error.failure };
  if (isPop3Error(error)) {
    const reason = stopReasonForPop3(error);
    return { reason: reason === 'cancelled' && !cancelled ? 'deadline' : reason, failure: failureOf(error, phase) };
  }
  if (isDrainError(error)) return { reason: stopReasonForDrain(error), failure: failureOf(error, phase) };
  return { reason: 'error', failure: failureOf(error, phase) };
}
