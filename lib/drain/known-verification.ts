/**
 * The delete rule, part (a), for known messages whose UIDL and size do not prove what they are
 * (a header digest, a reused UIDL listed at another size, an entry already deleted): RETR the
 * message, hash the bytes as they flow, and DELE it only when they are the bytes stored under
 * its key. Otherwise it is another message under a known id: left on the server and reported
 * under its UIDL, never deleted unseen.
 */
import { createHash } from 'node:crypto';
import type { Pop3Client } from '../pop3/index.js';
import type { Deletions } from './deletions.js';
import type { ServerMessage } from './plan.js';
import type { LedgerEntry } from './ports.js';
import type { DrainFailure } from './report.js';
import type { RunContext } from './run-context.js';

/** Pure: the verdict on one known message once its bytes were hashed in this session. */
export function verifiedVerdict(message: ServerMessage, entry: LedgerEntry, sha256: string, size: number): DrainFailure | undefined {
  if (entry.sha256 !== undefined && entry.sha256 === sha256) return undefined;
  return {
    uidl: message.uidl,
    code: 'STORE_CONFLICT',
    phase: 'fetch',
    message: `listed under the id of a stored message, but its bytes differ (${size} bytes received, ${entry.size} stored); left on the server`,
    retryable: false,
  };
}

/** Retrieve each, compare with its entry, DELE the identical ones; report the others. */
export async function verifyKnown(
  ctx: RunContext,
  client: Pop3Client,
  deletions: Deletions,
  items: ReadonlyArray<{ message: ServerMessage; entry: LedgerEntry }>,
): Promise<void> {
  if (items.length === 0) return;
  const byNumber = new Map(items.map((i) => [i.message.number, i]));
  for await (const retrieved of client.retrieve(items.map((i) => i.message))) {
    const { message, entry } = byNumber.get(retrieved.number)!;
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of retrieved.stream) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    const failure = verifiedVerdict(message, entry, hash.digest('hex'), size);
    if (failure === undefined) {
      deletions.request(message);
    } else {
      ctx.failures.push(failure);
      ctx.log.warn('a known id names another message: left on the server', { uidl: message.uidl, size, storedSize: entry.size });
    }
  }
}
