/**
 * Where a POP3 session stands (the channel's `state`, client.ts), and the phase an error is
 * reported in when no command is awaiting its answer.
 */
import type { Pop3Phase } from './errors.js';

export type ChannelState = 'new' | 'connecting' | 'authorization' | 'transaction' | 'closing' | 'closed';

/** The phase of a session in `state` with nothing in flight. */
export function idlePhase(state: ChannelState): Pop3Phase {
  switch (state) {
    case 'new':
    case 'connecting':
      return 'connect';
    case 'authorization':
      return 'auth';
    case 'closing':
      return 'quit';
    default:
      return 'transaction';
  }
}
