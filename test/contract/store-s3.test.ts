// The MessageStore contract against the S3 store on s3rver with the real S3Client.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { S3MessageStore } from '../../lib/adapters/aws/s3-store.js';
import type { StoreRef } from '../../lib/drain/ports.js';
import { startS3rver, type S3Standin } from '../../testkit/aws/standins.js';
import { describeStoreContract } from './store-contract.js';

const BUCKET = 'popdrain-store-contract';
let s3: S3Standin | undefined;
let client: S3Client | undefined;
let spoolDir = '';

describeStoreContract('S3MessageStore', {
  setup: async () => {
    s3 = await startS3rver();
    await s3.createBucket(BUCKET);
    client = s3.client();
    spoolDir = await mkdtemp(join(tmpdir(), 'popdrain-s3-contract-spool-'));
  },
  open: () => new S3MessageStore({ client: client!, bucket: BUCKET, spoolDir }),
  read: async (ref: StoreRef) => {
    if (ref.type !== 's3') throw new Error(`not an S3 ref: ${JSON.stringify(ref)}`);
    try {
      const out = await client!.send(new GetObjectCommand({ Bucket: ref.bucket, Key: ref.key }));
      return Buffer.from(await out.Body!.transformToByteArray());
    } catch (error) {
      if ((error as { name?: string }).name === 'NoSuchKey') return undefined;
      throw error;
    }
  },
  teardown: async () => {
    await s3?.stop();
    await rm(spoolDir, { recursive: true, force: true });
  },
  exclude: {
    // s3rver ignores If-None-Match, so it cannot answer a second upload with 412. The scripted
    // S3 endpoint in test/integration/aws-s3-store-scripted.test.ts shows both cases against S3's answers.
    existed: 's3rver ignores If-None-Match (see the scripted-endpoint tests in aws-s3-store-scripted.test.ts)',
    conflict: 's3rver ignores If-None-Match (see the scripted-endpoint tests in aws-s3-store-scripted.test.ts)',
  },
});
