export { Pop3Client } from './pop3-client.js';
export { DEFAULT_TIMEOUTS } from './client-options.js';
export type {
  Pop3ClientOptions,
  Pop3Timeouts,
  Pop3TraceEvent,
  RetrieveItem,
  RetrieveOptions,
} from './client-options.js';
export type { LoginOptions, ServerOffer } from './authenticate.js';
export { explainLoginChoice, type LoginExplanation } from './login-explanation.js';
export type { MessageStream } from './message-bodies.js';
export type { Pop3TlsOptions, TlsInfo, TlsMode } from './transport.js';
export { Pop3Error, isPop3Error } from './errors.js';
export type { Pop3ErrorCode, Pop3Phase, ResponseCode, ResponseCodeFacts } from './errors.js';
export type { Capabilities, ExpirePolicy, ListEntry, StatResult, UidlEntry } from './response.js';
export type { AuthMethod, Pop3Credentials, SaslMechanismName } from './sasl/index.js';
export { ResponseFramer } from './framer.js';
export { inertText } from './inert-text.js';
export { formatFingerprint, matchesPin, parseFingerprint } from './certificate-pin.js';
export { credentialSecrets, scrubSecrets } from './scrub.js';
