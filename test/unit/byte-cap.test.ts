import { describe, expect, it } from 'vitest';
import { LISTED_SIZE_SLACK_BYTES, messageByteCap } from '../../lib/drain/byte-cap.js';

describe('messageByteCap', () => {
  const facts = { maxMessageBytes: undefined, maxBytes: Infinity, received: 0, listed: 1_000 };

  it('nothing caps a message without a size cap or a byte budget', () => {
    expect(messageByteCap(facts)).toEqual({ bytes: Infinity, by: 'none' });
  });

  it('the size cap alone', () => {
    expect(messageByteCap({ ...facts, maxMessageBytes: 5_000 })).toEqual({ bytes: 5_000, by: 'size-cap' });
  });

  it('the byte budget alone: what is left of it, for a message listed within it', () => {
    expect(messageByteCap({ ...facts, maxBytes: 1_000_000, received: 200_000 })).toEqual({ bytes: 800_000, by: 'byte-budget' });
  });

  it('the byte budget never cuts a message before its listed size (plus slack): a large honest message still arrives', () => {
    expect(messageByteCap({ ...facts, maxBytes: 1_000_000, received: 0, listed: 5_000_000 })).toEqual({ bytes: 5_000_000 + LISTED_SIZE_SLACK_BYTES, by: 'byte-budget' });
    expect(messageByteCap({ ...facts, maxBytes: 1_000_000, received: 1_000_000, listed: 10 })).toEqual({ bytes: 10 + LISTED_SIZE_SLACK_BYTES, by: 'byte-budget' });
  });

  it('both: the smaller wins', () => {
    expect(messageByteCap({ ...facts, maxMessageBytes: 5_000, maxBytes: 1_000_000 })).toEqual({ bytes: 5_000, by: 'size-cap' });
    expect(messageByteCap({ ...facts, maxMessageBytes: 5_000_000, maxBytes: 1_000_000 })).toEqual({ bytes: 1_000_000, by: 'byte-budget' });
  });
});
