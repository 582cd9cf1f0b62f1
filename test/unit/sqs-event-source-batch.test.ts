// The batch the event-source stand-in (testkit/lambda/sqs-event-source.ts) hands one invocation:
// oldest first, up to the batch size, never a message of a group busy in another invocation,
// a group's messages in their order, the rest left in the buffer in theirs.
import type { Message } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import { takeBatch } from '../../testkit/lambda/sqs-event-source.js';

const msg = (id: string, group?: string): Message => ({ MessageId: id, ...(group === undefined ? {} : { Attributes: { MessageGroupId: group } }) });
const ids = (messages: readonly Message[]): string[] => messages.map((m) => m.MessageId!);

describe('takeBatch', () => {
  it('takes up to the batch size, oldest first, and leaves the rest in order', () => {
    const buffered = ['1', '2', '3', '4', '5'].map((id) => msg(id, `g${id}`));
    expect(ids(takeBatch(buffered, new Set(), 3))).toEqual(['1', '2', '3']);
    expect(ids(buffered)).toEqual(['4', '5']);
  });

  it('skips the messages of busy groups, keeping them buffered in their place', () => {
    const buffered = [msg('a1', 'a'), msg('b1', 'b'), msg('a2', 'a'), msg('c1', 'c'), msg('b2', 'b')];
    expect(ids(takeBatch(buffered, new Set(['a']), 10))).toEqual(['b1', 'c1', 'b2']);
    expect(ids(buffered)).toEqual(['a1', 'a2']);
  });

  it('puts several messages of one free group in one batch, in their order', () => {
    const buffered = [msg('a1', 'a'), msg('a2', 'a'), msg('b1', 'b'), msg('a3', 'a')];
    expect(ids(takeBatch(buffered, new Set(), 10))).toEqual(['a1', 'a2', 'b1', 'a3']);
    expect(buffered).toEqual([]);
  });

  it('with a batch size of 1 takes one message per call', () => {
    const buffered = [msg('a1', 'a'), msg('a2', 'a')];
    expect(ids(takeBatch(buffered, new Set(), 1))).toEqual(['a1']);
    expect(ids(takeBatch(buffered, new Set(), 1))).toEqual(['a2']);
    expect(takeBatch(buffered, new Set(), 1)).toEqual([]);
  });

  it('takes a message without a group as its own group (its message id)', () => {
    const buffered = [msg('x'), msg('y')];
    expect(ids(takeBatch(buffered, new Set(['x']), 10))).toEqual(['y']);
    expect(ids(buffered)).toEqual(['x']);
  });

  it('takes nothing when every buffered group is busy', () => {
    const buffered = [msg('a1', 'a'), msg('b1', 'b')];
    expect(takeBatch(buffered, new Set(['a', 'b']), 10)).toEqual([]);
    expect(ids(buffered)).toEqual(['a1', 'b1']);
  });
});
