// Two drainer Lambdas (each its own process, as two execution environments) and two mailboxes
// that share one Secrets Manager secret holding a rotating OAuth2 refresh token, drained at the
// same time against Dovecot, with the token endpoint revoking a refresh token once redeemed.
// The claim in the secret (a compare-and-swap on AWSCURRENT, lib/adapters/aws/secret-version-
// cas.ts, modelled by the JSON endpoint's version stages) lets exactly one process redeem each
// refresh token: the other waits for the rotated one. Without it both would present the first.
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REDEMPTION_CLAIM_FIELD } from '../../lib/adapters/aws/refresh-token-redemption.js';
import type { DrainReport } from '../../lib/drain/report.js';
import { UPDATE_SECRET_VERSION_STAGE } from '../../testkit/aws/json-endpoint.js';
import { testMessage } from '../../testkit/fixtures/drain-fixtures.js';
import { startInstances, type LambdaInstance } from '../../testkit/lambda/instance.js';
import { drainReports } from '../../testkit/lambda/output.js';
import { runEventSource } from '../../testkit/lambda/sqs-event-source.js';
import { startLambdaStage, type LambdaStage } from '../../testkit/lambda/stage.js';
import { startTokenServer } from '../../testkit/oauth2/token-server.js';

let stage: LambdaStage;
const instances: LambdaInstance[] = [];

beforeAll(async () => {
  stage = await startLambdaStage();
}, 120_000);

afterAll(async () => {
  await Promise.all(instances.map((i) => i.stop()));
  await stage?.stop();
});

describe('a rotating refresh token shared by two mailboxes, redeemed by two execution environments', () => {
  it('each refresh token is redeemed once; the secret ends with the last one, no claim, one AWSCURRENT', async () => {
    const client = { clientId: 'rotation-client', clientSecret: `rotation-secret-${randomBytes(6).toString('hex')}` };
    const first = `refresh-${randomBytes(12).toString('hex')}`;
    const tokens = await startTokenServer({ clients: [client], refreshTokens: [first], rotate: true, revokeOnRotate: true });
    const shared = await stage.addMailbox('shared-oauth', [testMessage(0, 'rot', 300), testMessage(1, 'rot', 300)]);
    // The token endpoint, slowed so the two redemptions would overlap, telling Dovecot about each
    // access token it issues (as a real identity provider's introspection would know them).
    const idp = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const headers: Record<string, string> = { 'content-type': String(req.headers['content-type'] ?? '') };
        if (req.headers.authorization !== undefined) headers.authorization = req.headers.authorization;
        setTimeout(() => {
          fetch(tokens.url, { method: 'POST', headers, body: Buffer.concat(chunks) })
            .then(async (upstream) => {
              const text = await upstream.text();
              const issued = (JSON.parse(text) as { access_token?: string }).access_token;
              if (issued !== undefined) stage.dovecot.addOAuthToken(shared.user, issued);
              res.writeHead(upstream.status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
              res.end(text);
            })
            .catch(() => res.destroy());
        }, 400);
      });
    });
    await new Promise<void>((resolve) => idp.listen(0, '127.0.0.1', () => resolve()));
    try {
      const tokenEndpoint = `http://127.0.0.1:${(idp.address() as AddressInfo).port}/tenant/oauth2/v2.0/token`;
      stage.aws.putSecret(shared.secretId, JSON.stringify({ note: 'kept', oauth2: { tokenEndpoint, ...client, refreshToken: first } }));
      const ids = ['rot-x', 'rot-y'];
      const config = join(stage.dir, 'rotation.json');
      await writeFile(
        config,
        JSON.stringify({
          version: 1,
          defaults: { port: stage.dovecot.ports.pop3s, tls: 'implicit', tlsOptions: { caPem: stage.dovecot.pki.caCertPem, servername: 'localhost' }, deletePolicy: 'keep' },
          mailboxes: ids.map((id) => ({ id, host: stage.dovecot.host, user: shared.user, auth: { secret: shared.secretId, mechanism: 'XOAUTH2', rotatingRefreshToken: true } })),
        }),
      );
      const queue = await stage.sqs.createFifoQueue('rotation');
      const sqs = stage.sqs.client();
      for (const id of ids) {
        await sqs.send(new SendMessageCommand({ QueueUrl: queue.url, MessageGroupId: id, MessageDeduplicationId: id, MessageBody: JSON.stringify({ mailboxId: id, tick: new Date().toISOString() }) }));
      }
      const drainers = await startInstances(2, {
        namePrefix: 'drainer-rotation',
        handler: 'drainer',
        env: stage.env({ POPDRAIN_CONFIG_PATH: config, POPDRAIN_QUEUE_URL: queue.url }),
      });
      instances.push(...drainers);
      const done = await runEventSource({ sqs, queueUrl: queue.url, queueArn: queue.arn, instances: drainers, remainingMs: 15 * 60_000 });
      expect(done).toHaveLength(2);
      // Both ran in their own environment, at the same time.
      expect(new Set(done.map((d) => d.instance))).toHaveProperty('size', 2);
      const reports = done.flatMap((d) => drainReports(d.invocation.output)) as DrainReport[];
      expect(reports.map((r) => [r.mailboxId, r.stopReason, r.fetched]).sort()).toEqual([
        ['rot-x', 'complete', 2],
        ['rot-y', 'complete', 2],
      ]);

      // Each refresh token presented once: the first, then the one the first redemption issued.
      const presented = tokens.requests.filter((r) => r.grantType === 'refresh_token').map((r) => r.form.refresh_token);
      expect(presented).toHaveLength(2);
      expect(new Set(presented).size).toBe(2);
      expect(presented[0]).toBe(first);
      const saved = JSON.parse(stage.aws.secretString(shared.secretId)!) as Record<string, unknown> & { oauth2: { refreshToken: string } };
      expect(tokens.validRefreshTokens()).toEqual([saved.oauth2.refreshToken]);
      expect(presented).not.toContain(saved.oauth2.refreshToken);
      expect(saved.note).toBe('kept');
      expect(saved[REDEMPTION_CLAIM_FIELD]).toBeUndefined();
      // AWSCURRENT on one version; every move went through the compare-and-swap.
      const stages = stage.aws.secretStages(shared.secretId);
      expect(stages.filter((v) => v.stages.includes('AWSCURRENT'))).toHaveLength(1);
      const moves = stage.aws.requestsFor(UPDATE_SECRET_VERSION_STAGE);
      expect(moves.length).toBeGreaterThanOrEqual(4);
      for (const m of moves) expect(typeof m.body.RemoveFromVersionId).toBe('string');
    } finally {
      await new Promise<void>((resolve) => {
        idp.closeAllConnections();
        idp.close(() => resolve());
      });
      await tokens.close();
    }
  }, 180_000);
});
