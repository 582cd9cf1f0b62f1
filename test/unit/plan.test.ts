/**
 * The engine's decisions, as pure functions: what to fetch, skip and delete under each delete
 * policy, the UIDL-reset guard, the stop before the next message, the listing's identification
 * (odd and duplicate UIDLs, header digests), what an error means for the run, and the report.
 */
import { describe, expect, it } from 'vitest';
import { DrainError } from '../../lib/drain/errors.js';
import { failureOf, runStopFor, StopRun } from '../../lib/drain/failures.js';
import { headerDigestUidls, identifyListing, leaveSharedUidlsAlone, leftAloneFailure } from '../../lib/drain/listing.js';
import { DEFAULT_UIDL_RESET_GUARD, type DeletePolicy } from '../../lib/drain/mailbox.js';
import {
  backendDownStop,
  DAY_MS,
  deleteAllowed,
  planRun,
  runLimits,
  sameMessageUnseen,
  stopBeforeNext,
  uidlResetVerdict,
  type ServerMessage,
  type StopFacts,
} from '../../lib/drain/plan.js';
import type { LedgerEntry, LedgerStatus, MailboxState } from '../../lib/drain/ports.js';
import { backlogSinceAfter, buildReport, runSummaryOf, stateUpdateAfterRun, type RunEnd } from '../../lib/drain/run-report.js';
import { newCounters } from '../../lib/drain/run-context.js';
import { retrFailureVerdict } from '../../lib/drain/unreadable.js';
import { Pop3Error } from '../../lib/pop3/index.js';

const NOW = Date.parse('2026-03-01T12:00:00Z');
const KEEP: DeletePolicy = { mode: 'keep' };
const DELETE: DeletePolicy = { mode: 'delete' };
const KEEP_7_DAYS: DeletePolicy = { mode: 'keep-days', days: 7 };

function msg(number: number, uidl = `u${number}`, size = 100): ServerMessage {
  return { number, uidl, size };
}

function entry(uidl: string, status: LedgerStatus, extra: Partial<LedgerEntry> = {}): LedgerEntry {
  return {
    mailboxId: 'mb',
    uidl,
    status,
    size: 100,
    firstSeenAt: NOW - DAY_MS,
    event: { id: `e-${uidl}`, detailType: 'Email Skipped', time: '', detail: {} as never },
    ...extra,
  };
}

describe('deleteAllowed: the delete policy', () => {
  it('keep never deletes', () => {
    expect(deleteAllowed(entry('a', 'announced'), KEEP, NOW)).toBe(false);
    expect(deleteAllowed(entry('a', 'stored'), KEEP, NOW)).toBe(false);
  });

  it('delete lets stored and announced messages go, never skipped ones', () => {
    expect(deleteAllowed(entry('a', 'announced'), DELETE, NOW)).toBe(true);
    expect(deleteAllowed(entry('a', 'stored'), DELETE, NOW)).toBe(true);
    expect(deleteAllowed(entry('a', 'skipped', { announcedAt: NOW }), DELETE, NOW)).toBe(false);
  });

  it('keep-days lets a message go once it was first seen that many days ago, to the millisecond', () => {
    const firstSeenAt = NOW - 7 * DAY_MS;
    expect(deleteAllowed(entry('a', 'announced', { firstSeenAt }), KEEP_7_DAYS, NOW)).toBe(true);
    expect(deleteAllowed(entry('a', 'announced', { firstSeenAt: firstSeenAt + 1 }), KEEP_7_DAYS, NOW)).toBe(false);
    expect(deleteAllowed(entry('a', 'skipped', { firstSeenAt: 0 }), KEEP_7_DAYS, NOW)).toBe(false);
  });
});

describe('planRun: what to do with each listed message', () => {
  const base = { policy: DELETE, maxMessageBytes: undefined, now: NOW };

  it('fetches new messages in server order and counts their bytes', () => {
    const plan = planRun({ ...base, messages: [msg(1, 'a', 10), msg(2, 'b', 20), msg(3, 'c', 30)], known: new Map() });
    expect(plan.fetch.map((m) => m.uidl)).toEqual(['a', 'b', 'c']);
    expect(plan).toMatchObject({ toFetchBytes: 60, alreadyKnown: 0, skip: [], reannounce: [], deleteKnown: [], keep: [] });
  });

  it('skips new messages over the size cap (a message at the cap is fetched)', () => {
    const plan = planRun({ ...base, maxMessageBytes: 100, messages: [msg(1, 'a', 100), msg(2, 'b', 101)], known: new Map() });
    expect(plan.fetch.map((m) => m.uidl)).toEqual(['a']);
    expect(plan.skip.map((m) => m.uidl)).toEqual(['b']);
    expect(plan.toFetchBytes).toBe(100);
  });

  it('re-announces known entries whose event did not go out, and never fetches a known message', () => {
    const known = new Map([
      ['a', entry('a', 'stored')],
      ['b', entry('b', 'skipped')],
      ['c', entry('c', 'skipped', { announcedAt: NOW })],
    ]);
    const plan = planRun({ ...base, messages: [msg(1, 'a'), msg(2, 'b'), msg(3, 'c', 10_000)], known, maxMessageBytes: 50 });
    expect(plan.reannounce.map((e) => e.uidl)).toEqual(['a', 'b']);
    expect(plan.keep.map((m) => m.uidl)).toEqual(['c']);
    expect(plan).toMatchObject({ fetch: [], skip: [], deleteKnown: [], alreadyKnown: 3 });
  });

  it.each([
    ['keep', KEEP, [], ['old', 'young']],
    ['delete', DELETE, ['old', 'young'], []],
    ['keep-days', KEEP_7_DAYS, ['old'], ['young']],
  ] as const)('deletes announced messages unseen under %s as the policy says', (_name, policy, deleted, kept) => {
    const known = new Map([
      ['old', entry('old', 'announced', { firstSeenAt: NOW - 30 * DAY_MS })],
      ['young', entry('young', 'announced', { firstSeenAt: NOW - DAY_MS })],
    ]);
    const plan = planRun({ ...base, policy, messages: [msg(1, 'old'), msg(2, 'young'), msg(3, 'new')], known });
    expect(plan.deleteKnown.map((m) => m.uidl)).toEqual(deleted);
    expect(plan.keep.map((m) => m.uidl)).toEqual(kept);
    expect(plan.fetch.map((m) => m.uidl)).toEqual(['new']);
    expect(plan.alreadyKnown).toBe(2);
  });

  it('deletes unseen only by UIDL and size; a header digest, another size or a deleted entry is verified first', () => {
    const announced = (uidl: string, extra: Partial<LedgerEntry> = {}) => entry(uidl, 'announced', { size: 100, sha256: 'ab', ...extra });
    const known = new Map([
      ['same', announced('same')],
      ['resized', announced('resized')],
      ['gone', announced('gone', { deletedAt: NOW - 1 })],
      ['~hdr-x-100', announced('~hdr-x-100')],
    ]);
    const messages = [msg(1, 'same'), msg(2, 'resized', 101), msg(3, 'gone'), { ...msg(4, '~hdr-x-100'), byHeaderDigest: true }];
    const plan = planRun({ ...base, messages, known });
    expect(plan.deleteKnown.map((m) => m.uidl)).toEqual(['same']);
    expect(plan.verify.map((v) => [v.message.uidl, v.entry.uidl])).toEqual([
      ['resized', 'resized'],
      ['gone', 'gone'],
      ['~hdr-x-100', '~hdr-x-100'],
    ]);
    // Under keep nothing is verified: nothing would be deleted.
    expect(planRun({ ...base, policy: KEEP, messages, known }).verify).toEqual([]);
  });

  it('sameMessageUnseen: rule (b) of the delete rule', () => {
    expect(sameMessageUnseen(msg(1, 'a', 100), entry('a', 'announced', { size: 100 }))).toBe(true);
    expect(sameMessageUnseen(msg(1, 'a', 100), entry('a', 'stored', { size: 100 }))).toBe(true);
    expect(sameMessageUnseen(msg(1, 'a', 101), entry('a', 'announced', { size: 100 }))).toBe(false);
    expect(sameMessageUnseen(msg(1, 'a', 100), entry('a', 'skipped', { size: 100 }))).toBe(false);
    expect(sameMessageUnseen(msg(1, 'a', 100), entry('a', 'announced', { size: 100, deletedAt: NOW }))).toBe(false);
    expect(sameMessageUnseen({ ...msg(1, 'a', 100), byHeaderDigest: true }, entry('a', 'announced', { size: 100 }))).toBe(false);
  });

  it('changes nothing it is given', () => {
    const messages = [msg(1, 'a')];
    const known = new Map([['a', entry('a', 'stored')]]);
    const before = structuredClone({ messages, known });
    planRun({ ...base, messages, known });
    expect({ messages, known }).toEqual(before);
  });
});

describe('uidlResetVerdict: the UIDL-reset guard', () => {
  const guard = DEFAULT_UIDL_RESET_GUARD; // minKnown 50, fraction 0.2
  const lastRun = (knownOnServer: number): MailboxState['lastRun'] => ({
    runId: 'r',
    startedAt: 0,
    finishedAt: 0,
    stopReason: 'complete',
    moreRemaining: false,
    fetched: 0,
    fetchedBytes: 0,
    skipped: 0,
    deleted: 0,
    failures: 0,
    knownOnServer,
    serverMessages: knownOnServer,
    pendingAnnouncements: 0,
  });
  /** `total` listed messages of which the first `recognized` are known. */
  function listing(total: number, recognized: number): { messages: ServerMessage[]; known: Map<string, LedgerEntry> } {
    const messages = Array.from({ length: total }, (_, i) => msg(i + 1, `u${i}`));
    return { messages, known: new Map(messages.slice(0, recognized).map((m) => [m.uidl, entry(m.uidl, 'announced')])) };
  }

  it('stops when most known messages vanished and unknown ones are the majority', () => {
    const verdict = uidlResetVerdict({ guard, state: { mailboxId: 'mb', lastRun: lastRun(60) }, ...listing(60, 11) });
    expect(verdict).toEqual({ kind: 'stop', recognized: 11, unknown: 49, previouslyKnown: 60, alreadyTripped: false });
  });

  it('proceeds at the recognized fraction, with unknown ones not a majority, or below minKnown', () => {
    expect(uidlResetVerdict({ guard, state: { mailboxId: 'mb', lastRun: lastRun(60) }, ...listing(60, 12) }).kind).toBe('proceed');
    // 10 of 60 recognized, but only 20 listed: the 10 unknown are not more than half.
    expect(uidlResetVerdict({ guard, state: { mailboxId: 'mb', lastRun: lastRun(60) }, ...listing(20, 10) }).kind).toBe('proceed');
    expect(uidlResetVerdict({ guard, state: { mailboxId: 'mb', lastRun: lastRun(49) }, ...listing(60, 0) }).kind).toBe('proceed');
    expect(uidlResetVerdict({ guard, state: { mailboxId: 'mb' }, ...listing(60, 0) }).kind).toBe('proceed');
    expect(uidlResetVerdict({ guard, state: undefined, ...listing(60, 0) }).kind).toBe('proceed');
  });

  it('does nothing when disabled', () => {
    const verdict = uidlResetVerdict({ guard: { ...guard, enabled: false }, state: { mailboxId: 'mb', lastRun: lastRun(60), uidlResetTrippedAt: 1 }, ...listing(60, 0) });
    expect(verdict).toEqual({ kind: 'proceed' });
  });

  it('stays tripped, however the listing looks, until an operator accepts the reset', () => {
    const tripped: MailboxState = { mailboxId: 'mb', lastRun: lastRun(60), uidlResetTrippedAt: 1 };
    expect(uidlResetVerdict({ guard, state: tripped, ...listing(60, 60) })).toMatchObject({ kind: 'stop', alreadyTripped: true });
    expect(uidlResetVerdict({ guard, state: { ...tripped, acceptUidlReset: true }, ...listing(60, 0) })).toEqual({
      kind: 'accepted',
      recognized: 0,
      unknown: 60,
      previouslyKnown: 60,
    });
  });
});

describe('stopBeforeNext: when the run takes no new message', () => {
  const go: StopFacts = { cancelled: false, leaseLost: false, now: NOW, fetched: 0, fetchedBytes: 0, nextSize: 100 };
  const none = runLimits({}, {});

  it('goes on without limits', () => {
    expect(stopBeforeNext({ ...go, fetched: 1e6, fetchedBytes: 1e12 }, none)).toBeUndefined();
  });

  it('cancellation first, then a lost lease, then the deadline (reached at its millisecond)', () => {
    const limits = runLimits({ deadline: NOW }, {});
    expect(stopBeforeNext({ ...go, cancelled: true, leaseLost: true }, limits)).toBe('cancelled');
    expect(stopBeforeNext({ ...go, leaseLost: true }, limits)).toBe('lease-lost');
    expect(stopBeforeNext(go, limits)).toBe('deadline');
    expect(stopBeforeNext({ ...go, now: NOW - 1 }, limits)).toBeUndefined();
  });

  it('max-messages: the smaller of the budget and the mailbox limit', () => {
    expect(runLimits({ maxMessages: 5 }, { maxMessagesPerRun: 3 }).maxMessages).toBe(3);
    expect(runLimits({ maxMessages: 2 }, { maxMessagesPerRun: 3 }).maxMessages).toBe(2);
    const limits = runLimits({}, { maxMessagesPerRun: 3 });
    expect(stopBeforeNext({ ...go, fetched: 2 }, limits)).toBeUndefined();
    expect(stopBeforeNext({ ...go, fetched: 3 }, limits)).toBe('max-messages');
  });

  it('max-bytes: the next message must fit, but the first one always goes', () => {
    const limits = runLimits({ maxBytes: 1000 }, { maxBytesPerRun: 500 });
    expect(limits.maxBytes).toBe(500);
    expect(stopBeforeNext({ ...go, nextSize: 10_000 }, limits)).toBeUndefined();
    expect(stopBeforeNext({ ...go, fetched: 1, fetchedBytes: 400, nextSize: 100 }, limits)).toBeUndefined();
    expect(stopBeforeNext({ ...go, fetched: 1, fetchedBytes: 400, nextSize: 101 }, limits)).toBe('max-bytes');
  });

  it('the backend is down after three failures in a row, named after the last', () => {
    const ledgerDown = failureOf(new DrainError('LEDGER_FAILED', 'x', { phase: 'ledger', retryable: true }), 'ledger');
    const storeDown = failureOf(new DrainError('STORE_FAILED', 'x', { phase: 'store', retryable: true }), 'store');
    expect(backendDownStop(2, ledgerDown)).toBeUndefined();
    expect(backendDownStop(3, ledgerDown)).toBe('ledger-failed');
    expect(backendDownStop(3, storeDown)).toBe('store-failed');
  });
});

describe('the listing: odd and duplicate UIDLs, header digests', () => {
  it('pairs LIST with UIDL and leaves a message without a UIDL alone', () => {
    const out = identifyListing(
      [
        { number: 1, size: 10 },
        { number: 2, size: 20 },
      ],
      [{ number: 1, uid: 'a' }],
    );
    expect(out.messages).toEqual([msg(1, 'a', 10)]);
    expect(out.leftAlone).toEqual([{ number: 2, uidl: undefined, reason: 'server listed message 2 without a UIDL' }]);
    expect(leftAloneFailure(out.leftAlone[0]!)).toEqual({
      code: 'PROTOCOL_ERROR',
      phase: 'list',
      message: 'server listed message 2 without a UIDL; left on the server',
      retryable: false,
    });
    expect('uidl' in leftAloneFailure(out.leftAlone[0]!)).toBe(false);
  });

  it('leaves every message of a shared UIDL alone, and drains the rest', () => {
    const out = leaveSharedUidlsAlone([msg(1, 'x'), msg(2, 'a'), msg(3, 'x')]);
    expect(out.messages).toEqual([msg(2, 'a')]);
    expect(out.leftAlone.map((l) => [l.number, l.uidl])).toEqual([
      [1, 'x'],
      [3, 'x'],
    ]);
    expect(leftAloneFailure(out.leftAlone[0]!)).toMatchObject({ uidl: 'x', message: 'server reported the UIDL "x" for 2 messages; left on the server' });
  });

  it('header digests: digest prefix and size, identical ones told apart by order', () => {
    const d = 'ab'.repeat(32);
    const ids = headerDigestUidls([
      { number: 1, size: 10, sha256Hex: d },
      { number: 2, size: 11, sha256Hex: d },
      { number: 3, size: 10, sha256Hex: d },
      { number: 4, size: 10, sha256Hex: 'cd'.repeat(32) },
    ]);
    const base = `~hdr-${d.slice(0, 40)}`;
    expect(ids.map((m) => m.uidl)).toEqual([`${base}-10`, `${base}-11`, `${base}-10-2`, `~hdr-${'cd'.repeat(20)}-10`]);
    expect(ids.every((m) => m.byHeaderDigest === true)).toBe(true);
    expect(ids.map((m) => [m.number, m.size])).toEqual([
      [1, 10],
      [2, 11],
      [3, 10],
      [4, 10],
    ]);
  });
});

describe('retrFailureVerdict: a refused RETR', () => {
  const m = msg(2, 'u2');
  const refused = (code: ConstructorParameters<typeof Pop3Error>[0]) =>
    new Pop3Error(code, `RETR 2 failed in transaction: -ERR x`, { phase: 'transaction', command: 'RETR 2', serverText: 'x' });
  it('[SYS/PERM] is unreadable for good, a plain -ERR passes for this run, the rest stops; each names the UIDL', () => {
    expect(retrFailureVerdict(refused('SYS_PERM'), m, true)).toMatchObject({ kind: 'unreadable', failure: { uidl: 'u2', code: 'SYS_PERM' } });
    expect(retrFailureVerdict(refused('COMMAND_FAILED'), m, true)).toMatchObject({ kind: 'pass', failure: { uidl: 'u2' } });
    expect(retrFailureVerdict(refused('SYS_TEMP'), m, true)).toMatchObject({ kind: 'stop', failure: { uidl: 'u2' } });
    expect(retrFailureVerdict(refused('SYS_PERM'), m, false).kind).toBe('stop');
    expect(retrFailureVerdict(new Error('defect'), m, true).kind).toBe('stop');
  });
});

describe('what an error means for the run', () => {
  it('maps POP3 codes to stop reasons; an abort nobody asked for is the hard deadline', () => {
    const pop3 = (code: ConstructorParameters<typeof Pop3Error>[0]) => new Pop3Error(code, code, { phase: 'transaction' });
    expect(runStopFor(pop3('AUTH_FAILED'), false, 'connect').reason).toBe('auth-failed');
    expect(runStopFor(pop3('IN_USE'), false, 'fetch').reason).toBe('in-use');
    expect(runStopFor(pop3('BODY_TIMEOUT'), false, 'fetch').reason).toBe('connection-lost');
    expect(runStopFor(pop3('LIMIT_EXCEEDED'), false, 'fetch').reason).toBe('protocol-error');
    expect(runStopFor(pop3('ABORTED'), true, 'fetch').reason).toBe('cancelled');
    expect(runStopFor(pop3('ABORTED'), false, 'fetch').reason).toBe('deadline');
    expect(runStopFor(pop3('SYS_TEMP'), false, 'fetch').failure).toEqual({ code: 'SYS_TEMP', phase: 'transaction', message: 'SYS_TEMP', retryable: true });
  });

  it('maps drain codes; StopRun carries its own reason and failure', () => {
    const drain = new DrainError('CREDENTIALS_FAILED', 'no secret', { phase: 'credentials', retryable: false });
    expect(runStopFor(drain, false, 'fetch')).toEqual({
      reason: 'credentials-failed',
      failure: { code: 'CREDENTIALS_FAILED', phase: 'credentials', message: 'no secret', retryable: false },
    });
    expect(runStopFor(new StopRun('store-failed'), false, 'fetch')).toEqual({ reason: 'store-failed', failure: undefined });
    expect(runStopFor(new TypeError('bug'), false, 'fetch').reason).toBe('error');
  });

  it('a failure names its UIDL only when it has one', () => {
    const drain = new DrainError('STORE_FAILED', 'disk full', { phase: 'store', retryable: true });
    expect(failureOf(drain, 'fetch', 'u1')).toEqual({ uidl: 'u1', code: 'STORE_FAILED', phase: 'store', message: 'disk full', retryable: true });
    expect('uidl' in failureOf(drain, 'fetch')).toBe(false);
  });

  it('an exception that is not a typed error is an INTERNAL_ERROR of the phase that met it', () => {
    expect(failureOf(new TypeError('x is undefined'), 'ledger', 'u1')).toEqual({
      uidl: 'u1',
      code: 'INTERNAL_ERROR',
      phase: 'ledger',
      message: 'x is undefined',
      retryable: false,
    });
    expect(runStopFor('a string', false, 'list')).toEqual({
      reason: 'error',
      failure: { code: 'INTERNAL_ERROR', phase: 'list', message: 'a string', retryable: false },
    });
  });
});

describe('the run report', () => {
  function end(over: Partial<RunEnd> = {}): RunEnd {
    const counters = newCounters();
    counters.serverMessages = [msg(1, 'a', 10), msg(2, 'b', 20)];
    counters.knownAfterRun = new Set(['a']);
    return {
      mailboxId: 'mb',
      runId: 'run',
      startedAt: NOW,
      finishedAt: NOW + 2500,
      stopReason: 'complete',
      runError: undefined,
      counters,
      failures: [],
      state: { mailboxId: 'mb', lastRun: { knownOnServer: 40 } as never },
      plan: undefined,
      ...over,
    };
  }

  it('a complete run with no failures is ok, clears the backlog and counts as a success', () => {
    const e = end();
    const report = buildReport(e);
    expect(report).toMatchObject({ ok: true, serverMessages: 2, serverBytes: 30, durationMs: 2500, moreRemaining: false, backlogAgeSeconds: 0 });
    expect('error' in report || 'plan' in report).toBe(false);
    expect(stateUpdateAfterRun(e, report, true)).toMatchObject({ backlogSince: null, pendingDeletes: null, lastSuccessAt: NOW + 2500 });
    expect('pendingDeletes' in stateUpdateAfterRun(e, report, false)).toBe(false);
  });

  it('a run that leaves messages behind starts the backlog, or keeps the one under way', () => {
    const left = end();
    left.counters.remaining = 3;
    expect(backlogSinceAfter(left)).toBe(NOW);
    const older = end({ state: { mailboxId: 'mb', backlogSince: NOW - 60_000 } });
    older.counters.remaining = 3;
    expect(buildReport(older).backlogAgeSeconds).toBe(63);
    expect(backlogSinceAfter(end({ stopReason: 'store-failed' }))).toBe(NOW);
  });

  it('knownOnServer keeps the previous figure when the run did not list, or the guard stopped it', () => {
    const listed = end();
    expect(runSummaryOf(listed, buildReport(listed)).knownOnServer).toBe(1);
    const guarded = end({ stopReason: 'uidl-reset-suspected' });
    expect(runSummaryOf(guarded, buildReport(guarded)).knownOnServer).toBe(40);
    const never = end({ stopReason: 'connection-failed' });
    never.counters.serverMessages = [];
    expect(runSummaryOf(never, buildReport(never)).knownOnServer).toBe(40);
    const emptyButDone = end();
    emptyButDone.counters.serverMessages = [];
    expect(runSummaryOf(emptyButDone, buildReport(emptyButDone)).knownOnServer).toBe(1);
  });
});
