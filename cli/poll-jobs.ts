/**
 * What `popdrain poll` runs: the mailboxes of a config file (read again on SIGHUP), or the one
 * mailbox of a URL (`drain URL --every 5m`), each with its interval, login, destination and
 * budget. The command line's settings override the file's, as for `drain --config`.
 */
import { LocalCredentials } from '../lib/adapters/local/local-credentials.js';
import type { DeletePolicy, MailboxConfig } from '../lib/drain/mailbox.js';
import type { CredentialsProvider, DrainLogger } from '../lib/drain/ports.js';
import { withoutUndefined } from '../lib/drain/without-undefined.js';
import { refuseCommandsFromUnsafeConfig } from './config-safety.js';
import { UsageError } from './exit-codes.js';
import { duration, positiveInt, size } from './option-values.js';
import { mdaArgv } from './mda-option.js';
import type { DrainCommandOptions } from './drain-command.js';

export interface PollCommandOptions extends DrainCommandOptions {
  every?: string;
  'log-file'?: string;
}

/** The shortest interval `--every` takes (a POP3 server may refuse more frequent logins). */
export const MIN_EVERY_MS = 60_000;

export interface PollJob {
  mailbox: MailboxConfig;
  credentials: CredentialsProvider;
  /** Before the time scale. */
  intervalMs: number;
  mda?: string[];
  out?: string;
  maildir?: string;
  maxTimeMs?: number;
}

/** The settings of the command line that apply to every mailbox. */
export interface PollOverrides {
  everyMs?: number;
  policy?: DeletePolicy;
  maxSize?: number;
  maxMessages?: number;
  maxBytes?: number;
  maxTimeMs?: number;
  mda?: string[];
  noUidlResetGuard: boolean;
}

/** Options that make no sense for a loop, refused by name. */
const NOT_WITH_POLL = ['json', 'dry-run', 's3-bucket', 's3-prefix', 'kms-key-id', 'ledger-table', 'event-bus', 'aws-region', 'aws-endpoint', 'secrets-manager'] as const;

export function pollOverrides(o: PollCommandOptions): PollOverrides {
  for (const name of NOT_WITH_POLL) if (o[name] !== undefined) throw new UsageError(`--${name} does not go with poll or --every (it runs on local files, Maildirs or an MDA)`);
  if (o.maildir !== undefined && o.mda !== undefined) throw new UsageError('choose --maildir or --mda, not both');
  const chosen = [o.keep === true, o.delete === true, o['keep-days'] !== undefined].filter(Boolean).length;
  if (chosen > 1) throw new UsageError('choose one of --keep, --delete and --keep-days');
  const policy: DeletePolicy | undefined =
    o.delete === true ? { mode: 'delete' } : o['keep-days'] !== undefined ? { mode: 'keep-days', days: positiveInt(o['keep-days'], '--keep-days')! } : o.keep === true ? { mode: 'keep' } : undefined;
  return {
    ...withoutUndefined({
      everyMs: duration(o.every, '--every', MIN_EVERY_MS),
      policy,
      maxSize: size(o['max-size'], '--max-size'),
      maxMessages: positiveInt(o['max-messages'], '--max-messages'),
      maxBytes: size(o['max-bytes'], '--max-bytes'),
      maxTimeMs: duration(o['max-time'], '--max-time'),
      mda: mdaArgv(o),
    }),
    noUidlResetGuard: o['no-uidl-reset-guard'] === true,
  };
}

/** The mailbox with the command line's policy, size cap and guard applied. */
export function adjustMailbox(m: MailboxConfig, v: PollOverrides): MailboxConfig {
  return {
    ...m,
    ...(v.policy === undefined ? {} : { deletePolicy: v.policy }),
    ...(v.maxSize === undefined ? {} : { maxMessageBytes: v.maxSize }),
    ...(v.noUidlResetGuard ? { uidlResetGuard: { ...m.uidlResetGuard, enabled: false } } : {}),
  };
}

/**
 * Reads and checks the config file and returns its jobs; throws UsageError with one line (the
 * problems joined with "; ") when it is unusable, so a reload can report it and keep the old.
 */
export async function loadPollJobs(path: string, o: PollCommandOptions, v: PollOverrides, logger: DrainLogger): Promise<PollJob[]> {
  const { ConfigError, loadMailboxFile } = await import('../lib/drain/config.js');
  let configured;
  try {
    configured = loadMailboxFile(path);
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(error.message.replace(/:\n\s+/, ': ').replace(/\n\s*/g, '; '));
    throw error;
  }
  await refuseCommandsFromUnsafeConfig(path, configured);
  const credentials = new LocalCredentials({ env: process.env, logger });
  return configured.map((m) => {
    if (m.secret.type === 'secrets-manager') {
      throw new UsageError(`mailbox "${m.id}" keeps its secret in Secrets Manager: poll takes local logins (auth.passwordEnv, passwordFile, passwordCommand or oauth2)`);
    }
    const mda = v.mda ?? (o.maildir === undefined ? m.mda : undefined);
    return {
      mailbox: adjustMailbox(m, v),
      credentials,
      intervalMs: v.everyMs ?? m.everyMinutes * 60_000,
      ...withoutUndefined({
        mda,
        out: o.out === undefined ? m.out : undefined,
        maildir: o.maildir === undefined && v.mda === undefined ? m.maildir : undefined,
        maxTimeMs: v.maxTimeMs ?? m.maxTimeMs,
      }),
    };
  });
}
