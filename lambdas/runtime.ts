/**
 * What both Lambdas share, built once per cold start: the environment (validated), the mailbox
 * file (from the bundle or from S3, validated), the SDK clients and the Powertools logger and
 * metrics. Handlers stay thin: they wire these to the engine.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { withHttpTimeouts } from '../lib/adapters/aws/http-timeouts.js';
import { DynamoDbLedger } from '../lib/adapters/aws/dynamodb-ledger.js';
import { DynamoDbMailboxRegistry } from '../lib/adapters/aws/dynamodb-registry.js';
import { parseMailboxFile, type ConfiguredMailbox } from '../lib/drain/config.js';
import type { DrainLogger } from '../lib/drain/ports.js';
import * as z from '../lib/drain/zod.js';
import { DEFAULT_REGISTRY_CACHE_SECONDS, fileMailboxSource, registryMailboxSource, type MailboxSource } from './mailbox-source.js';

export const SERVICE = 'popdrain';

const common = z.object({
  POPDRAIN_CONFIG_PATH: z.optional(z.string().check(z.minLength(1))),
  POPDRAIN_CONFIG_S3_URI: z.optional(z.string().check(z.regex(/^s3:\/\/[^/]+\/.+$/, 'must look like s3://bucket/key'))),
  POPDRAIN_LEDGER_TABLE: z.string().check(z.minLength(1)),
  // Where the mailboxes live: the file above, or the registry in the ledger table (seeded from the file).
  POPDRAIN_MAILBOX_SOURCE: z._default(z.enum(['file', 'registry']), 'file'),
  POPDRAIN_REGISTRY_CACHE_SECONDS: z._default(z.coerce.number().check(z.int(), z.minimum(0)), DEFAULT_REGISTRY_CACHE_SECONDS),
});

export class EnvironmentError extends Error {
  override readonly name = 'EnvironmentError';
}

/** Parse the environment with a schema; a clear error names each missing or bad variable. */
export function readEnvironment<T extends z.core.$ZodShape>(shape: T, env: NodeJS.ProcessEnv = process.env) {
  const problems: string[] = [];
  const parse = <S extends z.ZodMiniType>(schema: S): z.infer<S> | undefined => {
    const result = schema.safeParse(env);
    if (result.success) return result.data;
    problems.push(...result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
    return undefined;
  };
  const base = parse(common);
  const extra = parse(z.object(shape));
  if (base === undefined || extra === undefined) throw new EnvironmentError(`invalid Lambda environment: ${problems.join('; ')}`);
  if (base.POPDRAIN_CONFIG_PATH === undefined && base.POPDRAIN_CONFIG_S3_URI === undefined) {
    throw new EnvironmentError('invalid Lambda environment: set POPDRAIN_CONFIG_PATH or POPDRAIN_CONFIG_S3_URI');
  }
  return { ...base, ...extra };
}

/** The mailbox file, keyed by id. */
export interface MailboxDirectory {
  all: ConfiguredMailbox[];
  byId: Map<string, ConfiguredMailbox>;
}

/** The mailbox file as parsed JSON, from the bundle or from S3 (not validated). */
export async function readMailboxFileJson(
  env: { POPDRAIN_CONFIG_PATH?: string | undefined; POPDRAIN_CONFIG_S3_URI?: string | undefined },
  s3: () => S3Client,
): Promise<unknown> {
  let text: string;
  if (env.POPDRAIN_CONFIG_S3_URI !== undefined) {
    const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(env.POPDRAIN_CONFIG_S3_URI)!;
    const object = await s3().send(new GetObjectCommand({ Bucket: m[1], Key: m[2] }));
    text = (await object.Body?.transformToString('utf8')) ?? '';
  } else {
    const path = env.POPDRAIN_CONFIG_PATH!;
    const root = process.env.LAMBDA_TASK_ROOT ?? process.cwd();
    text = readFileSync(isAbsolute(path) ? path : join(root, path), 'utf8');
  }
  return JSON.parse(text) as unknown;
}

export async function loadMailboxes(
  env: { POPDRAIN_CONFIG_PATH?: string | undefined; POPDRAIN_CONFIG_S3_URI?: string | undefined },
  s3: () => S3Client,
): Promise<MailboxDirectory> {
  const all = parseMailboxFile(await readMailboxFileJson(env, s3));
  return { all, byId: new Map(all.map((m) => [m.id, m])) };
}

/**
 * The mailbox source of the environment: the file (lazily read, cached for the environment's
 * life) or the registry (cached for POPDRAIN_REGISTRY_CACHE_SECONDS; `seed`: the scheduler
 * seeds it from the file).
 */
export function createMailboxSource(
  env: ReturnType<typeof readEnvironment>,
  s3: () => S3Client,
  options: { client: DynamoDBClient; logger: DrainLogger; seed: boolean },
): MailboxSource {
  if (env.POPDRAIN_MAILBOX_SOURCE === 'file') return fileMailboxSource(lazyMailboxes(env, s3));
  return registryMailboxSource({
    registry: new DynamoDbMailboxRegistry(options.client, env.POPDRAIN_LEDGER_TABLE),
    cacheMs: env.POPDRAIN_REGISTRY_CACHE_SECONDS * 1000,
    logger: options.logger,
    ...(options.seed ? { seedFile: () => readMailboxFileJson(env, s3) } : {}),
  });
}

/**
 * The mailbox file, read on first use and then cached for the life of the execution
 * environment: a handler does no network I/O at import. A failed read is not cached (the next
 * invocation tries again).
 */
export function lazyMailboxes(
  env: { POPDRAIN_CONFIG_PATH?: string | undefined; POPDRAIN_CONFIG_S3_URI?: string | undefined },
  s3: () => S3Client,
): () => Promise<MailboxDirectory> {
  let loading: Promise<MailboxDirectory> | undefined;
  return () => {
    loading ??= loadMailboxes(env, s3).catch((error: unknown) => {
      loading = undefined;
      throw error;
    });
    return loading;
  };
}

export function createLogger(): Logger {
  return new Logger({ serviceName: SERVICE });
}

export function createMetrics(): Metrics {
  return new Metrics({ namespace: SERVICE, serviceName: SERVICE });
}

/** The engine's logger port over Powertools' Logger (structured JSON, one record per call). */
export function drainLogger(logger: Logger): DrainLogger {
  return {
    debug: (message, fields) => logger.debug(message, fields ?? {}),
    info: (message, fields) => logger.info(message, fields ?? {}),
    warn: (message, fields) => logger.warn(message, fields ?? {}),
    error: (message, fields) => logger.error(message, fields ?? {}),
  };
}

/**
 * An SDK client configuration (endpoint, region and credentials from the Lambda environment)
 * with popdrain's HTTP timeouts (AWS_HTTP_TIMEOUTS in lib/adapters/aws/http-timeouts.ts, shared with the CLI): every
 * client of the Lambdas is built with it, so no call waits forever on a stalled endpoint.
 */
export function clientConfig<T extends object>(config: T = {} as T) {
  return withHttpTimeouts(config);
}

/** `logger` hears of done-set writes that failed (best effort: the run goes on). */
export function createLedger(tableName: string, client: DynamoDBClient = new DynamoDBClient(clientConfig()), logger?: DrainLogger): DynamoDbLedger {
  return new DynamoDbLedger({ client, tableName, logger });
}
