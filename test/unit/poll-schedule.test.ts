/**
 * The decisions of `popdrain poll` (cli/poll-schedule.ts): first runs spread by a jitter fixed
 * per mailbox id, due mailboxes in order, the deployment's backoff after failures, retry-later
 * without counting, a reload that keeps each mailbox's place.
 */
import { describe, expect, it } from 'vitest';
import { failureBackoffMs } from '../../lib/drain/failure-backoff.js';
import type { DrainReport } from '../../lib/drain/report.js';
import { decideAfterRun, dueNow, firstRunAt, JITTER_FRACTION, jitterOf, nextWakeAt, reconcile, regularNextAt, type PollEntry } from '../../cli/poll-schedule.js';

const MIN = 60_000;
const T0 = Date.UTC(2025, 4, 1, 10, 0, 0);
type R = Pick<DrainReport, 'stopReason' | 'moreRemaining' | 'retryLater' | 'error' | 'retryAfterSeconds'>;
const report = (stopReason: DrainReport['stopReason'], extra: Partial<R> = {}): R => ({ stopReason, moreRemaining: false, retryLater: false, ...extra });
const entry = (id: string, nextAt: number, extra: Partial<PollEntry> = {}): PollEntry => ({ id, intervalMs: 5 * MIN, nextAt, streak: 0, running: false, ...extra });

describe('jitter', () => {
  it('is fixed per id, in [-1, 1), and differs between ids', () => {
    const ids = Array.from({ length: 200 }, (_, i) => `box-${i}`);
    const values = ids.map(jitterOf);
    expect(ids.map(jitterOf)).toEqual(values);
    for (const v of values) expect(v >= -1 && v < 1).toBe(true);
    expect(new Set(values).size).toBe(200);
    // Spread over the range, not bunched: both halves are well represented.
    expect(values.filter((v) => v < 0).length).toBeGreaterThan(60);
    expect(values.filter((v) => v >= 0).length).toBeGreaterThan(60);
  });

  it('first runs fall within the first JITTER_FRACTION of an interval, the same after a restart', () => {
    const firsts = Array.from({ length: 50 }, (_, i) => firstRunAt(`box-${i}`, 10 * MIN, T0));
    for (const at of firsts) expect(at - T0).toBeGreaterThanOrEqual(0), expect(at - T0).toBeLessThanOrEqual(JITTER_FRACTION * 10 * MIN);
    expect(new Set(firsts).size).toBeGreaterThan(40);
    expect(Array.from({ length: 50 }, (_, i) => firstRunAt(`box-${i}`, 10 * MIN, T0))).toEqual(firsts);
  });

  it('an interval is stretched or shrunk by at most JITTER_FRACTION', () => {
    for (let i = 0; i < 50; i += 1) {
      const d = regularNextAt(`box-${i}`, 10 * MIN, T0) - T0;
      expect(Math.abs(d - 10 * MIN)).toBeLessThanOrEqual(JITTER_FRACTION * 10 * MIN);
    }
  });
});

describe('dueNow and nextWakeAt', () => {
  const entries = [entry('c', T0 + 1), entry('b', T0 - 5), entry('a', T0 - 5), entry('r', T0 - 100, { running: true })];
  it('starts the longest waiting first, never a running one, at most the free slots', () => {
    expect(dueNow(entries, T0, 5).map((e) => e.id)).toEqual(['a', 'b']);
    expect(dueNow(entries, T0, 1).map((e) => e.id)).toEqual(['a']);
    expect(dueNow(entries, T0, 0)).toEqual([]);
    expect(dueNow(entries, T0 + 1, 5).map((e) => e.id)).toEqual(['a', 'b', 'c']);
  });
  it('wakes at the earliest mailbox not running', () => {
    expect(nextWakeAt(entries)).toBe(T0 - 5);
    expect(nextWakeAt([entry('r', 1, { running: true })])).toBeUndefined();
  });
});

describe('decideAfterRun', () => {
  const base = { id: 'jane', intervalMs: 5 * MIN, endedAt: T0 };
  const regular = regularNextAt('jane', 5 * MIN, T0);

  it('a normal end resets the streak; a budget stop with more remaining is normal too', () => {
    expect(decideAfterRun({ ...base, streak: 3, report: report('complete') })).toEqual({ outcome: 'ok', nextAt: regular, streak: 0 });
    expect(decideAfterRun({ ...base, streak: 0, report: report('max-messages', { moreRemaining: true }) })).toEqual({ outcome: 'ok', nextAt: regular, streak: 0 });
  });

  it.each(['auth-failed', 'tls-failed', 'config-invalid', 'uidl-reset-suspected'] as const)('%s backs off by the deployment rule, growing to hours', (stop) => {
    let streak = 0;
    const waits: number[] = [];
    for (let i = 0; i < 7; i += 1) {
      const after = decideAfterRun({ ...base, streak, report: report(stop) });
      expect(after.outcome).toBe('back-off');
      expect(after.streak).toBe(streak + 1);
      expect(after.backoffMs).toBe(failureBackoffMs(streak + 1));
      waits.push(after.nextAt - T0);
      streak = after.streak;
    }
    expect(waits.map((w) => w / MIN)).toEqual([15, 30, 60, 120, 240, 360, 360]);
  });

  it('a backoff shorter than the interval waits the interval', () => {
    const after = decideAfterRun({ id: 'jane', intervalMs: 60 * MIN, endedAt: T0, streak: 0, report: report('auth-failed') });
    expect(after.nextAt).toBe(regularNextAt('jane', 60 * MIN, T0));
    expect(after.streak).toBe(1);
  });

  it('busy and in-use retry on the schedule without counting; a login delay waits as long as the server asks', () => {
    expect(decideAfterRun({ ...base, streak: 2, report: report('in-use', { retryLater: true }) })).toEqual({ outcome: 'retry-later', nextAt: regular, streak: 2 });
    const delayed = decideAfterRun({ ...base, streak: 0, report: report('login-delay', { retryLater: true, retryAfterSeconds: 3600 }) });
    expect(delayed).toEqual({ outcome: 'retry-later', nextAt: T0 + 3600_000, streak: 0 });
  });

  it('a network error comes round on the schedule, the streak unchanged; a non-retryable other error backs off', () => {
    const retryable = { code: 'CONNECTION_FAILED', message: 'refused', retryable: true } as unknown as DrainReport['error'];
    expect(decideAfterRun({ ...base, streak: 1, report: report('connection-failed', { error: retryable }) })).toEqual({ outcome: 'retry', nextAt: regular, streak: 1 });
    const fatal = { code: 'CREDENTIALS_UNAVAILABLE', message: 'no env', retryable: false } as unknown as DrainReport['error'];
    expect(decideAfterRun({ ...base, streak: 0, report: report('credentials-failed', { error: fatal }) }).outcome).toBe('back-off');
  });

  it('the time scale (tests) shrinks backoffs and requested delays alike', () => {
    expect(decideAfterRun({ ...base, intervalMs: 1000, streak: 0, report: report('auth-failed'), timeScale: 0.01 })).toMatchObject({ backoffMs: 9000, nextAt: T0 + 9000 });
    expect(decideAfterRun({ ...base, intervalMs: 1000, streak: 0, report: report('login-delay', { retryLater: true, retryAfterSeconds: 600 }), timeScale: 0.01 }).nextAt).toBe(T0 + 6000);
  });
});

describe('reconcile', () => {
  it('keeps the place and streak of listed mailboxes, adds new ones as at start, drops the rest', () => {
    const old = [entry('a', T0 + 4 * MIN, { streak: 2 }), entry('b', T0 + 3 * MIN, { running: true }), entry('gone', T0)];
    const next = reconcile(old, [{ id: 'a', intervalMs: 5 * MIN }, { id: 'b', intervalMs: 5 * MIN }, { id: 'new', intervalMs: 5 * MIN }], T0);
    expect(next.map((e) => e.id)).toEqual(['a', 'b', 'new']);
    expect(next[0]).toEqual(old[0]);
    expect(next[1]).toEqual(old[1]);
    expect(next[2]).toEqual({ id: 'new', intervalMs: 5 * MIN, nextAt: firstRunAt('new', 5 * MIN, T0), streak: 0, running: false });
  });

  it('a shorter interval brings a healthy mailbox forward; a backing-off one keeps its wait', () => {
    const [healthy, failing] = reconcile([entry('a', T0 + 60 * MIN, { intervalMs: 60 * MIN }), entry('f', T0 + 60 * MIN, { intervalMs: 60 * MIN, streak: 3 })], [{ id: 'a', intervalMs: MIN }, { id: 'f', intervalMs: MIN }], T0);
    expect(healthy!.nextAt).toBe(regularNextAt('a', MIN, T0));
    expect(failing!.nextAt).toBe(T0 + 60 * MIN);
  });
});
