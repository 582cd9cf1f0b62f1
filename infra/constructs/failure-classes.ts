/**
 * Run failures by error code, grouped into the few classes an operator acts on differently:
 * one alarm per class, each over the `Failures` metric of its codes (dimensions `service` +
 * `errorCode`). A fixed set, whatever the number of mailboxes. Refused logins have their own
 * alarm (AuthFailures); a busy mailbox (IN_USE, LOGIN_DELAY, LEASE_HELD) is not a failure.
 */

export interface FailureClass {
  /** The alarm's construct id. */
  readonly alarmId: string;
  readonly description: string;
  /** The error codes (lib/pop3/errors.ts, lib/drain/errors.ts) it sums: at most 10 (metric math). */
  readonly codes: readonly string[];
  /** Consecutive 5-minute periods with failures before it fires. */
  readonly periods: number;
}

export const FAILURE_CLASSES: readonly FailureClass[] = [
  {
    alarmId: 'ServerFailures',
    description: 'POP3 servers could not be reached or failed (connect, TLS, timeouts, closed connections, SYS/TEMP, SYS/PERM) for 15 minutes.',
    codes: ['CONNECT_FAILED', 'CONNECT_TIMEOUT', 'TLS_FAILED', 'GREETING_TIMEOUT', 'COMMAND_TIMEOUT', 'BODY_TIMEOUT', 'CONNECTION_CLOSED', 'SYS_TEMP', 'SYS_PERM'],
    periods: 3,
  },
  {
    alarmId: 'ProtocolFailures',
    description: 'A POP3 server answered outside the protocol or the limits, or offers no usable STLS or SASL mechanism.',
    codes: ['PROTOCOL_ERROR', 'LIMIT_EXCEEDED', 'STLS_UNAVAILABLE', 'MECHANISM_UNAVAILABLE'],
    periods: 1,
  },
  {
    alarmId: 'AwsFailures',
    description: 'Storing, recording or announcing messages failed (S3, DynamoDB, EventBridge), or a stored object conflicts with a reused UIDL.',
    codes: ['STORE_FAILED', 'STORE_CONFLICT', 'LEDGER_FAILED', 'EVENTS_FAILED'],
    periods: 1,
  },
  {
    alarmId: 'ConfigFailures',
    description: 'A mailbox configuration was refused at run time, or a run failed unexpectedly.',
    codes: ['CONFIG_INVALID', 'UNEXPECTED'],
    periods: 1,
  },
];

/** The metric math that sums a class's codes (ids m0..m9; missing series count as 0). */
export function failureClassExpression(codes: readonly string[]): string {
  if (codes.length === 0 || codes.length > 10) throw new Error(`a failure class sums 1 to 10 codes, not ${codes.length}`);
  return codes.map((_, i) => `FILL(m${i}, 0)`).join(' + ');
}
