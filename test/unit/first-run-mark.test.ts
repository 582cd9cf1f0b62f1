import { describe, expect, it } from 'vitest';
import { ledgerLost, marksFirstRun, warmsStore } from '../../lib/drain/plan.js';
import type { MailboxState } from '../../lib/drain/ports.js';

const fresh: MailboxState = { mailboxId: 'm' };
const started: MailboxState = { mailboxId: 'm', firstRunStartedAt: 1 };
const ran = { mailboxId: 'm', lastRun: { runId: 'r' } } as unknown as MailboxState;

describe('a first run marks its start before it stores', () => {
  it('marks only a first run with something to fetch, once, and never after a lost ledger', () => {
    expect(marksFirstRun({ state: undefined, ledgerLost: false, toFetch: 3 })).toBe(true);
    expect(marksFirstRun({ state: fresh, ledgerLost: false, toFetch: 3 })).toBe(true);
    expect(marksFirstRun({ state: fresh, ledgerLost: false, toFetch: 0 })).toBe(false);
    expect(marksFirstRun({ state: started, ledgerLost: false, toFetch: 3 })).toBe(false);
    expect(marksFirstRun({ state: ran, ledgerLost: false, toFetch: 3 })).toBe(false);
    expect(marksFirstRun({ state: fresh, ledgerLost: true, toFetch: 3 })).toBe(false);
  });

  it('a ledger with a first run started is not lost; one with no state at all is', () => {
    const facts = { listed: 3, known: 0, storeHolds: true };
    expect(ledgerLost({ state: undefined, ...facts })).toBe(true);
    expect(ledgerLost({ state: fresh, ...facts })).toBe(true);
    expect(ledgerLost({ state: started, ...facts })).toBe(false);
    expect(ledgerLost({ state: ran, ...facts })).toBe(false);
    expect(ledgerLost({ state: fresh, ...facts, storeHolds: false })).toBe(false);
    expect(ledgerLost({ state: fresh, ...facts, known: 1 })).toBe(false);
  });
});

describe('a first drain warms the store up; a rerun does not', () => {
  it('warms on a mailbox never drained to the end, never on a rerun or a dry run', () => {
    expect(warmsStore({ state: fresh, dryRun: false })).toBe(true);
    expect(warmsStore({ state: started, dryRun: false })).toBe(true);
    expect(warmsStore({ state: ran, dryRun: false })).toBe(false);
    expect(warmsStore({ state: fresh, dryRun: true })).toBe(false);
  });
});
