/**
 * What the AWS adapters need to know about an SDK failure: whether trying again can help, and a
 * one-line description that is safe to put in a report. Adapters turn these into `DrainError`s.
 *
 * The SDK attaches the raw response to some errors (`$response`, and `$responseBodyText` on a
 * deserialization failure, whose message may also quote the body). For a call that returns a
 * secret, that body *is* the secret, so descriptions only ever quote messages the service sent
 * in a modelled error response, and never a deserialization error's text.
 */

/** Error names AWS services use for throttling (the SDK's own list, plus EventBridge's). */
const THROTTLING_NAMES: ReadonlySet<string> = new Set([
  'BandwidthLimitExceeded',
  'EC2ThrottledException',
  'LimitExceededException',
  'PriorRequestNotComplete',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'SlowDown',
  'ThrottledException',
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'TransactionInProgressException',
]);

/** Server-side and timeout errors worth another attempt. */
const TRANSIENT_NAMES: ReadonlySet<string> = new Set([
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
  'InternalFailure',
  'InternalServiceError',
  'InternalServerError',
  'InternalException',
  'ServiceUnavailable',
  'ServiceUnavailableException',
]);

/** Node system error codes of a connection that failed or broke. */
const NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** Longest service message quoted in a description. */
const MAX_QUOTED_MESSAGE_CHARS = 300;

interface SdkErrorShape {
  name?: unknown;
  message?: unknown;
  code?: unknown;
  $fault?: unknown;
  $retryable?: unknown;
  $metadata?: { httpStatusCode?: unknown; requestId?: unknown };
}

function shape(error: unknown): SdkErrorShape {
  return error !== null && typeof error === 'object' ? (error as SdkErrorShape) : {};
}

/** The HTTP status of a service error, when there was a response. */
export function sdkErrorStatus(error: unknown): number | undefined {
  const status = shape(error).$metadata?.httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}

/** The error's name (`ThrottlingException`, `ResourceNotFoundException`, `TimeoutError`, ...). */
export function sdkErrorName(error: unknown): string {
  const name = shape(error).name;
  return typeof name === 'string' && name !== '' ? name : 'UnknownError';
}

/** True for a modelled error response from the service (it has a fault side and metadata). */
function isServiceError(error: unknown): boolean {
  const s = shape(error);
  return (s.$fault === 'client' || s.$fault === 'server') && s.$metadata !== undefined;
}

function systemCode(error: unknown): string | undefined {
  // Node and undici put the system code on the error or on its cause.
  for (let e: unknown = error, depth = 0; e !== undefined && e !== null && depth < 3; depth++) {
    const code = shape(e).code;
    if (typeof code === 'string' && /^[A-Z][A-Z0-9_]*$/.test(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

export function isThrottlingSdkError(error: unknown): boolean {
  const s = shape(error);
  if (sdkErrorStatus(error) === 429) return true;
  if (THROTTLING_NAMES.has(sdkErrorName(error))) return true;
  const retryable = s.$retryable;
  return retryable !== null && typeof retryable === 'object' && (retryable as { throttling?: unknown }).throttling === true;
}

/**
 * Whether another attempt may succeed: throttling, 5xx, timeouts and broken connections.
 * Client faults (access denied, not found, validation) and credential errors are not retried.
 */
export function isRetryableSdkError(error: unknown): boolean {
  if (isThrottlingSdkError(error)) return true;
  const s = shape(error);
  if (s.$retryable !== undefined && s.$retryable !== null) return true;
  const status = sdkErrorStatus(error);
  if (status !== undefined && status >= 500) return true;
  if (s.$fault === 'server') return true;
  if (TRANSIENT_NAMES.has(sdkErrorName(error))) return true;
  const code = systemCode(error);
  return code !== undefined && NETWORK_CODES.has(code);
}

function clean(text: string): string {
  const oneLine = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').replace(/\s+/g, ' ').trim();
  return oneLine.length > MAX_QUOTED_MESSAGE_CHARS ? `${oneLine.slice(0, MAX_QUOTED_MESSAGE_CHARS)}...` : oneLine;
}

/**
 * One line for a report: `ThrottlingException: Rate exceeded (HTTP 400)`. Quotes the message
 * only of a service's error response or of a system error (connection refused, timeout); other
 * errors (a response that did not parse, say) are described by name alone, because their text
 * may quote the response body.
 */
export function describeSdkError(error: unknown): string {
  const name = sdkErrorName(error);
  const status = sdkErrorStatus(error);
  const message = shape(error).message;
  const code = systemCode(error);
  let text = name;
  if (typeof message === 'string' && message !== '' && message !== name && (isServiceError(error) || code !== undefined)) {
    text += `: ${clean(message)}`;
  } else if (code !== undefined && code !== name) {
    text += ` (${code})`;
  }
  if (status !== undefined) text += ` (HTTP ${status})`;
  return text;
}
