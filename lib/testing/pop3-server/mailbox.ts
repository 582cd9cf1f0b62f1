/**
 * The mailbox model: the maildrops a test hands in, the snapshot one session sees (numbered from
 * 1, DELE marks session-local), and what QUIT does to the maildrop.
 */
import { createHash } from 'node:crypto';

/** One message of a maildrop. */
export interface MailboxMessage {
  /** The message as stored, CRLF line endings expected; the server dot-stuffs when sending. */
  bytes: Buffer;
  /**
   * The UIDL unique-id, sent as given (not validated, so tests can serve hostile ones).
   * @default a stable id derived from the SHA-256 of the bytes (made unique within the mailbox)
   */
  uid?: string;
  /**
   * Set to `true` by the server when a session's QUIT removed the message from its mailbox.
   * A message that is already `deleted: true` when a session logs in is not in the maildrop.
   */
  deleted?: boolean;
}

/** A message as one session sees it (numbered from 1, DELE marks are session-local). */
export interface SessionMessage {
  readonly number: number;
  readonly uid: string;
  /** Byte length of the stored bytes, as LIST and STAT report it. */
  readonly size: number;
  readonly bytes: Buffer;
  /** Marked by DELE in this session; RSET clears it, QUIT applies it. */
  readonly deleted: boolean;
  /** The mailbox entry it came from. */
  readonly stored: MailboxMessage;
}

/** A session's own copy, whose DELE mark the session sets and clears. */
export interface MaildropMessage extends SessionMessage {
  deleted: boolean;
}

function digestUid(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex').slice(0, 32);
}

/**
 * The snapshot a session takes at login: the messages not yet deleted, numbered from 1. A message
 * without a `uid` gets one derived from its bytes, made unique within the maildrop and remembered
 * in `assignedUids`, so later sessions see the same id.
 */
export function loadMaildrop(box: readonly MailboxMessage[], assignedUids: WeakMap<MailboxMessage, string>): MaildropMessage[] {
  const present = box.filter((m) => m.deleted !== true);
  const used = new Set<string>();
  for (const m of present) {
    const uid = m.uid ?? assignedUids.get(m);
    if (uid !== undefined) used.add(uid);
  }
  return present.map((stored, index) => {
    let uid = stored.uid ?? assignedUids.get(stored);
    if (uid === undefined) {
      const base = digestUid(stored.bytes);
      uid = base;
      for (let n = 2; used.has(uid); n++) uid = `${base}-${n}`;
      used.add(uid);
      assignedUids.set(stored, uid);
    }
    return { number: index + 1, uid, size: stored.bytes.length, bytes: stored.bytes, deleted: false, stored };
  });
}

/** The message a command argument names (deleted or not), or undefined when there is none. */
export function findMessage(messages: readonly MaildropMessage[], numberArg: string | number | undefined): MaildropMessage | undefined {
  const text = String(numberArg ?? '');
  if (!/^[1-9][0-9]{0,9}$/.test(text)) return undefined;
  return messages[Number(text) - 1];
}

/** What STAT reports: the messages not marked deleted and their total size. */
export function maildropTotals(messages: readonly SessionMessage[]): { count: number; octets: number } {
  let count = 0;
  let octets = 0;
  for (const m of messages) {
    if (m.deleted) continue;
    count++;
    octets += m.size;
  }
  return { count, octets };
}

/**
 * QUIT in TRANSACTION (the UPDATE state): removes the messages marked deleted from the maildrop,
 * marks the stored entries `deleted`, and returns their UIDs in order.
 */
export function expungeDeleted(box: MailboxMessage[] | undefined, messages: readonly SessionMessage[]): string[] {
  const expunged: string[] = [];
  for (const m of messages) {
    if (!m.deleted) continue;
    const index = box?.indexOf(m.stored) ?? -1;
    if (index >= 0) box?.splice(index, 1);
    m.stored.deleted = true;
    expunged.push(m.uid);
  }
  return expunged;
}
