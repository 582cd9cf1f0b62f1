/**
 * Where the Lambdas find the mailboxes: the bundled (or S3) mailbox file, or the registry in the
 * ledger table (`POPDRAIN_MAILBOX_SOURCE=registry`). Read per invocation with caching: the
 * scheduler's listing and each drainer lookup are reused for `cacheMs` (so a change, a pause or a
 * removal takes effect within that time), a failed read is not cached, and nothing is read at
 * import. In registry mode the scheduler first seeds the registry from the mailbox file, once per
 * file content (`seedOnce`): the bundled config/mailboxes.json remains the way to seed it.
 */
import { createHash } from 'node:crypto';
import { ConfigError, type ConfiguredMailbox } from '../lib/drain/config.js';
import type { MailboxRegistry } from '../lib/drain/mailbox-registry.js';
import type { DrainLogger } from '../lib/drain/ports.js';
import { registryEntriesOfFile } from '../lib/drain/registry-mailbox.js';
import type { MailboxDirectory } from './runtime.js';

/** How long a registry read is reused (`POPDRAIN_REGISTRY_CACHE_SECONDS`). */
export const DEFAULT_REGISTRY_CACHE_SECONDS = 60;

export interface MailboxListing {
  /** Every mailbox to schedule (paused ones excluded). */
  readonly mailboxes: readonly ConfiguredMailbox[];
  /** Ids of paused mailboxes. */
  readonly paused: readonly string[];
}

export type MailboxLookup = { mailbox: ConfiguredMailbox } | { missing: 'absent' | 'paused' | 'invalid'; problem?: string };

export interface MailboxSource {
  list(): Promise<MailboxListing>;
  lookup(mailboxId: string): Promise<MailboxLookup>;
}

/** The mailbox file only (the default): nothing is ever paused. */
export function fileMailboxSource(directory: () => Promise<MailboxDirectory>): MailboxSource {
  return {
    list: async () => ({ mailboxes: (await directory()).all, paused: [] }),
    lookup: async (id) => {
      const mailbox = (await directory()).byId.get(id);
      return mailbox === undefined ? { missing: 'absent' } : { mailbox };
    },
  };
}

/** A value reused for `ttlMs`; a failed load is not kept. */
function cached<T>(ttlMs: number, now: () => number, load: () => Promise<T>): () => Promise<T> {
  let value: { promise: Promise<T>; at: number } | undefined;
  return () => {
    if (value === undefined || now() - value.at >= ttlMs) {
      const promise = load().catch((error: unknown) => {
        if (value?.promise === promise) value = undefined;
        throw error;
      });
      value = { promise, at: now() };
    }
    return value.promise;
  };
}

export interface RegistrySourceOptions {
  readonly registry: MailboxRegistry;
  readonly cacheMs: number;
  readonly logger: DrainLogger;
  /** The raw mailbox file to seed from (scheduler only). @default - no seeding */
  readonly seedFile?: () => Promise<unknown>;
  readonly now?: () => number;
}

export function registryMailboxSource(options: RegistrySourceOptions): MailboxSource {
  const now = options.now ?? Date.now;
  const { registry, logger } = options;
  let seeded: Promise<void> | undefined;
  const seed = (): Promise<void> => {
    if (options.seedFile === undefined) return Promise.resolve();
    seeded ??= (async () => {
      const raw = await options.seedFile!();
      const digest = createHash('sha256').update(JSON.stringify(raw)).digest('hex');
      const result = await registry.seedOnce(digest, registryEntriesOfFile(raw));
      if (result !== undefined) logger.info('registry seeded from the mailbox file', { written: result.written, refused: result.problems });
    })().catch((error: unknown) => {
      seeded = undefined;
      throw error;
    });
    return seeded;
  };
  const listing = cached(options.cacheMs, now, async (): Promise<MailboxListing> => {
    await seed();
    const { entries, problems } = await registry.list();
    for (const problem of problems) logger.error('invalid registry entry: not scheduled', { problem });
    return { mailboxes: entries.filter((e) => !e.paused).map((e) => e.mailbox), paused: entries.filter((e) => e.paused).map((e) => e.mailbox.id) };
  });
  const lookups = new Map<string, () => Promise<MailboxLookup>>();
  return {
    list: listing,
    lookup: (id) => {
      let get = lookups.get(id);
      if (get === undefined) {
        get = cached(options.cacheMs, now, async (): Promise<MailboxLookup> => {
          let entry;
          try {
            entry = await registry.get(id);
          } catch (error) {
            if (error instanceof ConfigError) return { missing: 'invalid', problem: error.message };
            throw error;
          }
          if (entry === undefined) return { missing: 'absent' };
          return entry.paused ? { missing: 'paused' } : { mailbox: entry.mailbox };
        });
        lookups.set(id, get);
      }
      return get();
    },
  };
}
