/**
 * drainMailbox into the AWS adapters under faults (a missing bucket, S3 answering 500 from the
 * scripted S3 endpoint, a lost conditional ledger write, EventBridge failing or throttling
 * entries), and an OAuth2 mailbox whose cached token the server refuses: nothing is lost. The
 * set-up (a real Dovecot, s3rver, dynalite, the recording AWS JSON endpoint) is
 * test/support/drain-aws-world.ts.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_S3_PREFIX, S3MessageStore } from '../../lib/adapters/aws/s3-store.js';
import { SecretsManagerCredentials } from '../../lib/adapters/aws/secrets-manager-credentials.js';
import { messageKey, storedEventId } from '../../lib/drain/keys.js';
import type { LedgerEntry, LookupOptions, UidlLedger } from '../../lib/drain/ports.js';
import { GET_SECRET_VALUE, PUT_EVENTS } from '../../testkit/aws/json-endpoint.js';
import { dovecotMailbox, servedForm, sha256, testMessage } from '../../testkit/fixtures/drain-fixtures.js';
import { validateEventEnvelope } from '../support/event-schema.js';
import { startTokenServer, type OAuth2TokenServer } from '../../testkit/oauth2/token-server.js';
import { s3ErrorReply, startS3ScriptedEndpoint, type S3ScriptedEndpoint } from '../../testkit/aws/s3-scripted-endpoint.js';
import {
  aws,
  BUCKET,
  clearAccepted,
  delivered,
  detailOf,
  dovecot,
  getObject,
  ledger,
  newUser,
  nextUserName,
  objectKeys,
  ports,
  rawMessageItem,
  recordingLogger,
  refused,
  run,
  s3Client,
  serverUidls,
  setEntryFault,
  setUpDrainAwsWorld,
  smClient,
  spoolDir,
  storedEntries,
  uidlsOf,
} from '../support/drain-aws-world.js';

setUpDrainAwsWorld();

describe('faults lose nothing', () => {
  it('a bucket that does not exist: nothing recorded, announced or deleted, the failure reported; the next run stores it all', async () => {
    const messages = Array.from({ length: 5 }, (_, i) => testMessage(i, 'aws-nobucket'));
    const { mailbox, user } = await newUser(messages, { deletePolicy: { mode: 'delete' } });
    const missing = new S3MessageStore({ client: s3Client, bucket: 'popdrain-no-such-bucket', spoolDir });
    const r1 = await run(mailbox, ports({ store: missing }));
    expect(r1.stopReason).toBe('store-failed');
    expect(r1.ok).toBe(false);
    expect(r1.error?.code).toBe('STORE_FAILED');
    expect(r1.failures.length).toBeGreaterThanOrEqual(3);
    for (const f of r1.failures) {
      expect(f).toMatchObject({ code: 'STORE_FAILED', phase: 'store', retryable: false });
      expect(f.message).toMatch(/bucket popdrain-no-such-bucket does not exist/);
    }
    expect(r1).toMatchObject({ announced: 0, deleted: 0 });
    expect(storedEntries(mailbox.id)).toEqual([]);
    expect((await dovecot.listMaildir(user)).length).toBe(5);
    const uidls = await serverUidls(mailbox);
    expect((await ledger().lookup(mailbox.id, uidls)).size).toBe(0);

    const r2 = await run(mailbox, ports());
    expect(r2).toMatchObject({ stopReason: 'complete', ok: true, fetched: 5, announced: 5, deleted: 5 });
    const stored = await Promise.all((await objectKeys(mailbox.id)).map(async (k) => sha256((await getObject(k)).bytes)));
    expect(new Set(stored)).toEqual(new Set(messages.map((m) => sha256(servedForm(m)))));
    expect(await dovecot.listMaildir(user)).toEqual([]);
  });

  describe('S3 answering 500', () => {
    let scripted: S3ScriptedEndpoint;
    beforeEach(async () => {
      scripted = await startS3ScriptedEndpoint();
    });
    afterEach(async () => {
      await scripted.close();
    });

    it('one message whose upload keeps failing stays on the server, unrecorded and unannounced; the next run stores it', async () => {
      const messages = Array.from({ length: 5 }, (_, i) => testMessage(i, 'aws-500'));
      const { mailbox, user } = await newUser(messages, { deletePolicy: { mode: 'delete' } });
      const uidls = await serverUidls(mailbox);
      const target = uidls[1]!;
      const targetKey = `${DEFAULT_S3_PREFIX}${messageKey(mailbox.id, target)}`;
      scripted.setHandler((request) =>
        request.operation === 'PutObject' && request.key === targetKey
          ? s3ErrorReply(500, 'InternalError', 'We encountered an internal error. Please try again.')
          : undefined,
      );
      const flaky = new S3MessageStore({ client: scripted.client({ maxAttempts: 2 }), bucket: BUCKET, spoolDir });
      const r1 = await run(mailbox, ports({ store: flaky }));
      expect(r1).toMatchObject({ stopReason: 'complete', fetched: 5, announced: 4, deleted: 4, ok: false });
      expect(r1.failures).toHaveLength(1);
      expect(r1.failures[0]).toMatchObject({ uidl: target, code: 'STORE_FAILED', phase: 'store', retryable: true });
      expect(r1.failures[0]!.message).toMatch(/InternalError/);
      // The SDK tried twice; the message is neither recorded, nor announced, nor deleted.
      expect(scripted.requestsFor('PutObject').filter((r) => r.key === targetKey)).toHaveLength(2);
      expect(uidlsOf(storedEntries(mailbox.id))).toEqual(uidls.filter((u) => u !== target).sort());
      const known = await ledger().lookup(mailbox.id, uidls);
      expect(known.has(target)).toBe(false);
      expect([...known.values()].every((e) => e.status === 'announced')).toBe(true);
      expect((await dovecot.listMaildir(user)).length).toBe(1);

      clearAccepted();
      const r2 = await run(mailbox, ports());
      expect(r2).toMatchObject({ stopReason: 'complete', ok: true, fetched: 1, alreadyKnown: 0, announced: 1, deleted: 1 });
      expect(uidlsOf(storedEntries(mailbox.id))).toEqual([target]);
      expect(await objectKeys(mailbox.id)).toEqual([targetKey]);
      expect((await getObject(targetKey)).bytes.equals(servedForm(messages[1]!))).toBe(true);
      expect(await dovecot.listMaildir(user)).toEqual([]);
    });
  });

  it('a conditional ledger write lost to another run: LEDGER_CONFLICT, and that message is neither announced nor deleted', async () => {
    const { mailbox, user } = await newUser(Array.from({ length: 4 }, (_, i) => testMessage(i, 'aws-race')), { deletePolicy: { mode: 'delete' } });
    const real = ledger();
    let target: string | undefined;
    let theirs: LedgerEntry | undefined;
    // Another run (its lease lost or bypassed) records one UIDL, with other content, between
    // this run's lookup (or triage: the question the engine asks) and its own conditional write.
    const racing = new Proxy(real, {
      get(obj, prop) {
        if (prop === 'lookup' || prop === 'triage') {
          return async (mailboxId: string, uidls: readonly string[], options: LookupOptions) => {
            const found = prop === 'lookup' ? await obj.lookup(mailboxId, uidls) : await obj.triage(mailboxId, uidls, options);
            target = uidls[1]!;
            theirs = { ...otherRunsEntry(mailboxId, target), firstSeenAt: Date.now() };
            expect(await obj.record([theirs])).toEqual([{ uidl: target, ok: true }]);
            return found;
          };
        }
        const value: unknown = Reflect.get(obj, prop, obj);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(obj) : value;
      },
    }) as UidlLedger;
    const report = await run(mailbox, ports({ ledger: racing }));
    expect(target).toBeDefined();
    expect(report).toMatchObject({ stopReason: 'complete', fetched: 4, announced: 3, deleted: 3, ok: false, pendingAnnouncements: 0 });
    expect(report.failures).toEqual([
      { uidl: target, code: 'LEDGER_CONFLICT', phase: 'ledger', message: 'already recorded by another run with different content', retryable: false },
    ]);
    // Not announced by this run, not deleted: it is the other run's to announce.
    expect(uidlsOf(storedEntries(mailbox.id))).not.toContain(target);
    expect(uidlsOf(storedEntries(mailbox.id))).toHaveLength(3);
    expect((await dovecot.listMaildir(user)).length).toBe(1);
    // The other run's entry is kept as it wrote it.
    const item = await rawMessageItem(mailbox.id, target!);
    expect(item?.['status']?.S).toBe('stored');
    expect(item?.['sha256']?.S).toBe(theirs!.sha256);
  });

  it('EventBridge failing some entries on every attempt: those stay stored-not-announced and undeleted; the next run announces them with the same ids', async () => {
    const { mailbox, user } = await newUser(Array.from({ length: 7 }, (_, i) => testMessage(i, 'aws-partial')), { deletePolicy: { mode: 'delete' } });
    const uidls = await serverUidls(mailbox);
    const failing = new Set([uidls[1]!, uidls[4]!]);
    setEntryFault((_entry, detail) =>
      detail.mailboxId === mailbox.id && failing.has(String(detail.uidl)) ? { ErrorCode: 'InternalFailure', ErrorMessage: 'Internal failure (scripted).' } : undefined);
    const r1 = await run(mailbox, ports());
    expect(r1).toMatchObject({ stopReason: 'complete', fetched: 7, announced: 5, deleted: 5, pendingAnnouncements: 2, ok: false });
    expect(r1.failures.map((f) => [f.uidl, f.code]).sort()).toEqual([...failing].sort().map((u) => [u, 'EVENTS_FAILED']));
    expect(r1.failures.every((f) => f.retryable && /InternalFailure/.test(f.message))).toBe(true);
    // The sink tried each failing entry more than once (its own retries), always with the same id.
    const refusedIds = new Map<string, Set<string>>();
    for (const e of storedEntries(mailbox.id, refused)) {
      const d = detailOf(e);
      refusedIds.set(String(d.uidl), (refusedIds.get(String(d.uidl)) ?? new Set()).add(String(d.id)));
    }
    expect([...refusedIds.keys()].sort()).toEqual([...failing].sort());
    for (const u of failing) expect(storedEntries(mailbox.id, refused).filter((e) => detailOf(e).uidl === u).length).toBeGreaterThan(1);
    for (const ids of refusedIds.values()) expect(ids.size).toBe(1);
    const pending = await ledger().pending(mailbox.id);
    expect(pending.map((e) => e.uidl).sort()).toEqual([...failing].sort());
    expect(pending.every((e) => e.status === 'stored')).toBe(true);
    expect((await dovecot.listMaildir(user)).length).toBe(2);
    // Stored, though: both objects are in S3.
    expect(await objectKeys(mailbox.id)).toHaveLength(7);

    setEntryFault(undefined);
    clearAccepted();
    const r2 = await run(mailbox, ports());
    expect(r2).toMatchObject({ stopReason: 'complete', ok: true, fetched: 0, alreadyKnown: 2, reannounced: 2, announced: 2, deleted: 2, pendingAnnouncements: 0 });
    const again = storedEntries(mailbox.id);
    expect(uidlsOf(again)).toEqual([...failing].sort());
    for (const e of again) {
      const d = detailOf(e);
      expect(refusedIds.get(String(d.uidl))).toEqual(new Set([String(d.id)]));
      expect(validateEventEnvelope(delivered(e))).toEqual([]);
    }
    expect(await ledger().pending(mailbox.id)).toEqual([]);
    expect(await dovecot.listMaildir(user)).toEqual([]);
  });

  it('EventBridge throttling: the requests are retried and every message is announced', async () => {
    const { mailbox, user } = await newUser(Array.from({ length: 12 }, (_, i) => testMessage(i, 'aws-throttle')), { deletePolicy: { mode: 'delete' } });
    const before = aws.requestsFor(PUT_EVENTS).length;
    aws.failNext(3, { kind: 'throttle' }, PUT_EVENTS);
    const report = await run(mailbox, ports());
    expect(report).toMatchObject({ stopReason: 'complete', ok: true, fetched: 12, announced: 12, deleted: 12, pendingAnnouncements: 0 });
    // Two batches of events and the summary, plus the three throttled requests.
    expect(aws.requestsFor(PUT_EVENTS).length - before).toBeGreaterThanOrEqual(3 + 3);
    const stored = storedEntries(mailbox.id);
    expect(stored).toHaveLength(12);
    expect(new Set(stored.map((e) => detailOf(e).id)).size).toBe(12);
    expect(await dovecot.listMaildir(user)).toEqual([]);
  });
});

describe('OAuth2 mailbox (XOAUTH2 against Dovecot, tokens from the loopback token server)', () => {
  const CLIENT = { clientId: 'drain-aws-client', clientSecret: 'drain-aws-client-secret' };
  const REFRESH_TOKEN = 'drain-aws-refresh-token';
  let tokens: OAuth2TokenServer;
  beforeAll(async () => {
    tokens = await startTokenServer({ clients: [CLIENT], refreshTokens: [REFRESH_TOKEN] });
  });
  afterAll(async () => {
    await tokens?.close();
  });

  it('a cached token the server refuses is refreshed once (forceRefresh) and the login retried; a second refusal ends the run', async () => {
    const user = nextUserName();
    await dovecot.addUser(user, `unused-${randomBytes(6).toString('hex')}`);
    await dovecot.deliverMany(user, [testMessage(1, 'oauth'), testMessage(2, 'oauth')]);
    const secretId = `popdrain/${user}-oauth`;
    aws.putSecret(secretId, JSON.stringify({ oauth2: { tokenEndpoint: tokens.url, ...CLIENT, refreshToken: REFRESH_TOKEN } }));
    const mailbox = dovecotMailbox(dovecot, user, { secret: { type: 'secrets-manager', secretId }, mechanism: 'XOAUTH2' });
    // Dovecot's introspection learns each token the token server issues (as a real IdP would).
    let register = true;
    const issuing: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      const token = tokens.issued.at(-1);
      if (register && token !== undefined) dovecot.addOAuthToken(user, token);
      return response;
    };
    const credentials = new SecretsManagerCredentials({ client: smClient, fetch: issuing });
    const secretReads = (): number => aws.requestsFor(GET_SECRET_VALUE).filter((r) => r.body.SecretId === secretId).length;

    const first = await run(mailbox, ports({ credentials }));
    expect(first).toMatchObject({ stopReason: 'complete', ok: true, fetched: 2 });
    expect(tokens.issued).toHaveLength(1);
    expect(secretReads()).toBe(1);

    // The server stops accepting the cached token (revoked, or expired early).
    dovecot.revokeOAuthToken(tokens.issued[0]!);
    await dovecot.deliver(user, testMessage(3, 'oauth'));
    const logger = recordingLogger();
    const second = await run(mailbox, ports({ credentials, logger }));
    expect(second).toMatchObject({ stopReason: 'complete', ok: true, fetched: 1, alreadyKnown: 2 });
    expect(logger.messages).toContain('token refused; refreshing it once');
    expect(tokens.issued).toHaveLength(2);
    // forceRefresh read the secret again (an operator may have replaced it) and got a new token.
    expect(secretReads()).toBe(2);

    // Refused again after the refresh: the run ends as auth-failed, after exactly one refresh.
    dovecot.revokeOAuthToken(tokens.issued[1]!);
    register = false;
    const third = await run(mailbox, ports({ credentials }));
    expect(third).toMatchObject({ stopReason: 'auth-failed', ok: false, fetched: 0 });
    expect(third.error?.code).toBe('AUTH_FAILED');
    expect(tokens.issued).toHaveLength(3);
    expect(JSON.stringify(third)).not.toContain(tokens.issued[2]!);
  });
});

// -------------------------------------------------------------------------------------------

/** What another run recorded for `uidl`: a stored entry with other content. */
function otherRunsEntry(mailboxId: string, uidl: string): LedgerEntry {
  const id = storedEventId(mailboxId, uidl);
  const theirSha = 'f'.repeat(64);
  const time = new Date().toISOString();
  return {
    mailboxId,
    uidl,
    status: 'stored',
    key: messageKey(mailboxId, uidl),
    sha256: theirSha,
    size: 99,
    firstSeenAt: Date.now(),
    event: {
      id,
      detailType: 'Email Stored',
      time,
      detail: {
        schemaVersion: 1,
        id,
        mailboxId,
        uidl,
        storage: { type: 's3', bucket: BUCKET, key: `${DEFAULT_S3_PREFIX}${messageKey(mailboxId, uidl)}` },
        size: 99,
        sha256: theirSha,
        storedAt: time,
        metadata: { attachments: [] },
      },
    },
  };
}
