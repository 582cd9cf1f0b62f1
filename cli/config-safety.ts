/**
 * A configuration file that names a command to run (a password command, an MDA) is refused
 * when users other than its owner can change it: they could make popdrain run anything, as
 * fetchmail refuses a world-writable .fetchmailrc.
 */
import { isWritableByOthers } from '../lib/adapters/local/local-credentials.js';
import type { MailboxConfig } from '../lib/drain/mailbox.js';
import { UsageError } from './exit-codes.js';

/** The fields of a mailbox that run a command, by their name in the file. */
export function commandFields(m: MailboxConfig & { mda?: unknown }): string[] {
  return [...(m.secret.type === 'command' ? ['auth.passwordCommand'] : []), ...(m.mda === undefined ? [] : ['mda'])];
}

export async function refuseCommandsFromUnsafeConfig(path: string, mailboxes: ReadonlyArray<MailboxConfig & { mda?: unknown }>): Promise<void> {
  const found = mailboxes.flatMap((m) => commandFields(m).map((f) => `mailbox "${m.id}" ${f}`));
  if (found.length === 0) return;
  let unsafe: boolean;
  try {
    unsafe = await isWritableByOthers(path);
  } catch (error) {
    throw new UsageError(`cannot examine ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  if (unsafe) {
    throw new UsageError(`${path} names a command to run (${found[0]}) and users other than its owner can change it: chmod go-w ${path}`);
  }
}
