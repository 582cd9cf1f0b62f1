// The file store's per-message stream on real files: memory spool, batched writes, writevFully.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, open, readFile, rm, stat, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writevFully } from '../../lib/adapters/local/durable-fs.js';
import { FILE_WRITE_BATCH_BYTES, FileWritable } from '../../lib/adapters/local/file-writable.js';

const CHUNK = 16 * 1024;

let dir: string;
let handles: FileHandle[];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'popdrain-writable-'));
  handles = [];
});
afterEach(async () => {
  for (const h of handles) await h.close().catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
});

function writableAt(path: string, memoryLimit: number): { stream: FileWritable; opens: () => number } {
  let handle: Promise<FileHandle> | undefined;
  let opens = 0;
  const file = (): Promise<FileHandle> => {
    handle ??= open(path, 'wx').then((h) => {
      opens += 1;
      handles.push(h);
      return h;
    });
    return handle;
  };
  return { stream: new FileWritable(file, memoryLimit), opens: () => opens };
}

async function writeAll(stream: FileWritable, chunks: Buffer[]): Promise<void> {
  for (const c of chunks) {
    if (!stream.write(c)) await new Promise((r) => stream.once('drain', r));
  }
}

describe('FileWritable', () => {
  it('writes a streamed message to the file in batches, the last one at its end, byte for byte', async () => {
    const path = join(dir, 'big.part');
    const { stream } = writableAt(path, 0);
    const chunks = Array.from({ length: Math.ceil((2.5 * FILE_WRITE_BATCH_BYTES) / CHUNK) }, () => randomBytes(CHUNK));
    // Less than one batch: received, nothing in the file yet.
    const firstBatch = Math.floor(FILE_WRITE_BATCH_BYTES / CHUNK) - 1;
    await writeAll(stream, chunks.slice(0, firstBatch));
    await new Promise((r) => setImmediate(r));
    expect(stream.bytesWritten).toBe(0);
    expect(stream.bytesReceived).toBe(firstBatch * CHUNK);
    // Past two batches: whole batches in the file, in order.
    await writeAll(stream, chunks.slice(firstBatch));
    await new Promise((r) => setTimeout(r, 50));
    expect(stream.bytesWritten).toBeGreaterThanOrEqual(FILE_WRITE_BATCH_BYTES);
    expect((await stat(path)).size).toBe(stream.bytesWritten);
    stream.end();
    await finished(stream);
    expect(stream.bytesWritten).toBe(chunks.length * CHUNK);
    expect(stream.bytesReceived).toBe(chunks.length * CHUNK);
    expect(stream.takeHeldForCommit()).toBeUndefined();
    await stream.spill(); // nothing left to write
    expect(stream.bytesWritten).toBe(chunks.length * CHUNK);
    expect((await readFile(path)).equals(Buffer.concat(chunks))).toBe(true);
  });

  it('holds a message within the memory limit without creating the file', async () => {
    const path = join(dir, 'small.part');
    const { stream, opens } = writableAt(path, 4 * CHUNK);
    const chunks = [randomBytes(CHUNK), randomBytes(CHUNK), randomBytes(100)];
    await writeAll(stream, chunks);
    stream.end();
    await finished(stream);
    expect(opens()).toBe(0);
    expect(existsSync(path)).toBe(false);
    const held = stream.takeHeldForCommit();
    expect(Buffer.concat(held ?? []).equals(Buffer.concat(chunks))).toBe(true);
  });

  it('creates the file when a message outgrows the memory limit, and writes it all by its end', async () => {
    const path = join(dir, 'over.part');
    const { stream, opens } = writableAt(path, 2 * CHUNK);
    const chunks = [randomBytes(CHUNK), randomBytes(CHUNK), randomBytes(CHUNK)];
    await writeAll(stream, chunks);
    stream.end();
    await finished(stream);
    expect(opens()).toBe(1);
    expect(stream.bytesWritten).toBe(3 * CHUNK);
    expect(stream.takeHeldForCommit()).toBeUndefined();
    expect((await readFile(path)).equals(Buffer.concat(chunks))).toBe(true);
  });

  it('fails the stream when the file cannot be created', async () => {
    const path = join(dir, 'missing-folder', 'x.part');
    const { stream } = writableAt(path, 0);
    stream.on('error', () => undefined);
    const chunks = Array.from({ length: Math.ceil(FILE_WRITE_BATCH_BYTES / CHUNK) + 1 }, () => randomBytes(CHUNK));
    for (const c of chunks) stream.write(c);
    stream.end();
    await expect(finished(stream)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('writevFully', () => {
  it('writes many buffers in order at the current position', async () => {
    const path = join(dir, 'v');
    const h = await open(path, 'w');
    handles.push(h);
    const parts = [Buffer.from('abc'), Buffer.alloc(0), randomBytes(70_000), Buffer.from('z')];
    expect(await writevFully(h, parts)).toBe(70_004);
    expect(await writevFully(h, [Buffer.from('tail')])).toBe(4);
    expect((await readFile(path)).equals(Buffer.concat([...parts, Buffer.from('tail')]))).toBe(true);
    expect((await stat(path)).size).toBe(70_008);
  });

  it('continues after short writes from where the kernel stopped, and fails on a write of nothing', async () => {
    // A file handle that takes at most 5 bytes per call: no real file does this on demand.
    const taken: Buffer[] = [];
    let zeroAfter = Infinity;
    const shortWriter = {
      writev: async (buffers: Buffer[]) => {
        const all = Buffer.concat(buffers);
        const n = taken.length >= zeroAfter ? 0 : Math.min(5, all.length);
        taken.push(all.subarray(0, n));
        return { bytesWritten: n, buffers };
      },
    } as unknown as FileHandle;
    const parts = [Buffer.from('hello '), Buffer.from('wor'), Buffer.from('ld, and more')];
    expect(await writevFully(shortWriter, parts)).toBe(21);
    expect(Buffer.concat(taken).toString()).toBe('hello world, and more');
    taken.length = 0;
    zeroAfter = 2;
    await expect(writevFully(shortWriter, parts)).rejects.toMatchObject({ code: 'ENOSPC' });
  });
});

describe('FileWritable batches in flight', () => {
  it('counts every byte it took, whether held, being written or written', async () => {
    const path = join(dir, 'count.part');
    const { stream } = writableAt(path, 0);
    const chunks = Array.from({ length: Math.ceil((3 * FILE_WRITE_BATCH_BYTES) / CHUNK) }, () => randomBytes(CHUNK));
    let taken = 0;
    let under = 0;
    for (const c of chunks) {
      const more = stream.write(c);
      // What the stream took is what it counts, plus what waits in its own buffer.
      taken += c.length;
      if (stream.bytesReceived + stream.writableLength < taken) under += 1;
      if (!more) await new Promise((r) => stream.once('drain', r));
    }
    stream.end();
    await finished(stream);
    expect(under).toBe(0);
    expect(stream.bytesReceived).toBe(taken);
    expect((await readFile(path)).equals(Buffer.concat(chunks))).toBe(true);
  });
});
