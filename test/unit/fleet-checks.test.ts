// The fleet simulation's verdicts (bench/fleet-checks.ts, bench/fleet-plan.ts): login attempts
// from Dovecot's log lines, the stored-exactly-once comparison, and the mailbox plan.
import { describe, expect, it } from 'vitest';
import { compareStored, failedLoginAttempts, waitingAtSample } from '../../bench/fleet-checks.js';
import { planFleet } from '../../bench/fleet-plan.js';

// The first line as Dovecot 2.3.19 wrote it to its log_path on this machine; the others vary it
// (a connection that tried twice, a successful login, the auth process's own line).
const LOG = [
  'Dec 06 15:46:06 pop3-login: Info: Disconnected: Connection closed (auth failed, 1 attempts in 0 secs): user=<failing0001>, method=PLAIN, rip=127.0.0.1, lip=127.0.0.1, TLS: Connection closed, session=<4ijaAflhOuB/AAAB>',
  'Dec 06 17:40:02 auth: Info: passwd-file(failing0001,127.0.0.1,<abc>): Password mismatch',
  'Dec 06 17:40:03 pop3-login: Info: Disconnected (auth failed, 2 attempts in 4 secs): user=<failing0001>, method=PLAIN, rip=127.0.0.1, lip=127.0.0.1, TLS, session=<def>',
  'Dec 06 17:40:04 pop3-login: Info: Login: user=<bulk00001>, method=PLAIN, rip=127.0.0.1, lip=127.0.0.1, mpid=12, TLS, session=<ghi>',
  'Dec 06 17:40:05 pop3-login: Info: Aborted login (auth failed, 1 attempts in 0 secs): user=<failing0002>, method=PLAIN, rip=127.0.0.1, lip=127.0.0.1, TLS, session=<jkl>',
].join('\n');

describe('fleet checks', () => {
  it('counts failed login attempts per user from the login process lines only', () => {
    expect(Object.fromEntries(failedLoginAttempts(LOG))).toEqual({ failing0001: 3, failing0002: 1 });
  });

  it('tells missing, duplicated and unexpected stored messages apart', () => {
    expect(compareStored(['a', 'b', 'c'], ['c', 'a', 'b'])).toEqual({ missing: 0, duplicates: 0, unexpected: 0 });
    expect(compareStored(['a', 'b', 'c'], ['a', 'a', 'b', 'x'])).toEqual({ missing: 1, duplicates: 1, unexpected: 1 });
    expect(compareStored([], [])).toEqual({ missing: 0, duplicates: 0, unexpected: 0 });
  });

  it('plans the special mailboxes and fills the rest with bulk ones', () => {
    const plan = planFleet({ mailboxes: 40, bulkEveryMinutes: 240, failing: 3, busy: 2, active: 4, bigMessages: 500, bigPerRun: 50 });
    expect(plan).toHaveLength(40);
    expect(new Set(plan.map((m) => m.id)).size).toBe(40);
    const count = (role: string) => plan.filter((m) => m.role === role).length;
    expect([count('big'), count('failing'), count('busy'), count('active'), count('added'), count('paused'), count('bulk')]).toEqual([1, 3, 2, 4, 1, 1, 28]);
    expect(plan.find((m) => m.role === 'big')).toMatchObject({ initialMessages: 500, maxMessagesPerRun: 50, everyMinutes: 5 });
    expect(plan.filter((m) => m.role === 'bulk').every((m) => m.everyMinutes === 240)).toBe(true);
    expect(() => planFleet({ mailboxes: 5, bulkEveryMinutes: 60, failing: 3, busy: 2, active: 4, bigMessages: 1, bigPerRun: 1 })).toThrow(/at least/);
  });
});

describe('waitingAtSample', () => {
  const takenAt = (times: Record<string, number>) => (id: string) => times[id];

  it('does not count a message handed to an invocation before the sample began', () => {
    // The finished request of a batch still running, and the scheduler's next one.
    expect(waitingAtSample(['done', 'next'], takenAt({ done: 1_000 }), 2_000)).toBe(1);
  });

  it('counts messages never handed out, or handed out after the sample began', () => {
    expect(waitingAtSample(['a', 'b'], takenAt({}), 2_000)).toBe(2);
    expect(waitingAtSample(['a', 'b'], takenAt({ a: 2_001 }), 2_000)).toBe(2);
    expect(waitingAtSample(['a', 'b'], takenAt({ a: 2_000, b: 1_999 }), 2_000)).toBe(0);
  });
});
