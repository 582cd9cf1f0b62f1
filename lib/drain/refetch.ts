/**
 * `--refetch`: a message the ledger holds as stored is retrieved again and written to the store
 * under its key as a new message would be. The store never replaces what it holds (create if
 * absent; the same bytes are `existed`, other bytes a STORE_CONFLICT), so what the store says,
 * with the sha256 the ledger recorded, tells whether the server still serves the bytes stored.
 * The verdict is a pure function; message-recorder.ts acts on it (announce again under the
 * entry's event id; delete per policy only when the bytes are those stored).
 */
import type { LedgerEntry } from './ports.js';

/** What the store did with the received bytes. */
export type RefetchStoreOutcome =
  /** It already held exactly these bytes. */
  | { kind: 'existed' }
  /** It held nothing under the key (the stored copy was removed): the bytes were written. */
  | { kind: 'written' }
  /** It holds other bytes under the key and kept them (STORE_CONFLICT); its message. */
  | { kind: 'conflict'; message: string };

/** A refetched message whose bytes are not those stored, as the report lists it. */
export interface RefetchDifference {
  uidl: string;
  /** sha256 and size the ledger recorded when the message was first stored (and announced). */
  storedSha256: string | undefined;
  storedSize: number;
  /** sha256 and size of the bytes received now. */
  receivedSha256: string;
  receivedSize: number;
  /**
   * The store's copy: `identical` to the received bytes, `written` (it was missing and now holds
   * the received bytes), or `differs` (kept as it was; `storeSays` tells what it holds).
   */
  storedCopy: 'identical' | 'written' | 'differs';
  storeSays?: string;
}

export interface RefetchSummary {
  /** Stored messages retrieved again and compared. */
  refetched: number;
  /** Received bytes identical to the stored copy and to the ledger's record. */
  same: number;
  /** The stored copy was missing and was written again with the bytes the ledger recorded. */
  restored: number;
  differences: RefetchDifference[];
}

export function newRefetchSummary(): RefetchSummary {
  return { refetched: 0, same: 0, restored: 0, differences: [] };
}

export type RefetchVerdict =
  | { kind: 'same' }
  | { kind: 'restored' }
  | { kind: 'differs'; difference: RefetchDifference };

/**
 * Same: the store held these bytes and the ledger recorded them. Restored: the store had lost
 * its copy and now holds the bytes the ledger recorded. Anything else differs: the server
 * serves other bytes than were stored, or the stored copy was changed. Only `same` and
 * `restored` prove the message on the server is the one stored (the delete rule's part (a)).
 */
export function refetchVerdict(entry: LedgerEntry, received: { sha256: string; size: number }, store: RefetchStoreOutcome): RefetchVerdict {
  const asRecorded = entry.sha256 === received.sha256 && entry.size === received.size;
  if (asRecorded && store.kind === 'existed') return { kind: 'same' };
  if (asRecorded && store.kind === 'written') return { kind: 'restored' };
  const difference: RefetchDifference = {
    uidl: entry.uidl,
    storedSha256: entry.sha256,
    storedSize: entry.size,
    receivedSha256: received.sha256,
    receivedSize: received.size,
    storedCopy: store.kind === 'existed' ? 'identical' : store.kind === 'written' ? 'written' : 'differs',
  };
  if (store.kind === 'conflict') difference.storeSays = store.message;
  return { kind: 'differs', difference };
}
