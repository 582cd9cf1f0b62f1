// Crash safety of a whole drain into the local adapters, end to end: a child process drains a
// Dovecot mailbox (delete policy) and is SIGKILLed at every step boundary of a message (mid-RETR,
// after the store commit, the ledger record, the event, markAnnounced, a DELE answered before
// QUIT, QUIT sent) and at random instants. The next child is the rerun. New mail arrives between
// some runs. After every child the campaign (test/support/drain-crash-campaign.ts) checks the
// promise that matters most: a message gone from the server is stored (byte for byte) and
// announced. At the end: every delivered message is stored exactly once under the key of its
// mailbox and UIDL, the ledger and the store agree, every message was announced with one stable
// event id per message, and nothing half-written looks like a message.
//
// The kill schedule is random but seeded; a failure prints the seed (set CRASH_SEED to replay
// the same schedule; the instants of kills still vary).
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileMessageStore } from '../../lib/adapters/local/index.js';
import { CAMPAIGN_TIMEOUT_MS, dovecot, PASSWORD, seed, setUpCrashWorld, work } from '../support/drain-crash-world.js';
import { Mailbox } from '../support/drain-crash-mailbox.js';
import { localFamily } from '../support/drain-crash-families.js';
import { checkFinalState, runCampaign, summary } from '../support/drain-crash-campaign.js';
import { prng } from '../../testkit/fixtures/mail-builders.js';

setUpCrashWorld();

describe('SIGKILL at every step of a drain, then a rerun', () => {
  it('local adapters: nothing lost, nothing stored twice, nothing deleted before it was stored and announced', async () => {
    const random = prng(seed);
    const out = await mkdtemp(join(work, 'out-'));
    const user = 'crash-local';
    await dovecot.addUser(user, PASSWORD);
    const mailbox = new Mailbox(user, 'local', random);
    const family = localFamily(out, user);
    const result = await runCampaign(family, mailbox, random);
    await checkFinalState(family, mailbox, result);

    // Temp files of killed children are never named as messages, and the store's cleanup
    // (which runs before a run's first write to the folder) can remove every one of them.
    const leftovers = await family.leftovers();
    expect(leftovers.filter((n) => n.endsWith('.eml'))).toEqual([]);
    console.log(summary(family, result, await family.observe(), leftovers));
    await new FileMessageStore({ root: out }).cleanupTemp(family.mailboxId);
    expect(await family.leftovers()).toEqual([]);
    // The lease file names its holder's pid: a dead holder never makes the next run wait.
    expect(result.busy).toBe(0);
  }, CAMPAIGN_TIMEOUT_MS);
});
