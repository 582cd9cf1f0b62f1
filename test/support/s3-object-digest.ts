// sha256 and size of an S3 object, streamed (so a large one is never held whole).
import { createHash } from 'node:crypto';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';

export async function s3ObjectDigest(client: S3Client, bucket: string, key: string): Promise<{ sha256: string; size: number }> {
  const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of out.Body as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { sha256: hash.digest('hex'), size };
}
