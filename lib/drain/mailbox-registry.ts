/**
 * The port of the deployment's mailbox registry: where the scheduler and the drainer find the
 * mailboxes (instead of the bundled file), and where an operator adds, changes, pauses and
 * removes them. Every entry is validated with registry-mailbox.ts on the way in and on the way
 * out: an entry that no longer validates is reported, never drained.
 */
import type { RegistryMailbox } from './registry-mailbox.js';

/**
 * The partition the registry takes in a key-value table shared with the ledger (the DynamoDB
 * adapter's `pk`). Mailbox ids start with a letter or digit, so it is never a mailbox's.
 */
export const REGISTRY_PARTITION = '#registry';

/** What a listing of the registry found. */
export interface RegistryListing {
  readonly entries: readonly RegistryMailbox[];
  /** One line per stored entry that does not validate (it is left out of `entries`). */
  readonly problems: readonly string[];
}

export interface MailboxRegistry {
  /** Every entry (eventually consistent: a scheduler's view). */
  list(): Promise<RegistryListing>;
  /** One entry, read consistently; undefined when absent. Throws ConfigError when it does not validate. */
  get(mailboxId: string): Promise<RegistryMailbox | undefined>;
  /**
   * Validates and writes an entry (a mailbox object of the file schema); `ifAbsent` writes only
   * when no entry with its id exists and returns false otherwise. Keeps the paused flag of an
   * existing entry unless `paused` is given.
   */
  put(raw: unknown, options?: { paused?: boolean; ifAbsent?: boolean }): Promise<boolean>;
  /** Pauses or resumes an entry; false when there is none. */
  setPaused(mailboxId: string, paused: boolean): Promise<boolean>;
  /**
   * Seeds the registry from a mailbox file, once per file content (`digest`): the first caller
   * for a digest writes every entry that is absent (never overwriting an operator's change) and
   * returns how many it wrote and which entries it refused; later callers return undefined.
   */
  seedOnce(digest: string, entries: readonly unknown[]): Promise<{ written: number; problems: string[] } | undefined>;
  /** Removes the entry only: the ledger, the state and the stored messages stay. False when there was none. */
  remove(mailboxId: string): Promise<boolean>;
}
