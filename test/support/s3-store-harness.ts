// The shared set-up of the S3MessageStore tests (aws-s3-store*.test.ts): a spool folder fresh for
// every test, a writer fed as the engine feeds it, readers of what S3 holds and of the requests a
// client sent, and the spool files this process still holds open.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterEach, beforeEach } from 'vitest';
import type { MessageWriter } from '../../lib/drain/ports.js';
import { s3ObjectDigest } from './s3-object-digest.js';

export const BUCKET = 'popdrain-messages';
export const MAILBOX = 'mbx-1';
export const MiB = 1024 * 1024;

export const WRITE_CHUNK_BYTES = 64 * 1024;
export const ENGINE_METADATA = { 'popdrain-mailbox': MAILBOX, 'popdrain-uidl-digest': 'abc123' };

export interface Written {
  sha256: string;
  size: number;
}

/** Streams `size` random bytes into the writer as the engine would, hashing them on the way. */
export async function writeMessage(writer: MessageWriter, size: number): Promise<Written> {
  const hash = createHash('sha256');
  async function* chunks(): AsyncGenerator<Buffer> {
    for (let done = 0; done < size; ) {
      const chunk = randomBytes(Math.min(WRITE_CHUNK_BYTES, size - done));
      hash.update(chunk);
      done += chunk.length;
      yield chunk;
    }
  }
  await pipeline(Readable.from(chunks()), writer.stream);
  return { sha256: hash.digest('hex'), size };
}

export function storedSha256(client: S3Client, key: string): Promise<{ sha256: string; size: number }> {
  return s3ObjectDigest(client, BUCKET, key);
}

/** Records each command's name and the headers of each HTTP request it sends (never bodies). */
export function recordCommands(client: S3Client): Array<{ command: string; headers: Record<string, string> }> {
  const seen: Array<{ command: string; headers: Record<string, string> }> = [];
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const request = args.request as { headers?: Record<string, string> };
      seen.push({ command: String(context.commandName), headers: { ...request.headers } });
      return next(args);
    },
    { step: 'finalizeRequest', name: 'testRecordCommands' },
  );
  return seen;
}

/** This test's spool folder (a live binding, set before each test). */
export let spoolDir: string;

/**
 * Spool files this process holds open (Linux): they are unlinked at once, so a killed process
 * leaves no mail behind; /proc/self/fd still shows them as "<path> (deleted)".
 */
export async function openSpools(): Promise<string[]> {
  const found: string[] = [];
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target.startsWith(spoolDir) && target.endsWith(' (deleted)')) found.push(`/proc/self/fd/${fd}`);
  }
  return found;
}

/** Registers the hooks: a fresh spool folder for every test, removed after it. */
export function useSpoolDirPerTest(): void {
  beforeEach(async () => {
    spoolDir = await mkdtemp(join(tmpdir(), 'popdrain-spool-test-'));
  });

  afterEach(async () => {
    await rm(spoolDir, { recursive: true, force: true });
  });
}
