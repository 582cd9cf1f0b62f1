/**
 * Typed errors of the drain and of the adapters behind its ports. Adapters map their SDK's or
 * file system's exceptions to a `DrainError`, so the engine decides on codes, never on SDK types.
 */

export type DrainErrorCode =
  /** The message store failed (S3 5xx after retries, disk full, permissions). */
  | 'STORE_FAILED'
  /** An object already exists under the key with different content (a UIDL reused by the server). */
  | 'STORE_CONFLICT'
  /** The ledger failed (DynamoDB error after retries, local file error). */
  | 'LEDGER_FAILED'
  /** A conditional ledger write lost: another run recorded this message first. */
  | 'LEDGER_CONFLICT'
  /** Publishing events failed after retries. */
  | 'EVENTS_FAILED'
  /** Credentials could not be loaded, or an OAuth2 token could not be obtained. */
  | 'CREDENTIALS_FAILED'
  /** The mailbox configuration is invalid. */
  | 'CONFIG_INVALID'
  /** Another run holds this mailbox's lease. */
  | 'LEASE_HELD'
  /** Metadata extraction failed (the message is still stored; only its summary is missing). */
  | 'METADATA_FAILED'
  /**
   * An exception that is not a typed error (a defect in popdrain or an adapter), reported with
   * the phase the run was in; never retryable.
   */
  | 'INTERNAL_ERROR';

export type DrainPhase =
  | 'config'
  | 'lease'
  | 'credentials'
  | 'connect'
  | 'list'
  | 'fetch'
  | 'store'
  | 'ledger'
  | 'publish'
  | 'delete'
  | 'quit';

export interface DrainErrorOptions {
  phase: DrainPhase;
  retryable: boolean;
  cause?: unknown;
}

export class DrainError extends Error {
  override readonly name = 'DrainError';
  readonly code: DrainErrorCode;
  readonly phase: DrainPhase;
  readonly retryable: boolean;

  constructor(code: DrainErrorCode, message: string, options: DrainErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.phase = options.phase;
    this.retryable = options.retryable;
  }
}

export function isDrainError(value: unknown): value is DrainError {
  return value instanceof DrainError;
}

/** One line describing any error, for reports and logs: defined with the POP3 errors. */
export { describeError } from '../pop3/errors.js';
