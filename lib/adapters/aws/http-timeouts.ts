/**
 * The HTTP timeouts of every AWS SDK client popdrain builds (the CLI's in cli/aws.ts, the
 * Lambdas' in lambdas/), set in one place.
 */
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';

/**
 * HTTP timeouts of popdrain's AWS SDK clients (node-http-handler options). Without them a call
 * to an endpoint that accepts the connection but never answers waits forever: the SDK gives S3
 * (and most services) no socket timeout. A timeout fails the attempt with a `TimeoutError`,
 * which the SDK retries (maxAttempts) and the adapters then report as a retryable failure
 * (STORE_FAILED, LEDGER_FAILED, ...; see lib/adapters/aws/sdk-error.ts).
 */
export interface AwsHttpTimeouts {
  /** Milliseconds to establish the TCP (and TLS) connection. */
  connectionTimeout: number;
  /**
   * Milliseconds the socket may stay idle (nothing sent or received) while a request or its
   * response is under way: a stalled endpoint, not a slow upload.
   */
  socketTimeout: number;
  /**
   * Milliseconds a whole request and response may take, however busy the socket: the cap for an
   * endpoint that trickles. Generous: one request moves at most one part (5 MiB and up) of one
   * message. Enforced (throwOnRequestTimeout), not just warned about.
   */
  requestTimeout: number;
}

export const AWS_HTTP_TIMEOUTS: Readonly<AwsHttpTimeouts> = Object.freeze({
  connectionTimeout: 10_000,
  socketTimeout: 30_000,
  requestTimeout: 300_000,
});

/**
 * An SDK client configuration with popdrain's HTTP timeouts as its `requestHandler`, and
 * `cacheMiddleware`: the client resolves each command type's middleware stack once instead of on
 * every `send` (a large share of the SDK's CPU per request when a drain sends thousands of small
 * PutObjects). Safe because popdrain adds no per-command middleware and passes no per-call options.
 */
export function withHttpTimeouts<T extends object>(
  config: T,
  timeouts: AwsHttpTimeouts = AWS_HTTP_TIMEOUTS,
): T & { requestHandler: AwsHttpTimeouts & { throwOnRequestTimeout: true }; cacheMiddleware: boolean } {
  return { cacheMiddleware: true, ...config, requestHandler: { ...timeouts, throwOnRequestTimeout: true } };
}

/** An S3Client with popdrain's HTTP timeouts (the CLI's and the Lambdas' S3 clients). */
export function createS3Client(config: S3ClientConfig = {}, timeouts: AwsHttpTimeouts = AWS_HTTP_TIMEOUTS): S3Client {
  return new S3Client(withHttpTimeouts(config, timeouts));
}
