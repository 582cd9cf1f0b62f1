/**
 * The I/O around mailbox-identity.ts for a run without `--id`: continue a state folder recorded
 * under the former default id, and refuse to drain again under a new id a mailbox whose
 * messages this state folder already holds under another.
 */
import type { FileLedger } from '../lib/adapters/local/index.js';
import { DrainError } from '../lib/drain/errors.js';
import type { UidlLedger } from '../lib/drain/ports.js';
import { chooseDefaultId, formerDefaultMailboxId, identityVerdict } from './mailbox-identity.js';

/** The id to use (`notice`: say so once, when the former default is continued). */
export async function settleDefaultId(
  current: string,
  login: { user: string; host: string; port: number },
  ledger: Pick<UidlLedger, 'getMailboxState'>,
): Promise<{ id: string; notice?: string }> {
  const former = formerDefaultMailboxId(login.user, login.host, login.port);
  if (former === current) return { id: current };
  const [here, there] = await Promise.all([ledger.getMailboxState(current), ledger.getMailboxState(former)]);
  const choice = chooseDefaultId({ current, former }, { current: here.lastRun !== undefined, former: there.lastRun !== undefined });
  if (!choice.migrated) return { id: current };
  return {
    id: former,
    notice: `continuing mailbox id "${former}" (recorded by an earlier version, whose default id held the port; the default is now "${current}"): pass --id to choose`,
  };
}

/**
 * For the engine's `checkListing`: stops the run (CONFIG_INVALID, exit 2) when none of the
 * listed UIDLs is recorded under `id` but at least half are under another id of this folder.
 */
export function sameMailboxCheck(id: string, ledger: FileLedger, folder: string): (uidls: readonly string[]) => Promise<void> {
  return async (uidls) => {
    const here = await ledger.lookup(id, uidls);
    if (here.size > 0 || uidls.length === 0) return;
    const elsewhere: Array<{ id: string; recorded: number }> = [];
    for (const other of await ledger.mailboxIds()) {
      if (other !== id) elsewhere.push({ id: other, recorded: (await ledger.lookup(other, uidls)).size });
    }
    const verdict = identityVerdict({ listed: uidls.length, recordedHere: here.size, recordedElsewhere: elsewhere });
    if (verdict.kind === 'proceed') return;
    throw new DrainError(
      'CONFIG_INVALID',
      `${verdict.recorded} of the ${verdict.listed} messages on the server are recorded under mailbox id "${verdict.otherId}" in ${folder}: the same mailbox under another name? Nothing was fetched. Pass --id ${verdict.otherId} to continue it, or --new-mailbox to drain it again as "${id}"`,
      { phase: 'list', retryable: false },
    );
  };
}
