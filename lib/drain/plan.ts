/**
 * The engine's decisions, as pure functions of the facts: what to fetch, skip and delete, when
 * the UIDL-reset guard stops a run, and when a run stops taking new messages. No I/O, no
 * mutation of their arguments; drain-mailbox.ts and the message pipeline act on the verdicts.
 */
import type { DeletePolicy, UidlResetGuard } from './mailbox.js';
import { TRIAGE, type LedgerEntry, type MailboxState } from './ports.js';
import type { DrainFailure, StopReason } from './report.js';

export const DAY_MS = 86_400_000;

/** A message the server listed and the run can identify (its UIDL or a header digest). */
export interface ServerMessage {
  number: number;
  size: number;
  uidl: string;
  /** The id is a digest of the header block and size (a server without UIDL), not a UIDL. */
  byHeaderDigest?: boolean;
}

// -------------------------------------------------------------------------------------------
// The delete policy

/**
 * Whether the policy lets this entry's message go from the server once it is announced (a
 * caller that has not announced it yet asks before it does; it deletes only after). Skipped
 * messages (never stored) are never deleted.
 */
export function deleteAllowed(entry: Pick<LedgerEntry, 'status' | 'firstSeenAt'>, policy: DeletePolicy, now: number): boolean {
  if (entry.status !== 'stored' && entry.status !== 'announced') return false;
  if (policy.mode === 'delete') return true;
  if (policy.mode === 'keep-days') return entry.firstSeenAt + policy.days * DAY_MS <= now;
  return false;
}

/**
 * The delete rule, part (b): a listed message is the one the ledger entry describes, without
 * retrieving it, only when its UIDL (a real one, not a header digest) names a stored message
 * that was not deleted yet, and its LIST size is the size stored. Part (a), a message retrieved
 * in this session whose bytes are those stored under its key, is checked where the bytes flow.
 */
export function sameMessageUnseen(message: ServerMessage, entry: LedgerEntry): boolean {
  if (message.byHeaderDigest === true) return false;
  if (entry.status !== 'stored' && entry.status !== 'announced') return false;
  return entry.deletedAt === undefined && entry.size === message.size;
}

// -------------------------------------------------------------------------------------------
// What to do with each listed message

export interface PlanInput {
  messages: readonly ServerMessage[];
  /** The ledger's entries of the listed UIDLs (with `triage`: of those coded TRIAGE.entry). */
  known: ReadonlyMap<string, LedgerEntry>;
  /**
   * The ledger's triage of `messages` (UidlLedger.triage, one code each, in order): messages
   * coded kept or imported are planned without an entry. Not with `refetch`, which needs the
   * entries of stored messages.
   */
  triage?: Uint8Array;
  policy: DeletePolicy;
  /** Messages larger than this (LIST size) are skipped, not fetched. */
  maxMessageBytes: number | undefined;
  now: number;
  /**
   * `--refetch`: messages the ledger holds as stored are retrieved again and compared with the
   * stored copy (`refetch`), and imported ones are fetched as new. Skipped ones stay skipped.
   */
  refetch?: boolean;
}

export interface RunPlan {
  /** New messages to fetch, in server order. */
  fetch: ServerMessage[];
  /** New messages over the size cap: recorded and announced as skipped, never fetched. */
  skip: ServerMessage[];
  /** Known entries whose event has not gone out (stored, or skipped and unannounced). */
  reannounce: LedgerEntry[];
  /** Known, announced messages the policy lets go now, known by UIDL and size: deleted unseen. */
  deleteKnown: ServerMessage[];
  /**
   * Known, announced messages the policy lets go now whose identity UIDL and size do not
   * establish (a header digest, a size that differs, an entry already deleted): retrieved and
   * deleted only when their bytes are those stored.
   */
  verify: Array<{ message: ServerMessage; entry: LedgerEntry }>;
  /** Known messages the run leaves on the server (announced, kept by the policy). */
  keep: ServerMessage[];
  /**
   * Known only from an imported seen-list: left on the server, never fetched and never deleted
   * (no copy of them was stored by popdrain). Under `refetch` they are in `fetch` instead.
   */
  imported: ServerMessage[];
  /**
   * Under `refetch`: stored messages retrieved again (they are in `fetch` too, in server order),
   * compared with the stored copy and announced again under their event's id.
   */
  refetch: Array<{ message: ServerMessage; entry: LedgerEntry }>;
  /** How many listed messages the ledger knew before the run. */
  alreadyKnown: number;
  toFetchBytes: number;
}

export function planRun(input: PlanInput): RunPlan {
  const plan: RunPlan = { fetch: [], skip: [], reannounce: [], deleteKnown: [], verify: [], keep: [], imported: [], refetch: [], alreadyKnown: 0, toFetchBytes: 0 };
  const cap = input.maxMessageBytes;
  const fetch = (m: ServerMessage): void => {
    plan.fetch.push(m);
    plan.toFetchBytes += m.size;
  };
  const triage = input.triage;
  if (triage !== undefined && input.refetch === true) throw new Error('planRun: a refetch plans from whole entries, not from a triage');
  for (let i = 0; i < input.messages.length; i++) {
    const m = input.messages[i]!;
    if (triage !== undefined) {
      const code = triage[i];
      if (code === TRIAGE.kept || code === TRIAGE.imported) {
        plan.alreadyKnown += 1;
        (code === TRIAGE.kept ? plan.keep : plan.imported).push(m);
        continue;
      }
    }
    const entry = input.known.get(m.uidl);
    if (entry !== undefined && entry.status === 'imported' && input.refetch === true) {
      // Never stored by popdrain: fetched as new (the size cap still applies).
      if (cap !== undefined && m.size > cap) plan.skip.push(m);
      else fetch(m);
      continue;
    }
    if (entry !== undefined) {
      plan.alreadyKnown += 1;
      if (entry.status === 'imported') plan.imported.push(m);
      else if (input.refetch === true && (entry.status === 'stored' || entry.status === 'announced') && !(cap !== undefined && m.size > cap)) {
        plan.refetch.push({ message: m, entry });
        fetch(m);
      } else if (entry.status === 'stored' || (entry.status === 'skipped' && entry.announcedAt === undefined)) plan.reannounce.push(entry);
      else if (!deleteAllowed(entry, input.policy, input.now)) plan.keep.push(m);
      else if (sameMessageUnseen(m, entry)) plan.deleteKnown.push(m);
      else plan.verify.push({ message: m, entry });
      continue;
    }
    if (cap !== undefined && m.size > cap) plan.skip.push(m);
    else fetch(m);
  }
  return plan;
}

// -------------------------------------------------------------------------------------------
// The UIDL-reset guard

export type UidlResetVerdict =
  /** Nothing suspicious (or the guard is off): go on. */
  | { kind: 'proceed' }
  /** Suspicious, but an operator accepted the reset: clear the flags and go on. */
  | { kind: 'accepted'; recognized: number; unknown: number; previouslyKnown: number | undefined }
  /** Suspicious: stop before fetching anything; note the trip unless it is already noted. */
  | { kind: 'stop'; recognized: number; unknown: number; previouslyKnown: number | undefined; alreadyTripped: boolean };

export interface UidlResetInput {
  guard: UidlResetGuard;
  state: MailboxState | undefined;
  messages: readonly ServerMessage[];
  known: ReadonlyMap<string, LedgerEntry>;
  /** How many of `messages` the ledger knows, when `known` holds only some of their entries (a triage). */
  recognized?: number;
}

/**
 * Most messages the last run knew have vanished and unknown ones appeared: the server probably
 * renumbered its UIDLs, and fetching would store the whole mailbox again. Once tripped, the
 * guard stays tripped until an operator accepts the reset.
 */
export function uidlResetVerdict(input: UidlResetInput): UidlResetVerdict {
  const { guard, state, messages, known } = input;
  if (!guard.enabled) return { kind: 'proceed' };
  const last = state?.lastRun;
  const recognized = input.recognized ?? messages.filter((m) => known.has(m.uidl)).length;
  const unknown = messages.length - recognized;
  const alreadyTripped = state?.uidlResetTrippedAt !== undefined;
  const suspicious =
    alreadyTripped ||
    (last !== undefined &&
      last.knownOnServer >= guard.minKnown &&
      recognized < last.knownOnServer * guard.minRecognizedFraction &&
      unknown > messages.length / 2);
  if (!suspicious) return { kind: 'proceed' };
  const previouslyKnown = last?.knownOnServer;
  if (state?.acceptUidlReset === true) return { kind: 'accepted', recognized, unknown, previouslyKnown };
  return { kind: 'stop', recognized, unknown, previouslyKnown, alreadyTripped };
}

// -------------------------------------------------------------------------------------------
// A lost ledger

/**
 * The ledger knows nothing of a mailbox (no state of an earlier run, not even a first run's
 * start, no entry for any listed message) while the store holds its messages: the ledger was
 * lost (deleted, emptied, unreadable), not a first run. Messages the store already holds are
 * then not announced again. A first run killed after storing but before its first record left
 * `firstRunStartedAt`: what it stored is recorded and announced by the next run.
 */
export function ledgerLost(facts: { state: MailboxState | undefined; listed: number; known: number; storeHolds: boolean }): boolean {
  return facts.state?.lastRun === undefined && facts.state?.firstRunStartedAt === undefined && facts.listed > 0 && facts.known === 0 && facts.storeHolds;
}

/** Whether a run must mark its start before it fetches: a first run (no run ended, no start marked) with something to fetch. */
export function marksFirstRun(facts: { state: MailboxState | undefined; ledgerLost: boolean; toFetch: number }): boolean {
  return facts.state?.lastRun === undefined && facts.state?.firstRunStartedAt === undefined && !facts.ledgerLost && facts.toFetch > 0;
}

/**
 * Whether to ask the store to get ready for many messages (MessageStore.warmUp) as soon as the
 * state is loaded: on a mailbox never drained to the end (no `lastRun`: a first run, or a first
 * run resumed after a crash), not on a rerun, which may store nothing, and never on a dry run.
 */
export function warmsStore(facts: { state: MailboxState; dryRun: boolean }): boolean {
  return !facts.dryRun && facts.state.lastRun === undefined;
}

// -------------------------------------------------------------------------------------------
// When to stop taking new messages

/** The run's limits, from the caller's budget and the mailbox's configuration. */
export interface RunLimits {
  /** Epoch ms: no new message is started after this. */
  deadline: number | undefined;
  maxMessages: number;
  maxBytes: number;
}

export function runLimits(
  budget: { deadline?: number | undefined; maxMessages?: number | undefined; maxBytes?: number | undefined },
  mailbox: { maxMessagesPerRun?: number | undefined; maxBytesPerRun?: number | undefined },
): RunLimits {
  return {
    deadline: budget.deadline,
    maxMessages: Math.min(budget.maxMessages ?? Infinity, mailbox.maxMessagesPerRun ?? Infinity),
    maxBytes: Math.min(budget.maxBytes ?? Infinity, mailbox.maxBytesPerRun ?? Infinity),
  };
}

/**
 * After the deadline, how long the run has to end its session: the messages in flight stop,
 * QUIT is sent, and if its answer has not come by then the connection is closed (deletions not
 * committed stay on the server and are settled by the next run).
 */
export const QUIT_GRACE_MS = 2_000;

/**
 * The hard bound on the whole session: the caller's, or the deadline plus QUIT_GRACE_MS.
 * Undefined when the run has no deadline.
 */
export function hardDeadlineOf(budget: { deadline?: number | undefined; hardDeadline?: number | undefined }): number | undefined {
  if (budget.hardDeadline !== undefined) return budget.hardDeadline;
  return budget.deadline === undefined ? undefined : budget.deadline + QUIT_GRACE_MS;
}

export interface StopFacts {
  /** The graceful-stop signal fired. */
  cancelled: boolean;
  leaseLost: boolean;
  now: number;
  fetched: number;
  fetchedBytes: number;
  /** LIST size of the message that would start next. */
  nextSize: number;
}

/** Why the run must not start the next message, or undefined when it may. */
export function stopBeforeNext(facts: StopFacts, limits: RunLimits): StopReason | undefined {
  if (facts.cancelled) return 'cancelled';
  if (facts.leaseLost) return 'lease-lost';
  if (limits.deadline !== undefined && facts.now >= limits.deadline) return 'deadline';
  if (facts.fetched >= limits.maxMessages) return 'max-messages';
  // The first message always goes, so a message larger than the per-run byte budget (but
  // under the size cap) is not stuck forever.
  if (facts.fetched > 0 && facts.fetchedBytes + facts.nextSize > limits.maxBytes) return 'max-bytes';
  return undefined;
}

export interface RequestFacts {
  cancelled: boolean;
  leaseLost: boolean;
  now: number;
  /** Messages requested (RETR sent) so far in this run, and their listed bytes. */
  requested: number;
  requestedBytes: number;
  /** Listed bytes requested and not yet received. */
  bytesInFlight: number;
  /** Bytes per ms measured so far in this run (undefined until a message has arrived). */
  bytesPerMs: number | undefined;
  /** LIST size of the message that would be requested next. */
  nextSize: number;
}

/**
 * Why the next message must not be requested (its RETR not sent), or undefined when it may:
 * the budgets decide what crosses the wire, not only what is stored. The first message always
 * goes (as in stopBeforeNext); after the deadline nothing is requested, nor when what is in
 * flight plus this message could not arrive by then at the rate measured so far.
 */
export function admitRequest(facts: RequestFacts, limits: RunLimits): StopReason | undefined {
  if (facts.cancelled) return 'cancelled';
  if (facts.leaseLost) return 'lease-lost';
  if (limits.deadline !== undefined) {
    if (facts.now >= limits.deadline) return 'deadline';
    const rate = facts.bytesPerMs;
    if (rate !== undefined && rate > 0 && (facts.bytesInFlight + facts.nextSize) / rate > limits.deadline - facts.now) return 'deadline';
  }
  if (facts.requested >= limits.maxMessages) return 'max-messages';
  if (facts.requested > 0 && facts.requestedBytes + facts.nextSize > limits.maxBytes) return 'max-bytes';
  return undefined;
}

/**
 * When the run stops with responses still in flight: 'quit' when the bytes still to come can
 * arrive before the hard deadline at the measured rate (so QUIT can be answered and commit the
 * deletions), else 'close' at once (cut off: those messages stay on the server, deletions not
 * committed are settled by the next run).
 */
export function endOfSessionVerdict(facts: { now: number; hardDeadline: number | undefined; bytesInFlight: number; bytesPerMs: number | undefined }): 'quit' | 'close' {
  if (facts.bytesInFlight <= 0 || facts.hardDeadline === undefined) return 'quit';
  const rate = facts.bytesPerMs;
  if (rate === undefined || rate <= 0) return 'close';
  return facts.bytesInFlight / rate < facts.hardDeadline - facts.now ? 'quit' : 'close';
}

/** After this many consecutive store or ledger failures the run stops: the backend is down. */
export const MAX_CONSECUTIVE_FAILURES = 3;

/** The stop when the store or the ledger keeps failing, named after the last failure. */
export function backendDownStop(consecutiveFailures: number, lastFailure: DrainFailure | undefined): StopReason | undefined {
  if (consecutiveFailures < MAX_CONSECUTIVE_FAILURES) return undefined;
  return lastFailure?.code === 'LEDGER_FAILED' ? 'ledger-failed' : 'store-failed';
}
