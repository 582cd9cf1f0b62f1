/**
 * A scriptable, in-process POP3 server for tests and for the demo.
 *
 * By default it is a well-behaved server (RFC 1939, RFC 2449 CAPA and response codes, RFC 2595
 * STLS, RFC 5034 AUTH with PLAIN, LOGIN, CRAM-MD5, XOAUTH2 and RFC 7628 OAUTHBEARER, APOP,
 * mailbox locking, pipelined commands answered strictly in order). Hooks replace any part of
 * it, down to raw bytes on the socket, so tests can show what a real server will not do on
 * demand: malformed or over-long status lines, silence, a disconnect in the middle of a body, a
 * body without its terminator, [IN-USE] / [LOGIN-DELAY] / [SYS/*] answers, Microsoft's XOAUTH2
 * dialect. The misbehaviour helpers build the common ones.
 *
 * It depends on `node:` built-ins only (the demo runs it with nothing but Node installed) and
 * imports nothing else of ours. It listens on loopback addresses only. Session logs keep every
 * received line, AUTH payloads and passwords included, because tests assert on them; the `log`
 * callback never sees passwords, tokens or SASL payloads.
 *
 * The rooms, in the order a connection meets them:
 * - `server.ts`: listen, one session per connection, records, close (`server-types.ts`: what a
 *   test holds; `options.ts`: what it passes in);
 * - `connection.ts`: writes, pull-based line reads (`line-reader.ts`), closes; `tls.ts`:
 *   implicit TLS and STLS;
 * - `session.ts`: the RFC 1939 state machine and dispatch, asking `hooks.ts` first;
 *   `authorization.ts` (USER/PASS, APOP, AUTH with `sasl.ts`, login) and `transaction.ts`
 *   (STAT ... RSET) over the mailbox model in `mailbox.ts`;
 * - `wire.ts`: dot-stuffing, terminators, TOP; `limits.ts` and `errors.ts`;
 * - `misbehaviours.ts`, `body-misbehaviours.ts`, `login-misbehaviours.ts`: ready-made hooks,
 *   built from `command-matcher.ts`.
 */
export { startPop3Server } from './server.js';
export type { Pop3TestServer, SessionLog } from './server-types.js';
export type { Pop3ServerFeatures, Pop3ServerOptions, Pop3UserAccount } from './options.js';
export type { MailboxMessage, SessionMessage } from './mailbox.js';
export type {
  AuthSuccess,
  LoginMethod,
  Pop3ServerHooks,
  ScriptedConnection,
  SessionPhase,
  SessionState,
} from './hooks.js';
export { MAX_COMMAND_LINE_BYTES } from './limits.js';
export { CommandLineTooLongError, ConnectionClosedError, ReadLineTimeoutError } from './errors.js';
export { dotStuff, encodeMultilineBody, extractTop } from './wire.js';
export { matchesCommand, type AfterAnswer, type CommandMatcher } from './command-matcher.js';
export {
  respondWith,
  silentAfter,
  silentGreeting,
  type RespondWithOptions,
  type ScriptedResponse,
} from './misbehaviours.js';
export { bodyWithoutTerminator, disconnectMidBody, stallMidBody, type PartialBodyOptions } from './body-misbehaviours.js';
export {
  MICROSOFT_CAPABILITIES,
  microsoftXoauth2,
  rejectLogin,
  type LoginResponseCode,
  type MicrosoftXoauth2Options,
  type RejectLoginOptions,
} from './login-misbehaviours.js';
