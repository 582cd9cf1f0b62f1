/**
 * The triage of a listed message by its ledger entry (UidlLedger.triage): a pure function of the
 * entry's status, announcement and age, the delete policy and the clock. It sorts the messages
 * the run leaves alone without looking at their entries (kept, imported) from those it may act
 * on (entry: re-announce, delete, verify); planRun gives the same verdicts for the same entries.
 */
import type { DeletePolicy } from './mailbox.js';
import { deleteAllowed } from './plan.js';
import { TRIAGE, type LedgerEntry, type TriageCode } from './ports.js';

/** The fields of an entry the triage reads. */
export type TriageFacts = Pick<LedgerEntry, 'status' | 'announcedAt' | 'firstSeenAt'>;

/** TRIAGE.unknown without an entry; otherwise kept, imported, or entry (the run needs it). */
export function triageCode(entry: TriageFacts | undefined, policy: DeletePolicy, now: number): TriageCode {
  if (entry === undefined) return TRIAGE.unknown;
  switch (entry.status) {
    case 'imported':
      return TRIAGE.imported;
    case 'skipped':
      // Never deleted; announced once, then left alone.
      return entry.announcedAt === undefined ? TRIAGE.entry : TRIAGE.kept;
    case 'announced':
      return deleteAllowed(entry, policy, now) ? TRIAGE.entry : TRIAGE.kept;
    default:
      // Stored and not announced (re-announced), or a status of a newer format.
      return TRIAGE.entry;
  }
}
