// deadline.ts's limit on a whole multi-line response (Pending.responseMs), beside the
// inactivity limit it does not replace.
import { describe, expect, it } from 'vitest';
import { commands } from '../../lib/pop3/command.js';
import { overdue } from '../../lib/pop3/deadline.js';
import type { Pending } from '../../lib/pop3/pending.js';

describe('overdue: the whole of a multi-line response', () => {
  const retr: Pending = {
    kind: 'stream',
    phase: 'transaction',
    timeoutMs: 100,
    responseMs: 1_000,
    sent: true,
    waitingSince: 1_000,
    onErr: () => undefined,
    command: commands.retr(4),
    messageNumber: 4,
    collectSize: undefined,
    body: undefined,
    discard: false,
    deliver: () => undefined,
  };
  const reading = { now: 1_999, readingBody: true, lastActivity: 1_998, bodyIdleMs: 500, server: '127.0.0.1:995' };

  it('ends a body that keeps trickling once the whole response took responseMs', () => {
    expect(overdue(retr, reading)).toBeUndefined();
    const error = overdue(retr, { ...reading, now: 2_000, lastActivity: 1_999 });
    expect(error?.code).toBe('BODY_TIMEOUT');
    expect(error?.message).toBe('the response to RETR 4 did not complete within 1000 ms (the server sends too slowly)');
    expect(error?.phase).toBe('transaction');
  });

  it('leaves a response without responseMs (or 0) to the inactivity limit', () => {
    expect(overdue({ ...retr, responseMs: 0 }, { ...reading, now: 1e9, lastActivity: 1e9 - 1 })).toBeUndefined();
    const { responseMs: _, ...withoutLimit } = retr;
    expect(overdue(withoutLimit as Pending, { ...reading, now: 1e9, lastActivity: 1e9 - 1 })).toBeUndefined();
  });

  it('does not apply before the status line: that has its own limit', () => {
    expect(overdue({ ...retr, timeoutMs: 5_000 }, { ...reading, readingBody: false, now: 2_500 })).toBeUndefined();
  });
});
