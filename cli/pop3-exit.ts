import { isDrainError } from '../lib/drain/errors.js';
import { isPop3Error } from '../lib/pop3/index.js';
import { EXIT, type ExitCode } from './exit-codes.js';

/** The exit code for an error from the POP3 client or a credentials adapter, if it is one. */
export function pop3ExitCode(error: unknown): ExitCode | undefined {
  if (isDrainError(error)) return error.code === 'CONFIG_INVALID' ? EXIT.USAGE : EXIT.CREDENTIALS;
  if (!isPop3Error(error)) return undefined;
  switch (error.code) {
    case 'AUTH_FAILED':
    case 'MECHANISM_UNAVAILABLE':
      return EXIT.AUTH;
    case 'TLS_FAILED':
    case 'STLS_UNAVAILABLE':
      return EXIT.TLS;
    case 'IN_USE':
    case 'LOGIN_DELAY':
      return EXIT.BUSY;
    default:
      return EXIT.NETWORK;
  }
}
