// Crash safety of a whole drain into the AWS adapters (s3rver, dynalite and the recording
// EventBridge endpoint, all owned by this process so they outlive the child), end to end: a
// child process drains a Dovecot mailbox (delete policy) and is SIGKILLed at every step boundary
// of a message and at random instants; the campaign (test/support/drain-crash-campaign.ts)
// checks after every child that a message gone from the server is stored and announced, and at
// the end that every message is stored exactly once, recorded and announced with one event id.
//
// s3rver ignores `If-None-Match: *` (docs/testing.md), so it cannot show that a retried upload
// never replaces an object: what it can show, and what is asserted, is one object per key with
// exactly the message's bytes, and no object that is not a message's.
//
// The kill schedule is random but seeded; a failure prints the seed (set CRASH_SEED to replay
// the same schedule; the instants of kills still vary).
import { mkdtemp, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAwsJsonEndpoint } from '../../testkit/aws/json-endpoint.js';
import { startDynalite, startS3rver } from '../../testkit/aws/standins.js';
import { sha256 } from '../../testkit/fixtures/drain-fixtures.js';
import { CAMPAIGN_TIMEOUT_MS, dovecot, PASSWORD, seed, setUpCrashWorld, work } from '../support/drain-crash-world.js';
import { Mailbox } from '../support/drain-crash-mailbox.js';
import { awsFamily, BUCKET, TABLE, type AwsBackends } from '../support/drain-crash-families.js';
import { checkFinalState, runCampaign, summary } from '../support/drain-crash-campaign.js';
import { prng } from '../../testkit/fixtures/mail-builders.js';

setUpCrashWorld();

describe('SIGKILL at every step of a drain, then a rerun', () => {
  describe('AWS adapters (s3rver, dynalite, recording EventBridge endpoint)', () => {
    let backends: AwsBackends | undefined;
    /** Spool files left in the S3 store's spool folder once the campaign's last run completed. */
    let spoolLeftovers: Array<{ name: string; bytes: number; completeCopyOfMessage: number | undefined }> | undefined;

    beforeAll(async () => {
      const [s3, dynamo, events] = await Promise.all([startS3rver(), startDynalite(), startAwsJsonEndpoint()]);
      backends = { s3, dynamo, events, spoolDir: await mkdtemp(join(work, 'spool-')) };
      await Promise.all([s3.createBucket(BUCKET), dynamo.createLedgerTable(TABLE)]);
    });

    afterAll(async () => {
      await Promise.all([backends?.s3.stop(), backends?.dynamo.stop(), backends?.events.close()]);
    });

    it('nothing lost, nothing stored twice, nothing deleted before it was stored and announced', async () => {
      const random = prng(seed ^ 0x5eed);
      const user = 'crash-aws';
      await dovecot.addUser(user, PASSWORD);
      const mailbox = new Mailbox(user, 'aws', random);
      const family = awsFamily(backends!, user);
      const result = await runCampaign(family, mailbox, random);
      const leftovers = await family.leftovers();
      spoolLeftovers = await Promise.all(
        leftovers.map(async (name) => {
          const data = await readFile(join(backends!.spoolDir, name));
          const copyOf = mailbox.sources.find((m) => m.sha256 === sha256(data))?.index;
          return { name, bytes: data.length, completeCopyOfMessage: copyOf };
        }),
      );
      console.log(summary(family, result, await family.observe(), leftovers));
      await checkFinalState(family, mailbox, result);
      expect(result.busy).toBe(0);
    }, CAMPAIGN_TIMEOUT_MS);

    // S3MessageStore (lib/adapters/aws/s3-store.ts) spools a message over `memorySpoolBytes` to a
    // `popdrain-spool-<uuid>.part` file that it unlinks as soon as it is open, so a killed process
    // leaves no copy of mail behind. That matters in a Lambda, where /tmp outlives a timed-out
    // invocation in the same execution environment.
    it('killed runs leave no spool file behind, and none is named like a message', () => {
      expect(spoolLeftovers, 'the campaign above ran').toBeDefined();
      expect(spoolLeftovers!.filter((f) => f.name.endsWith('.eml')), 'spool files named .eml').toEqual([]);
      expect(spoolLeftovers, 'spool files of killed runs, after a later run completed').toEqual([]);
    });
  });
});
