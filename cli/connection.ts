/**
 * From a mailbox URL and the connection options to a MailboxConfig and its credentials:
 * password from POPDRAIN_PASSWORD, --password-file or a prompt; an OAuth2 access token from an
 * environment variable; or OAuth2 client credentials and a refresh token, refreshed as needed.
 */
import { MAX_CA_FILE_BYTES, readTextFileBounded } from '../lib/drain/read-bounded.js';
import { isReadableByOthers, LocalCredentials } from '../lib/adapters/local/local-credentials.js';
import { DEFAULT_UIDL_RESET_GUARD, type MailboxConfig, type SecretSource } from '../lib/drain/mailbox.js';
import type { CredentialsProvider, DrainLogger } from '../lib/drain/ports.js';
import { deriveMailboxId, mailboxIdProblem } from '../lib/drain/keys.js';
import { commandArgv, shellWordsProblem } from '../lib/drain/shell-words.js';
import { parseFingerprint, type AuthMethod } from '../lib/pop3/index.js';
import { UsageError } from './exit-codes.js';
import { defaultMailboxId } from './mailbox-identity.js';
import type { MailboxUrl } from './mailbox-url.js';
import { promptHidden } from './prompt.js';
import { withoutUndefined } from '../lib/drain/without-undefined.js';

export const PASSWORD_ENV = 'POPDRAIN_PASSWORD';

export interface ConnectionOptions {
  user?: string;
  'password-file'?: string;
  'password-command'?: string;
  'password-command-shell'?: boolean;
  'oauth2-token-env'?: string;
  'oauth2-token-endpoint'?: string;
  'oauth2-client-id'?: string;
  'oauth2-client-secret-env'?: string;
  'oauth2-client-secret-file'?: string;
  'oauth2-refresh-token-env'?: string;
  'oauth2-refresh-token-file'?: string;
  'oauth2-scope'?: string;
  auth?: string;
  ca?: string;
  servername?: string;
  fingerprint?: string[];
  id?: string;
}

const METHODS: readonly string[] = ['auto', 'USER', 'APOP', 'PLAIN', 'LOGIN', 'CRAM-MD5', 'SCRAM-SHA-1', 'SCRAM-SHA-256', 'XOAUTH2', 'OAUTHBEARER'];

export function parseMechanism(value: string | undefined): AuthMethod | 'auto' {
  if (value === undefined) return 'auto';
  const upper = value.toUpperCase();
  const found = METHODS.find((m) => m.toUpperCase() === upper);
  if (found === undefined) throw new UsageError(`unknown --auth "${value}" (one of ${METHODS.join(', ')})`);
  return found as AuthMethod | 'auto';
}

export function readCa(path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  try {
    const pem = readTextFileBounded(path, MAX_CA_FILE_BYTES);
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new UsageError(`--ca ${path} holds no PEM certificate`);
    return pem;
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`cannot read --ca ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

function secretFor(o: ConnectionOptions, env: NodeJS.ProcessEnv): SecretSource | 'prompt' {
  if (o['oauth2-token-env'] !== undefined) {
    if (env[o['oauth2-token-env']] === undefined) throw new UsageError(`--oauth2-token-env: ${o['oauth2-token-env']} is not set`);
    return { type: 'oauth2', oauth2: { accessTokenEnv: o['oauth2-token-env'] } };
  }
  if (o['oauth2-token-endpoint'] !== undefined || o['oauth2-refresh-token-env'] !== undefined || o['oauth2-refresh-token-file'] !== undefined) {
    if (o['oauth2-token-endpoint'] === undefined) throw new UsageError('OAuth2 refresh needs --oauth2-token-endpoint');
    if (o['oauth2-client-id'] === undefined) throw new UsageError('OAuth2 refresh needs --oauth2-client-id');
    return {
      type: 'oauth2',
      oauth2: {
        tokenEndpoint: o['oauth2-token-endpoint'],
        clientId: o['oauth2-client-id'],
        ...withoutUndefined({ clientSecretEnv: o['oauth2-client-secret-env'], clientSecretFile: o['oauth2-client-secret-file'], refreshTokenEnv: o['oauth2-refresh-token-env'], refreshTokenFile: o['oauth2-refresh-token-file'] }),
        ...withoutUndefined({ scope: o['oauth2-scope'] }),
      },
    };
  }
  if (o['password-file'] !== undefined && o['password-command'] !== undefined) throw new UsageError('choose --password-file or --password-command, not both');
  if (o['password-command-shell'] === true && o['password-command'] === undefined) throw new UsageError('--password-command-shell goes with --password-command');
  if (o['password-command'] !== undefined) {
    const shell = o['password-command-shell'] === true;
    const problem = shell ? undefined : shellWordsProblem(o['password-command']);
    if (problem !== undefined) throw new UsageError(`--password-command: ${problem} (--password-command-shell runs it with sh -c)`);
    return { type: 'command', argv: commandArgv(o['password-command'], shell) };
  }
  if (o['password-file'] !== undefined) return { type: 'file', path: o['password-file'] };
  if (env[PASSWORD_ENV] !== undefined && env[PASSWORD_ENV] !== '') return { type: 'env', variable: PASSWORD_ENV };
  return 'prompt';
}

function tlsOptionsFrom(caPem: string | undefined, o: ConnectionOptions): Pick<MailboxConfig, 'tlsOptions'> {
  const fingerprints = o.fingerprint ?? [];
  const bad = fingerprints.find((f) => parseFingerprint(f) === undefined);
  if (bad !== undefined) throw new UsageError(`--fingerprint "${bad}" is not a SHA-256 fingerprint (64 hex digits, colons optional, as check prints it)`);
  if (caPem === undefined && o.servername === undefined && fingerprints.length === 0) return {};
  return {
    tlsOptions: {
      ...withoutUndefined({ caPem, servername: o.servername }),
      ...(fingerprints.length === 0 ? {} : { fingerprints }),
    },
  };
}

export interface ResolvedMailbox {
  mailbox: MailboxConfig;
  credentials: CredentialsProvider;
  /** Warnings to print (e.g. a password file others can read). */
  warnings: string[];
}

/** Build the mailbox and its credentials. `interactive`: a terminal may be asked for a password. */
export async function resolveMailbox(
  url: MailboxUrl,
  o: ConnectionOptions,
  options: { env?: NodeJS.ProcessEnv; interactive: boolean; requireCredentials: boolean; logger?: DrainLogger },
): Promise<ResolvedMailbox | { mailbox: MailboxConfig; credentials: undefined; warnings: string[] }> {
  const env = options.env ?? process.env;
  const user = o.user ?? url.user;
  if (user === undefined || user === '') throw new UsageError('no user: put it in the URL (pop3s://user@host) or give --user');
  // Without --id: from user and host, not scheme or port (mailbox-identity.ts).
  const id = o.id ?? defaultMailboxId(user, url.host);
  const problem = mailboxIdProblem(id);
  if (problem !== undefined) throw new UsageError(`--id "${id}": ${problem}`);
  const warnings: string[] = [];
  const caPem = readCa(o.ca);
  const mechanism = parseMechanism(o.auth);
  const secret = secretFor(o, env);
  const base: Omit<MailboxConfig, 'secret'> = {
    id,
    host: url.host,
    port: url.port,
    tls: url.tls,
    user,
    mechanism,
    deletePolicy: { mode: 'keep' },
    uidlResetGuard: DEFAULT_UIDL_RESET_GUARD,
    ...tlsOptionsFrom(caPem, o),
  };
  if (secret === 'prompt') {
    const mailbox: MailboxConfig = { ...base, secret: { type: 'env', variable: PASSWORD_ENV } };
    if (!options.interactive) {
      if (!options.requireCredentials) return { mailbox, credentials: undefined, warnings };
      throw new UsageError(`no password: set ${PASSWORD_ENV}, give --password-file FILE, or run on a terminal to be asked`, 9);
    }
    const password = await promptHidden(`Password for ${user}@${url.host}: `);
    return { mailbox, credentials: { get: async () => ({ user, password }) }, warnings };
  }
  if (secret.type === 'file' && (await isReadableByOthers(secret.path))) {
    warnings.push(`warning: ${secret.path} is readable by other users; chmod 600 it`);
  }
  for (const file of [o['oauth2-refresh-token-file'], o['oauth2-client-secret-file']]) {
    if (file !== undefined && (await isReadableByOthers(file))) warnings.push(`warning: ${file} is readable by other users; chmod 600 it`);
  }
  const mailbox: MailboxConfig = { ...base, secret };
  // The logger hears of rotated refresh tokens: one from a variable must be saved by hand.
  return { mailbox, credentials: new LocalCredentials({ env, ...withoutUndefined({ logger: options.logger }) }), warnings };
}
