export { Pop3Client, DEFAULT_TIMEOUTS } from './client.js';
export type {
  LoginOptions,
  MessageStream,
  Pop3ClientOptions,
  Pop3Timeouts,
  Pop3TlsOptions,
  Pop3TraceEvent,
  RetrieveItem,
  RetrieveOptions,
  TlsInfo,
  TlsMode,
} from './client.js';
export { Pop3Error, isPop3Error } from './errors.js';
export type { Pop3ErrorCode, Pop3Phase, ResponseCode } from './errors.js';
export type { Capabilities, ListEntry, StatResult, UidlEntry } from './response.js';
export type { AuthMethod, Pop3Credentials, SaslMechanismName } from './sasl/index.js';
export { ResponseFramer } from './framer.js';
