/**
 * What the ledger knows of the server's listing, as the run asks it: the triage
 * (UidlLedger.triage) where the ledger has one and the run does not refetch, so messages the run
 * leaves alone come as a code each, not as entries; otherwise `lookup` of every listed UIDL.
 */
import type { ServerMessage } from './plan.js';
import { TRIAGE, type LedgerEntry, type LookupOptions, type UidlLedger } from './ports.js';

export interface KnownListing {
  /** Entries of listed messages: all the ledger knows, or with a triage those coded TRIAGE.entry. */
  entries: Map<string, LedgerEntry>;
  /** The triage's codes, one per listed message in order (undefined: every known one is in `entries`). */
  triage: Uint8Array | undefined;
  /** How many listed messages the ledger knows. */
  count: number;
}

/**
 * Ask the ledger about `messages` (each UIDL once). With `options` (the policy and clock: not a
 * refetch), a ledger that triages answers without entries for the messages it settles.
 */
export async function lookupListing(
  ledger: UidlLedger,
  mailboxId: string,
  messages: readonly ServerMessage[],
  options: LookupOptions | undefined,
): Promise<KnownListing> {
  const uidls = messages.map((m) => m.uidl);
  if (options === undefined || ledger.triage === undefined) {
    const entries = await ledger.lookup(mailboxId, uidls, options);
    return { entries, triage: undefined, count: entries.size };
  }
  const { codes, entries } = await ledger.triage(mailboxId, uidls, options);
  let count = 0;
  for (let i = 0; i < codes.length; i++) if (codes[i] !== TRIAGE.unknown) count++;
  return { entries, triage: codes, count };
}

/** Whether listed message `i` (UIDL `uidl`) is known to the ledger. */
export function isKnownAt(known: KnownListing, i: number, uidl: string): boolean {
  return known.triage === undefined ? known.entries.has(uidl) : known.triage[i] !== TRIAGE.unknown;
}
