import { Pop3Error, type Pop3Phase, describeError } from './errors.js';
import { SaslError } from './sasl/index.js';

/** Any failure as a Pop3Error: a SASL refusal is AUTH_FAILED, anything unexpected PROTOCOL_ERROR. */
export function toPop3Error(error: unknown, phase: Pop3Phase): Pop3Error {
  if (error instanceof Pop3Error) return error;
  if (error instanceof SaslError) return new Pop3Error('AUTH_FAILED', error.message, { phase: 'auth', cause: error });
  const message = describeError(error);
  return new Pop3Error('PROTOCOL_ERROR', message, { phase, cause: error });
}
