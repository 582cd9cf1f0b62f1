/**
 * The mailbox file (config/mailboxes.json): one schema for the deployment (read at synth time
 * and by the Lambdas) and for the command-line tool (`popdrain drain --config`). Errors name the
 * mailbox and the field, one per line.
 */
import * as z from './zod.js';
import { MAX_CA_FILE_BYTES, MAX_CONFIG_FILE_BYTES, readTextFileBounded } from './read-bounded.js';
import { describeError } from './errors.js';
import { mailboxIdProblem } from './keys.js';
import { DEFAULT_UIDL_RESET_GUARD, type DeletePolicy, type MailboxConfig, type SecretSource } from './mailbox.js';
import { parseFingerprint } from '../pop3/index.js';
import { commandArgv, shellWordsProblem } from './shell-words.js';
import { parseDuration, parseSize } from './units.js';
import { withoutUndefined } from './without-undefined.js';

export { parseDuration, parseSize } from './units.js';

const size = z.pipe(
  z.union([z.number(), z.string()]),
  z.transform((v, payload) => {
    const n = parseSize(v);
    if (n === undefined || n <= 0) {
      payload.issues.push({ code: 'custom', message: `"${String(v)}" is not a size (e.g. 26214400, "25MB", "1GiB")`, input: v });
      return z.NEVER;
    }
    return n;
  }),
);

const duration = z.pipe(
  z.union([z.number(), z.string()]),
  z.transform((v, payload) => {
    const ms = parseDuration(v);
    if (ms === undefined || ms <= 0) {
      payload.issues.push({ code: 'custom', message: `"${String(v)}" is not a duration (e.g. "90s", "10m", "1h")`, input: v });
      return z.NEVER;
    }
    return ms;
  }),
);

const envName = z.string().check(z.regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name'));
const mechanism = z.enum([
  'auto',
  'USER',
  'APOP',
  'PLAIN',
  'LOGIN',
  'CRAM-MD5',
  'SCRAM-SHA-1',
  'SCRAM-SHA-256',
  'XOAUTH2',
  'OAUTHBEARER',
]);

const nonEmpty = () => z.string().check(z.minLength(1));
const wholeNumber = (...checks: Parameters<ReturnType<typeof z.number>['check']>) => z.number().check(z.int(), ...checks);

const oauth2Local = z
  .strictObject({
    accessTokenEnv: z.optional(envName),
    tokenEndpoint: z.optional(z.url()),
    clientId: z.optional(nonEmpty()),
    clientIdEnv: z.optional(envName),
    clientSecretEnv: z.optional(envName),
    clientSecretFile: z.optional(nonEmpty()),
    refreshTokenEnv: z.optional(envName),
    refreshTokenFile: z.optional(nonEmpty()),
    scope: z.optional(z.string()),
    grantType: z.optional(z.enum(['refresh_token', 'client_credentials'])),
  })
  .check(
    z.superRefine((o, ctx) => {
      if (o.accessTokenEnv !== undefined) return;
      if (o.tokenEndpoint === undefined) {
        ctx.addIssue({ code: 'custom', message: 'needs accessTokenEnv, or tokenEndpoint with client credentials', path: ['tokenEndpoint'] });
      }
      if (o.clientId === undefined && o.clientIdEnv === undefined) {
        ctx.addIssue({ code: 'custom', message: 'needs clientId or clientIdEnv', path: ['clientId'] });
      }
      const grant = o.grantType ?? (o.refreshTokenEnv !== undefined || o.refreshTokenFile !== undefined ? 'refresh_token' : 'client_credentials');
      if (grant === 'refresh_token' && o.refreshTokenEnv === undefined && o.refreshTokenFile === undefined) {
        ctx.addIssue({ code: 'custom', message: 'refresh_token grant needs refreshTokenEnv or refreshTokenFile', path: ['refreshTokenEnv'] });
      }
      if (grant === 'client_credentials' && o.clientSecretEnv === undefined && o.clientSecretFile === undefined) {
        ctx.addIssue({ code: 'custom', message: 'client_credentials grant needs clientSecretEnv or clientSecretFile', path: ['clientSecretEnv'] });
      }
    }),
  );

const auth = z
  .strictObject({
    mechanism: z.optional(mechanism),
    /** Secrets Manager secret name or ARN (deployments). */
    secret: z.optional(nonEmpty()),
    passwordEnv: z.optional(envName),
    passwordFile: z.optional(nonEmpty()),
    /** A command printing the password (one machine only), split into words without a shell. */
    passwordCommand: z.optional(nonEmpty()),
    /** Run passwordCommand through `sh -c` (pipes, variables...). */
    passwordCommandShell: z.optional(z.boolean()),
    oauth2: z.optional(oauth2Local),
    /**
     * The Secrets Manager secret holds an OAuth2 refresh token that the provider rotates:
     * popdrain writes the new one back, so the deployment may write this secret (and no other).
     */
    rotatingRefreshToken: z.optional(z.boolean()),
  })
  .check(
    z.superRefine((a, ctx) => {
      const sources = [a.secret, a.passwordEnv, a.passwordFile, a.passwordCommand, a.oauth2].filter((s) => s !== undefined);
      if (sources.length !== 1) {
        ctx.addIssue({
          code: 'custom',
          message: 'give exactly one of secret (Secrets Manager), passwordEnv, passwordFile, passwordCommand or oauth2',
        });
      }
      if (a.passwordCommandShell !== undefined && a.passwordCommand === undefined) {
        ctx.addIssue({ code: 'custom', message: 'passwordCommandShell goes with passwordCommand', path: ['passwordCommandShell'] });
      }
      if (a.passwordCommand !== undefined && a.passwordCommandShell !== true) {
        const problem = shellWordsProblem(a.passwordCommand);
        if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem, path: ['passwordCommand'] });
      }
      if (a.rotatingRefreshToken === true && a.secret === undefined) {
        ctx.addIssue({ code: 'custom', message: 'rotatingRefreshToken applies to a Secrets Manager secret', path: ['rotatingRefreshToken'] });
      }
    }),
  );

const deletePolicy = z.union([z.literal('keep'), z.literal('delete'), z.strictObject({ keepDays: wholeNumber(z.minimum(1), z.maximum(3650)) })]);

const guard = z.union([
  z.boolean(),
  z.strictObject({
    enabled: z.optional(z.boolean()),
    minKnown: z.optional(wholeNumber(z.minimum(1))),
    minRecognizedFraction: z.optional(z.number().check(z.minimum(0), z.maximum(1))),
  }),
]);

const limits = z.strictObject({
  maxMessageSize: z.optional(size),
  maxMessagesPerRun: z.optional(wholeNumber(z.positive())),
  maxBytesPerRun: z.optional(size),
  /** One machine only: the run's time budget from connecting on (as --max-time; a number is seconds). */
  maxTimePerRun: z.optional(duration),
});

const fingerprint = z.string().check(
  z.refine((f) => parseFingerprint(f) !== undefined, {
    message: 'not a SHA-256 certificate fingerprint (64 hex digits, colons optional)',
  }),
);

const settings = {
  port: z.optional(wholeNumber(z.minimum(1), z.maximum(65535))),
  tls: z.optional(z.enum(['implicit', 'starttls', 'insecure-plaintext'])),
  tlsOptions: z.optional(
    z.strictObject({
      caFile: z.optional(nonEmpty()),
      caPem: z.optional(nonEmpty()),
      servername: z.optional(nonEmpty()),
      minVersion: z.optional(z.enum(['TLSv1.2', 'TLSv1.3'])),
      /** SHA-256 pins of the server certificate (one, or several for a rotation). */
      fingerprint: z.optional(z.union([fingerprint, z.array(fingerprint).check(z.minLength(1))])),
    }),
  ),
  deletePolicy: z.optional(deletePolicy),
  schedule: z.optional(z.strictObject({ everyMinutes: wholeNumber(z.minimum(1), z.maximum(1440)) })),
  limits: z.optional(limits),
  uidlResetGuard: z.optional(guard),
  placement: z.optional(z.enum(['default', 'vpc'])),
  pipelineWindow: z.optional(wholeNumber(z.minimum(1), z.maximum(1024))),
  /** One machine only: deliver each message to this command's stdin (split like passwordCommand). */
  mda: z.optional(nonEmpty()),
  /** Run mda through `sh -c`. */
  mdaShell: z.optional(z.boolean()),
  /** One machine only: the state folder (ledger, events, .eml files) of this mailbox (as --out). */
  out: z.optional(nonEmpty()),
  /** One machine only: deliver into this Maildir; the ledger and events stay in `out` (as --maildir). */
  maildir: z.optional(nonEmpty()),
};

const mailboxSchema = z.strictObject({
  id: z.string().check(
    z.superRefine((id, ctx) => {
      const problem = mailboxIdProblem(id);
      if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
    }),
  ),
  host: z.string().check(z.minLength(1), z.regex(/^[A-Za-z0-9.:[\]-]+$/, 'must be a host name or IP address')),
  user: nonEmpty(),
  auth,
  ...settings,
});

const fileSchema = z.strictObject({
  $schema: z.optional(z.string()),
  version: z.optional(z.literal(1)),
  defaults: z.optional(z.strictObject(settings)),
  mailboxes: z.array(mailboxSchema).check(z.minLength(1, 'list at least one mailbox')),
});

/** A mailbox from the file: what the engine needs, plus the deployment's scheduling fields. */
export interface ConfiguredMailbox extends MailboxConfig {
  everyMinutes: number;
  /** The secret's refresh token rotates: the deployment grants write access to this secret. */
  rotatingRefreshToken: boolean;
  placement: 'default' | 'vpc';
  /** The CA file named in the config, when one was (read by `loadMailboxFile`). */
  caFile?: string;
  /** One machine only: the argv of a mail delivery agent that stores each message (`mda`). */
  mda?: string[];
  /** One machine only: the state folder (`out`), as written in the file. */
  out?: string;
  /** One machine only: the Maildir to deliver into (`maildir`), as written in the file. */
  maildir?: string;
  /** One machine only: the run's time budget (`limits.maxTimePerRun`). */
  maxTimeMs?: number;
}

/**
 * The settings of a parsed mailbox that only one machine can carry out, by their names in the
 * file: a deployment stores in its bucket, keeps state in its table, and runs no command.
 * (Logins other than `auth.secret` are refused by the deployment's own check.)
 */
export function localOnlySettings(m: ConfiguredMailbox): string[] {
  return [
    ...(m.mda === undefined ? [] : ['mda']),
    ...(m.out === undefined ? [] : ['out']),
    ...(m.maildir === undefined ? [] : ['maildir']),
    ...(m.maxTimeMs === undefined ? [] : ['limits.maxTimePerRun']),
  ];
}

export const DEFAULT_EVERY_MINUTES = 5;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    message: string,
    readonly problems: string[],
  ) {
    super(message);
  }
}

function formatPath(path: ReadonlyArray<PropertyKey>, raw: unknown): string {
  const parts = [...path];
  if (parts[0] === 'mailboxes' && typeof parts[1] === 'number') {
    const index = parts[1];
    const entry = (raw as { mailboxes?: Array<{ id?: unknown }> })?.mailboxes?.[index];
    const id = typeof entry?.id === 'string' ? ` "${entry.id}"` : '';
    const rest = parts.slice(2).join('.');
    return `mailbox ${index + 1}${id}${rest ? `: ${rest}` : ''}`;
  }
  return parts.length > 0 ? parts.join('.') : '(top level)';
}

function normalizeDelete(value: z.infer<typeof deletePolicy> | undefined): DeletePolicy {
  if (value === undefined || value === 'keep') return { mode: 'keep' };
  if (value === 'delete') return { mode: 'delete' };
  return { mode: 'keep-days', days: value.keepDays };
}

function normalizeSecret(a: z.infer<typeof auth>): SecretSource {
  if (a.secret !== undefined) return { type: 'secrets-manager', secretId: a.secret };
  if (a.passwordEnv !== undefined) return { type: 'env', variable: a.passwordEnv };
  if (a.passwordFile !== undefined) return { type: 'file', path: a.passwordFile };
  if (a.passwordCommand !== undefined) return { type: 'command', argv: commandArgv(a.passwordCommand, a.passwordCommandShell === true) };
  return { type: 'oauth2', oauth2: a.oauth2! };
}

/** Validate a parsed mailbox file; throws ConfigError listing every problem. */
export function parseMailboxFile(raw: unknown, options: { readFile?: (path: string) => string } = {}): ConfiguredMailbox[] {
  const result = fileSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${formatPath(i.path, raw)}: ${i.message}`);
    throw new ConfigError(`invalid mailbox configuration:\n  ${problems.join('\n  ')}`, problems);
  }
  const file = result.data;
  const problems: string[] = [];
  const seen = new Set<string>();
  const mailboxes = file.mailboxes.map((m, index) => {
    const d = { ...file.defaults, ...m };
    if (seen.has(m.id)) problems.push(`mailbox ${index + 1} "${m.id}": id: duplicate id`);
    seen.add(m.id);
    const tls = d.tls ?? 'implicit';
    const g = d.uidlResetGuard;
    const tlsOptions = { ...file.defaults?.tlsOptions, ...m.tlsOptions };
    let caPem = tlsOptions.caPem;
    if (tlsOptions.caFile !== undefined && caPem === undefined) {
      try {
        caPem = (options.readFile ?? ((p: string) => readTextFileBounded(p, MAX_CA_FILE_BYTES)))(tlsOptions.caFile);
      } catch (error) {
        problems.push(`mailbox ${index + 1} "${m.id}": tlsOptions.caFile: cannot read ${tlsOptions.caFile} (${describeError(error)})`);
      }
    }
    const mailbox: ConfiguredMailbox = {
      id: m.id,
      host: m.host,
      port: d.port ?? (tls === 'implicit' ? 995 : 110),
      tls,
      user: m.user,
      secret: normalizeSecret(m.auth),
      mechanism: m.auth.mechanism ?? 'auto',
      deletePolicy: normalizeDelete(d.deletePolicy),
      uidlResetGuard:
        g === undefined || g === true
          ? DEFAULT_UIDL_RESET_GUARD
          : g === false
            ? { ...DEFAULT_UIDL_RESET_GUARD, enabled: false }
            : { ...DEFAULT_UIDL_RESET_GUARD, ...g, enabled: g.enabled ?? true },
      everyMinutes: d.schedule?.everyMinutes ?? DEFAULT_EVERY_MINUTES,
      rotatingRefreshToken: m.auth.rotatingRefreshToken === true,
      placement: d.placement ?? 'default',
    };
    const fingerprints = tlsOptions.fingerprint === undefined ? undefined : [tlsOptions.fingerprint].flat();
    if (caPem !== undefined || tlsOptions.servername !== undefined || tlsOptions.minVersion !== undefined || fingerprints !== undefined) {
      mailbox.tlsOptions = withoutUndefined({ caPem, servername: tlsOptions.servername, minVersion: tlsOptions.minVersion, fingerprints });
    }
    if (tlsOptions.caFile !== undefined) mailbox.caFile = tlsOptions.caFile;
    const l = d.limits;
    if (l?.maxMessageSize !== undefined) mailbox.maxMessageBytes = l.maxMessageSize;
    if (l?.maxMessagesPerRun !== undefined) mailbox.maxMessagesPerRun = l.maxMessagesPerRun;
    if (l?.maxBytesPerRun !== undefined) mailbox.maxBytesPerRun = l.maxBytesPerRun;
    if (l?.maxTimePerRun !== undefined) mailbox.maxTimeMs = l.maxTimePerRun;
    if (d.out !== undefined) mailbox.out = d.out;
    if (d.maildir !== undefined) mailbox.maildir = d.maildir;
    if (d.maildir !== undefined && d.mda !== undefined) problems.push(`mailbox ${index + 1} "${m.id}": maildir: choose maildir or mda, not both`);
    if (d.pipelineWindow !== undefined) mailbox.pipelineWindow = d.pipelineWindow;
    if (d.mda !== undefined) {
      const problem = d.mdaShell === true ? undefined : shellWordsProblem(d.mda);
      if (problem === undefined) mailbox.mda = commandArgv(d.mda, d.mdaShell === true);
      else problems.push(`mailbox ${index + 1} "${m.id}": mda: ${problem}`);
    }
    return mailbox;
  });
  if (problems.length > 0) throw new ConfigError(`invalid mailbox configuration:\n  ${problems.join('\n  ')}`, problems);
  return mailboxes;
}

/** Read and validate a mailbox file (JSON). */
export function loadMailboxFile(path: string): ConfiguredMailbox[] {
  let text: string;
  try {
    text = readTextFileBounded(path, MAX_CONFIG_FILE_BYTES);
  } catch (error) {
    throw new ConfigError(`cannot read mailbox configuration ${path}: ${describeError(error)}`, []);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${path} is not valid JSON: ${describeError(error)}`, []);
  }
  try {
    return parseMailboxFile(raw);
  } catch (error) {
    if (error instanceof ConfigError) throw new ConfigError(`${path}: ${error.message}`, error.problems);
    throw error;
  }
}
