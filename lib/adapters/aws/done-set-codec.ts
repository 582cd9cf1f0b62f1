/**
 * The done set's pure parts: which shard a UIDL belongs to, the binary packing of a shard, and
 * the decisions (is an entry summarizable, must a summary hit be read in full, which shards to
 * rewrite). No I/O; dynamodb-done-set.ts does the reads and the conditional writes.
 *
 * A done-set entry is what a run needs to leave a message alone without reading its ledger
 * item: the full UIDL (not a hash: no collision can ever make a new message count as done),
 * its size, when it was first seen (for keep-days) and whether it was skipped. Packed as
 *
 *   [u8 uidl byte length][uidl bytes (UTF-8)][u32 size][u32 firstSeenAt, epoch s][u8 flags]
 *
 * 10 bytes + the UIDL: 26 bytes for Dovecot's 16-character UIDLs, at most 80 (RFC 1939 UIDLs
 * are at most 70 characters).
 */
import { createHash } from 'node:crypto';
import type { DeletePolicy } from '../../drain/mailbox.js';
import { deleteAllowed } from '../../drain/plan.js';
import type { LedgerEntry } from '../../drain/ports.js';

/** Shards per mailbox (a fixed number, read with one BatchGetItem). */
export const DONE_SHARD_COUNT = 16;
/** Payload bytes a shard may hold: under DynamoDB's 400 KB item limit with room for the keys. */
export const MAX_SHARD_PAYLOAD_BYTES = 380_000;
/** From this many UIDLs on, a lookup reads the done set first (below, per-message reads cost less). */
export const DONE_SET_MIN_UIDLS = 64;
/** A flush waits until this many kept entries are missing from the done set (writes cost more than reads). */
export const DONE_SET_FLUSH_MIN_ENTRIES = 32;
/**
 * A summary hit is read in full when the policy would let the message go within this margin of
 * the lookup's `now`: a run never decides a deletion from the summary, even if it takes long.
 */
export const DELETE_MARGIN_MS = 86_400_000;

const MAX_UIDL_BYTES = 255;
const MAX_U32 = 0xffff_ffff;
const FLAG_SKIPPED = 1;

export interface DoneEntry {
  uidl: string;
  size: number;
  /** Epoch ms, rounded down to the second. */
  firstSeenAt: number;
  skipped: boolean;
}

/** The shard a UIDL is kept in: the first byte of its sha256, modulo the shard count. */
export function shardOf(uidl: string): number {
  return createHash('sha256').update(uidl, 'utf8').digest()[0]! % DONE_SHARD_COUNT;
}

/**
 * Whether an entry may be summarized: its message is final (announced, or skipped and announced),
 * not deleted, and the policy keeps it beyond the margin; its fields fit the packing.
 */
export function summarizable(entry: LedgerEntry, policy: DeletePolicy, now: number): boolean {
  if (entry.deletedAt !== undefined || entry.announcedAt === undefined) return false;
  if (entry.status !== 'announced' && entry.status !== 'skipped') return false;
  if (Buffer.byteLength(entry.uidl, 'utf8') > MAX_UIDL_BYTES || entry.size > MAX_U32 || entry.size < 0) return false;
  if (entry.firstSeenAt < 0 || entry.firstSeenAt / 1000 > MAX_U32) return false;
  return !deleteAllowed(entry, policy, now + DELETE_MARGIN_MS);
}

/** The entry a summary hit stands for, as far as the summary knows it. */
export function keptEntry(mailboxId: string, done: DoneEntry): LedgerEntry {
  const entry = {
    mailboxId,
    uidl: done.uidl,
    status: done.skipped ? 'skipped' : 'announced',
    size: done.size,
    firstSeenAt: done.firstSeenAt,
    // The summary keeps only that it was announced, not when: firstSeenAt is a lower bound.
    announcedAt: done.firstSeenAt,
  } as LedgerEntry;
  // A kept entry's event is never re-published; reading it is a defect, so it fails loudly.
  Object.defineProperty(entry, 'event', {
    enumerable: false,
    get() {
      throw new Error(`the event of UIDL ${done.uidl} of mailbox ${mailboxId} is not in the done set (a kept entry was asked to announce)`);
    },
  });
  return entry;
}

/**
 * Whether a summary hit can answer the lookup: a skipped message is never deleted; an announced
 * one only when the policy keeps it beyond the margin. Otherwise its ledger item is read.
 */
export function hitAnswers(done: DoneEntry, policy: DeletePolicy, now: number): boolean {
  if (done.skipped) return true;
  return !deleteAllowed(keptEntry('', done), policy, now + DELETE_MARGIN_MS);
}

export function doneFromEntry(entry: LedgerEntry): DoneEntry {
  return { uidl: entry.uidl, size: entry.size, firstSeenAt: Math.floor(entry.firstSeenAt / 1000) * 1000, skipped: entry.status === 'skipped' };
}

export function encodeShard(entries: readonly DoneEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const uidl = Buffer.from(e.uidl, 'utf8');
    const fixed = Buffer.alloc(9);
    fixed.writeUInt32BE(e.size, 0);
    fixed.writeUInt32BE(Math.floor(e.firstSeenAt / 1000), 4);
    fixed.writeUInt8(e.skipped ? FLAG_SKIPPED : 0, 8);
    parts.push(Buffer.of(uidl.length), uidl, fixed);
  }
  return Buffer.concat(parts);
}

/** Throws on a truncated payload (the caller treats the shard as corrupt). */
export function decodeShard(payload: Uint8Array): DoneEntry[] {
  const buf = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const entries: DoneEntry[] = [];
  let at = 0;
  while (at < buf.length) {
    const length = buf[at]!;
    if (at + 1 + length + 9 > buf.length) throw new Error(`done-set shard truncated at byte ${at}`);
    const uidl = buf.toString('utf8', at + 1, at + 1 + length);
    at += 1 + length;
    entries.push({ uidl, size: buf.readUInt32BE(at), firstSeenAt: buf.readUInt32BE(at + 4) * 1000, skipped: (buf[at + 8]! & FLAG_SKIPPED) !== 0 });
    at += 9;
  }
  return entries;
}

export function encodedBytes(entry: DoneEntry): number {
  return 10 + Buffer.byteLength(entry.uidl, 'utf8');
}

/**
 * A shard's next content: its entries still listed on the server (the others left the server and
 * are dropped), plus the additions, as many as fit. Pure.
 */
export function nextShard(current: readonly DoneEntry[], additions: readonly DoneEntry[], listed: ReadonlySet<string>): DoneEntry[] {
  const out = new Map<string, DoneEntry>();
  let bytes = 0;
  for (const e of [...current.filter((c) => listed.has(c.uidl)), ...additions]) {
    if (out.has(e.uidl)) continue;
    const size = encodedBytes(e);
    if (bytes + size > MAX_SHARD_PAYLOAD_BYTES) continue;
    out.set(e.uidl, e);
    bytes += size;
  }
  return [...out.values()];
}

/** Whether a lookup's missing kept entries are worth a write of the shards they belong to. */
export function shouldFlush(missing: number, summarized: number): boolean {
  return missing >= DONE_SET_FLUSH_MIN_ENTRIES || (missing > 0 && missing >= summarized);
}
