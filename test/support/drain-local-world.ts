/**
 * The shared set-up of the drainMailbox-into-the-local-adapters tests (drain-local.test.ts,
 * drain-local-faults.test.ts): a real Dovecot started once per file, its users and their
 * passwords, an output folder with the local adapters per call (closed and removed after the
 * test), the ports and the run with a short lease.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { createLocalAdapters, type LocalAdapters } from '../../lib/adapters/local/index.js';
import { drainMailbox, type DrainBudget, type DrainOptions } from '../../lib/drain/drain-mailbox.js';
import type { MailboxConfig } from '../../lib/drain/mailbox.js';
import type { DrainPorts } from '../../lib/drain/ports.js';
import { startDovecot, type Dovecot } from '../../testkit/pop3-servers/dovecot.js';
import { staticCredentials } from '../../testkit/fixtures/drain-fixtures.js';

// Live binding: the file's Dovecot once beforeAll ran.
export let dovecot: Dovecot;
export const PASSWORD = 'drain-test-password';
/** The passwords the runs' credentials give, by user (a test may add its own). */
export const passwords: Record<string, string> = {};
const cleanups: Array<() => Promise<void>> = [];
let userCounter = 0;

/** Registers the hooks: a Dovecot for the file, each test's output folders closed and removed after it. */
export function setUpDrainLocalWorld(): void {
  beforeAll(async () => {
    dovecot = await startDovecot();
  });
  afterAll(async () => {
    await dovecot?.stop();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
}

export async function newUser(messages: Buffer[]): Promise<{ user: string; stored: Buffer[] }> {
  userCounter += 1;
  const user = `drain${userCounter}`;
  await dovecot.addUser(user, PASSWORD);
  passwords[user] = PASSWORD;
  await dovecot.deliverMany(user, messages);
  return { user, stored: messages };
}

export async function outDir(): Promise<{ out: string; adapters: LocalAdapters }> {
  const out = await mkdtemp(join(tmpdir(), 'popdrain-drain-'));
  const adapters = createLocalAdapters({ out });
  cleanups.push(async () => {
    await adapters.close();
    await rm(out, { recursive: true, force: true });
  });
  return { out, adapters };
}

export function ports(adapters: LocalAdapters, override: Partial<DrainPorts> = {}): DrainPorts {
  return { store: adapters.store, ledger: adapters.ledger, events: adapters.events, credentials: staticCredentials(passwords), ...override };
}

export async function run(mailbox: MailboxConfig, p: DrainPorts, budget: DrainBudget = {}, options: DrainOptions = {}) {
  return drainMailbox(mailbox, p, budget, { leaseTtlMs: 10_000, ...options });
}
