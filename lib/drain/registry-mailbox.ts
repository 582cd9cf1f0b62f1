/**
 * A mailbox as the deployment's registry holds it: one entry of the mailbox file's schema
 * (config.ts), without the fields that only make sense on the operator's own machine. Whoever can
 * write the registry must not be able to make a drainer read a file, an environment variable, or
 * run a command, so an entry may take its login from AWS Secrets Manager only (`auth.secret`) and
 * name no file. Refused: `auth.passwordEnv`, `auth.passwordFile`, `auth.oauth2` (environment
 * variables and files), `tlsOptions.caFile` (give `caPem`), the commands (a password command,
 * an MDA), the local destinations and budget (`out`, `maildir`, `limits.maxTimePerRun`), and
 * anything the schema does not know (config.ts's schema is strict). A pure decision.
 */
import { ConfigError, parseMailboxFile, type ConfiguredMailbox } from './config.js';

/** Fields a registry entry may not carry, with what to use instead. */
export const LOCAL_ONLY_FIELDS: ReadonlyArray<readonly [path: readonly string[], instead: string]> = [
  [['auth', 'passwordEnv'], 'use auth.secret (a Secrets Manager secret)'],
  [['auth', 'passwordFile'], 'use auth.secret (a Secrets Manager secret)'],
  [['auth', 'oauth2'], 'put the OAuth2 client and token in the Secrets Manager secret of auth.secret'],
  [['tlsOptions', 'caFile'], 'give the CA certificate itself as tlsOptions.caPem'],
  [['auth', 'passwordCommand'], 'a registry entry runs no command; use auth.secret'],
  [['auth', 'passwordCommandShell'], 'a registry entry runs no command; use auth.secret'],
  [['mdaShell'], 'a registry entry runs no command: messages go to the deployment\'s bucket'],
  [['passwordCommand'], 'a registry entry runs no command'],
  [['passwordEval'], 'a registry entry runs no command'],
  [['mda'], 'a registry entry runs no command: messages go to the deployment\'s bucket'],
  [['deliver'], 'a registry entry runs no command: messages go to the deployment\'s bucket'],
  [['out'], 'messages and state go to the deployment\'s bucket and table'],
  [['maildir'], 'messages go to the deployment\'s bucket'],
  [['limits', 'maxTimePerRun'], 'a drainer\'s run is bounded by its Lambda timeout'],
];

/** A validated registry entry: the mailbox, and whether an operator paused it. */
export interface RegistryMailbox {
  readonly mailbox: ConfiguredMailbox;
  /** Paused: the scheduler enqueues no new run (a running one finishes). */
  readonly paused: boolean;
}

function fieldAt(raw: unknown, path: readonly string[]): boolean {
  let node: unknown = raw;
  for (const key of path) {
    if (typeof node !== 'object' || node === null || !Object.hasOwn(node, key)) return false;
    node = (node as Record<string, unknown>)[key];
  }
  return true;
}

/** Why `raw` may not be a registry entry: one line per local-only field it holds. */
export function localOnlyProblems(raw: unknown): string[] {
  return LOCAL_ONLY_FIELDS.filter(([path]) => fieldAt(raw, path)).map(([path, instead]) => `${path.join('.')}: not allowed in the registry; ${instead}`);
}

/**
 * Validates one registry entry (a mailbox object of the file schema). Throws ConfigError naming
 * the mailbox and every problem; never reads a file.
 */
export function parseRegistryMailbox(raw: unknown, paused = false): RegistryMailbox {
  const id = typeof raw === 'object' && raw !== null && typeof (raw as { id?: unknown }).id === 'string' ? (raw as { id: string }).id : '?';
  const local = localOnlyProblems(raw);
  if (local.length > 0) {
    const problems = local.map((p) => `mailbox "${id}": ${p}`);
    throw new ConfigError(`invalid registry entry:\n  ${problems.join('\n  ')}`, problems);
  }
  const refuseFiles = (path: string): string => {
    throw new Error(`a registry entry reads no file (${path})`);
  };
  try {
    const [mailbox] = parseMailboxFile({ mailboxes: [raw] }, { readFile: refuseFiles });
    if (mailbox!.secret.type !== 'secrets-manager') throw new ConfigError(`mailbox "${id}": auth: a registry entry takes its login from auth.secret`, []);
    return { mailbox: mailbox!, paused };
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    const problems = error.problems.map((p) => p.replace(/^mailbox 1( "[^"]*")?: /, `mailbox "${id}": `));
    throw new ConfigError(`invalid registry entry:\n  ${(problems.length > 0 ? problems : [error.message]).join('\n  ')}`, problems);
  }
}

/**
 * The entries a mailbox file seeds the registry with: each mailbox with the file's `defaults`
 * applied (as parseMailboxFile applies them: field by field, `tlsOptions` merged), so an entry
 * stands alone. Not validated here: `put` validates each.
 */
export function registryEntriesOfFile(raw: unknown): Record<string, unknown>[] {
  const file = (typeof raw === 'object' && raw !== null ? raw : {}) as { defaults?: Record<string, unknown>; mailboxes?: unknown };
  const defaults = file.defaults ?? {};
  const mailboxes = Array.isArray(file.mailboxes) ? (file.mailboxes as Array<Record<string, unknown>>) : [];
  return mailboxes.map((m) => {
    const merged: Record<string, unknown> = { ...defaults, ...m };
    const tls = { ...(defaults['tlsOptions'] as object | undefined), ...(m['tlsOptions'] as object | undefined) };
    if (Object.keys(tls).length > 0) merged['tlsOptions'] = tls;
    return merged;
  });
}
