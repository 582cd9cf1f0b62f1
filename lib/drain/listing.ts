/**
 * What is on the server: LIST and UIDL through the client, header-digest ids for a server
 * without UIDL, and the messages the run cannot identify safely (left on the server, reported).
 * The decisions are pure functions (`identifyListing`, `leaveSharedUidlsAlone`,
 * `headerDigestUidls`); `listMessages` does the talking.
 */
import { createHash } from 'node:crypto';
import { isPop3Error, type ListEntry, type Pop3Client, type UidlEntry } from '../pop3/index.js';
import type { ServerMessage } from './plan.js';
import type { DrainLogger } from './ports.js';
import type { DrainFailure } from './report.js';

/** A listed message the run leaves on the server, and why. */
export interface LeftAlone {
  number: number;
  uidl: string | undefined;
  reason: string;
}

export interface Identified {
  messages: ServerMessage[];
  leftAlone: LeftAlone[];
}

/**
 * Pairs LIST with UIDL (the client has checked both: numbers from 1, each once). A message
 * without a UIDL cannot be told apart from the others: it is left alone (not fetched, not
 * deleted) and reported; the rest of the mailbox drains.
 */
export function identifyListing(list: readonly ListEntry[], uidls: readonly UidlEntry[]): Identified {
  // The usual listings, the same numbers in the same order, pair up without a map.
  let same = list.length === uidls.length ? 0 : -1;
  while (same >= 0 && same < list.length && list[same]!.number === uidls[same]!.number) same++;
  if (same === list.length) return { messages: list.map((e, i) => ({ number: e.number, size: e.size, uidl: uidls[i]!.uid })), leftAlone: [] };
  const byNumber = new Map(uidls.map((u) => [u.number, u.uid]));
  const out: Identified = { messages: [], leftAlone: [] };
  for (const e of list) {
    const uidl = byNumber.get(e.number);
    if (uidl === undefined) out.leftAlone.push({ number: e.number, uidl: undefined, reason: `server listed message ${e.number} without a UIDL` });
    else out.messages.push({ number: e.number, size: e.size, uidl });
  }
  return out;
}

/**
 * RFC 1939: a unique-id belongs to one message. Two messages sharing one cannot be told apart
 * (which one did the ledger record?), so neither is fetched or deleted this run.
 */
export function leaveSharedUidlsAlone(messages: readonly ServerMessage[]): Identified {
  // Usually no UIDL is shared. Servers whose UIDLs grow with the message number (Dovecot's
  // default, uid then uidvalidity in hex) show it by one native string comparison per message;
  // otherwise a set tells, without counting.
  if (strictlyIncreasing(messages)) return { messages: messages.slice(), leftAlone: [] };
  const uidls = new Set<string>();
  for (const m of messages) uidls.add(m.uidl);
  if (uidls.size === messages.length) return { messages: messages.slice(), leftAlone: [] };
  const count = new Map<string, number>();
  for (const m of messages) count.set(m.uidl, (count.get(m.uidl) ?? 0) + 1);
  const out: Identified = { messages: [], leftAlone: [] };
  for (const m of messages) {
    const n = count.get(m.uidl)!;
    if (n > 1) out.leftAlone.push({ number: m.number, uidl: m.uidl, reason: `server reported the UIDL "${m.uidl}" for ${n} messages` });
    else out.messages.push(m);
  }
  return out;
}

/**
 * Whether each message's UIDL sorts after the one before it (string order): then no two are
 * the same. Cheaper than hashing 20,000 UIDLs into a set, and no allocation.
 */
export function strictlyIncreasing(messages: readonly ServerMessage[]): boolean {
  for (let i = 1; i < messages.length; i++) if (!(messages[i - 1]!.uidl < messages[i]!.uidl)) return false;
  return true;
}

/**
 * Without UIDL (RFC 1939 optional): the sha256 of a message's header block (`TOP n 0`) plus its
 * size stands in for a UIDL. Identical header blocks of the same size are told apart by their
 * order. Limits (documented): a server that rewrites headers makes a message look new; two
 * identical messages whose order changes between runs may swap ids.
 */
export function headerDigestUidls(headers: ReadonlyArray<{ number: number; size: number; sha256Hex: string }>): ServerMessage[] {
  const seen = new Map<string, number>();
  return headers.map((h) => {
    const base = `~hdr-${h.sha256Hex.slice(0, 40)}-${h.size}`;
    const n = (seen.get(base) ?? 0) + 1;
    seen.set(base, n);
    return { number: h.number, size: h.size, uidl: n === 1 ? base : `${base}-${n}`, byHeaderDigest: true };
  });
}

/** A message left alone, as the report lists it. */
export function leftAloneFailure(left: LeftAlone): DrainFailure {
  const failure: DrainFailure = { code: 'PROTOCOL_ERROR', phase: 'list', message: `${left.reason}; left on the server`, retryable: false };
  if (left.uidl !== undefined) return { uidl: left.uidl, ...failure };
  return failure;
}

export interface Listing {
  /** Messages the run can identify, each UIDL once, in server order. */
  messages: ServerMessage[];
  /** Messages left on the server, as failures for the report. */
  leftAlone: DrainFailure[];
}

/**
 * `seen.uidlSupported` is set false as soon as the server refuses UIDL, so a report made after
 * the header digests failed still says so.
 */
export async function listMessages(client: Pop3Client, log: DrainLogger, seen: { uidlSupported: boolean }): Promise<Listing> {
  const [list, uidls] = await Promise.all([
    client.list(),
    client.uidl().catch((error: unknown) => {
      if (isPop3Error(error) && error.code === 'COMMAND_FAILED') return undefined;
      throw error;
    }),
  ]);
  let identified: Identified;
  if (uidls !== undefined) {
    identified = identifyListing(list, uidls);
  } else {
    seen.uidlSupported = false;
    log.warn('server does not support UIDL: identifying messages by a digest of their headers and size');
    identified = { messages: await headerDigestIds(client, list), leftAlone: [] };
  }
  const unique = leaveSharedUidlsAlone(identified.messages);
  const leftAlone = [...identified.leftAlone, ...unique.leftAlone];
  for (const left of leftAlone) log.warn(`${left.reason}; left on the server`, { number: left.number });
  return { messages: unique.messages, leftAlone: leftAlone.map(leftAloneFailure) };
}

async function headerDigestIds(client: Pop3Client, list: readonly ListEntry[]): Promise<ServerMessage[]> {
  const sizes = new Map(list.map((e) => [e.number, e.size]));
  const headers: Array<{ number: number; size: number; sha256Hex: string }> = [];
  for await (const m of client.retrieve(list, { topLines: 0 })) {
    const hash = createHash('sha256');
    for await (const chunk of m.stream) hash.update(chunk as Buffer);
    headers.push({ number: m.number, size: sizes.get(m.number)!, sha256Hex: hash.digest('hex') });
  }
  return headerDigestUidls(headers);
}
