/**
 * The Lambda bundle as the construct's afterBundling hook builds it (splitBundleArgs, the esbuild
 * CLI): index.mjs and chunks/. What a run that stores nothing and sends no continuation never
 * uses (the SQS client, the mail libraries) is in chunks that index.mjs does not import
 * statically; every chunk links; the drainer, imported in a fresh process with a Lambda-like
 * environment, answers a first invocation without reading those chunks.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { splitBundleArgs } from '../../infra/constructs/lambda-bundle.js';
import { readAtStart } from '../../bench/bundle-files.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'popdrain-lambda-bundle-'));
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'esbuild', 'bin', 'esbuild'), ...splitBundleArgs(join(ROOT, 'lambdas', 'drainer.ts'), dir, ROOT, 'node20')], {
    stdio: 'pipe',
  });
  copyFileSync(join(ROOT, 'config', 'mailboxes.json'), join(dir, 'mailboxes.json'));
}, 120_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the drainer bundle, split', () => {
  it('keeps the SQS client and the mail libraries out of what a cold start reads', () => {
    const chunks = readdirSync(join(dir, 'chunks')).map((f) => join(dir, 'chunks', f));
    const atStart = readAtStart(join(dir, 'index.mjs'));
    const deferred = chunks.filter((f) => !atStart.has(f)).map((f) => readFileSync(f, 'utf8'));
    const startText = [...atStart].map((f) => readFileSync(f, 'utf8')).join('\n');
    // Strings only the SQS client and mailsplit hold.
    for (const marker of ['SendMessageBatchRequestEntry', 'ChangeMessageVisibilityBatch', 'Content-Transfer-Encoding']) {
      expect(startText, marker).not.toContain(marker);
      expect(deferred.some((text) => text.includes(marker)), marker).toBe(true);
    }
    expect(existsSync(join(dir, 'index.mjs.map'))).toBe(false);
  });

  it('links every chunk, and answers a first invocation without reading the deferred ones', () => {
    const chunks = readdirSync(join(dir, 'chunks')).map((f) => join(dir, 'chunks', f));
    const script = `
      const module = await import('./index.mjs');
      const body = JSON.stringify({ mailboxId: 'not-configured', tick: new Date().toISOString() });
      const context = { awsRequestId: 'r', functionName: 'drainer', functionVersion: '1', invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:drainer',
        memoryLimitInMB: '1024', logGroupName: 'g', logStreamName: 's', callbackWaitsForEmptyEventLoop: true, getRemainingTimeInMillis: () => 600000 };
      const result = await module.handler({ Records: [{ messageId: 'm', receiptHandle: 'h', body, attributes: { ApproximateReceiveCount: '1' }, messageAttributes: {}, md5OfBody: '',
        eventSource: 'aws:sqs', eventSourceARN: 'arn:aws:sqs:us-east-1:000000000000:drain.fifo', awsRegion: 'us-east-1' }] }, context);
      process.stderr.write('\\nRESULT ' + JSON.stringify(result) + '\\n');
      for (const chunk of ${JSON.stringify(chunks)}) await import(chunk);
      process.stderr.write('LINKED\\n');`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: dir,
      encoding: 'utf8',
      env: {
        PATH: process.env.PATH ?? '',
        LAMBDA_TASK_ROOT: dir,
        AWS_REGION: 'us-east-1',
        AWS_ACCESS_KEY_ID: 'AKIDBUNDLETEST',
        AWS_SECRET_ACCESS_KEY: 'bundle-test',
        AWS_EC2_METADATA_DISABLED: 'true',
        AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
        POPDRAIN_CONFIG_PATH: 'mailboxes.json',
        POPDRAIN_LEDGER_TABLE: 'ledger',
        POPDRAIN_BUCKET: 'bucket',
        POPDRAIN_EVENT_BUS: 'bus',
        POPDRAIN_QUEUE_URL: 'http://127.0.0.1:9/000000000000/drain.fifo',
      },
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('RESULT {"batchItemFailures":[]}');
    expect(r.stderr).toContain('LINKED');
    expect(`${r.stdout}${r.stderr}`).toContain('mailbox absent; dropping the request');
  });
});
