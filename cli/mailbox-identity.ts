/**
 * Which mailbox id a run without `--id` uses, and whether a run's listing says the mailbox is
 * already drained under another id. The default id comes from the user and the host only: the
 * same mailbox reached over pop3s:// or pop3:// (STLS), or on another port, is one mailbox.
 * Host aliases (127.0.0.1 and localhost, a CNAME) cannot be recognized from the URL; the listing
 * can: when at least half of the listed UIDLs are recorded under another id in the same state
 * folder, the run stops before fetching and names that id. Pure decisions; the CLI does the I/O.
 */
import { createHash } from 'node:crypto';
import { deriveMailboxId } from '../lib/drain/keys.js';

/** The default id: readable (user and host) with a short digest so distinct logins never share one. */
export function defaultMailboxId(user: string, host: string): string {
  const readable = `${user}@${host}`
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '_')
    .replace(/\.{2,}/g, '.')
    .replace(/^[^a-z0-9]+/, '')
    .slice(0, 100);
  const tag = createHash('sha256').update(`popdrain/mailbox-id/v2\0${user}\0${host.toLowerCase()}`).digest('hex').slice(0, 8);
  return `${readable || 'mailbox'}-${tag}`;
}

/** The default id before version 2 of the id: it also held the port (lib/drain/keys.ts). */
export function formerDefaultMailboxId(user: string, host: string, port: number): string {
  return deriveMailboxId(user, host, port);
}

/**
 * The id to use without `--id`: the default, unless only the former default (with the port)
 * has runs recorded in this state folder; then that one, so an existing state folder is
 * continued rather than drained again (`migrated` says so).
 */
export function chooseDefaultId(ids: { current: string; former: string }, hasRuns: { current: boolean; former: boolean }): { id: string; migrated: boolean } {
  if (!hasRuns.current && hasRuns.former && ids.former !== ids.current) return { id: ids.former, migrated: true };
  return { id: ids.current, migrated: false };
}

export type IdentityVerdict = { kind: 'proceed' } | { kind: 'stop'; otherId: string; recorded: number; listed: number };

/** At least this share of the listed UIDLs recorded under another id: the same mailbox. */
export const SAME_MAILBOX_MIN_SHARE = 0.5;

/**
 * Whether a run under a default id that is new to this state folder (none of the listed UIDLs
 * recorded under it) is draining a mailbox already drained under another id.
 */
export function identityVerdict(facts: { listed: number; recordedHere: number; recordedElsewhere: ReadonlyArray<{ id: string; recorded: number }> }): IdentityVerdict {
  if (facts.listed === 0 || facts.recordedHere > 0) return { kind: 'proceed' };
  let best: { id: string; recorded: number } | undefined;
  for (const other of facts.recordedElsewhere) if (best === undefined || other.recorded > best.recorded) best = other;
  if (best === undefined || best.recorded < facts.listed * SAME_MAILBOX_MIN_SHARE) return { kind: 'proceed' };
  return { kind: 'stop', otherId: best.id, recorded: best.recorded, listed: facts.listed };
}
