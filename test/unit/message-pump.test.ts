// pumpMessage: bytes, hash and size as they pass, backpressure from both sinks, and every way
// the source or the sink can fail.
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { pumpMessage } from '../../lib/drain/message-pump.js';

/** A Writable that keeps what it gets, taking `delayMs` per chunk, with a tiny buffer. */
function collector(delayMs = 0, highWaterMark = 1): Writable & { chunks: Buffer[]; bytes(): Buffer } {
  const chunks: Buffer[] = [];
  const w = new Writable({
    highWaterMark,
    write(chunk: Buffer, _enc, callback) {
      chunks.push(chunk);
      if (delayMs === 0) setImmediate(callback);
      else setTimeout(callback, delayMs);
    },
  });
  return Object.assign(w, { chunks, bytes: () => Buffer.concat(chunks) });
}

/** A source that yields `data` in pieces of `piece` bytes, one per turn of the event loop. */
function source(data: Buffer, piece = 1): Readable {
  let offset = 0;
  return new Readable({
    highWaterMark: 1,
    read() {
      setImmediate(() => {
        if (offset >= data.length) {
          this.push(null);
          return;
        }
        this.push(data.subarray(offset, offset + piece));
        offset += piece;
      });
    },
  });
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('pumpMessage', () => {
  it('passes every byte to the sink and the side stream, byte by byte, under backpressure from both', async () => {
    const data = randomBytes(3000);
    const sink = collector(0, 1);
    const side = collector(0, 1);
    const result = await pumpMessage(source(data, 1), sink, side);
    expect(result).toEqual({ sha256: sha(data), size: data.length });
    expect(sink.bytes().equals(data)).toBe(true);
    expect(side.bytes().equals(data)).toBe(true);
    expect(sink.writableFinished).toBe(true);
  });

  it('waits for a slow sink: it resolves only once the sink has finished', async () => {
    const data = randomBytes(200);
    const sink = collector(2, 1);
    const result = await pumpMessage(source(data, 50), sink, collector());
    expect(sink.writableFinished).toBe(true);
    expect(result.size).toBe(200);
  });

  it('drops a failing side stream and still delivers everything to the sink', async () => {
    const data = randomBytes(5000);
    const sink = collector();
    let seen = 0;
    const side = new Writable({
      highWaterMark: 1,
      write(chunk: Buffer, _enc, callback) {
        seen += chunk.length;
        // Fails while it holds the pump back (its buffer is full).
        setTimeout(() => callback(seen > 1000 ? new Error('metadata parser gave up') : null), 1);
      },
    });
    side.on('error', () => undefined);
    const result = await pumpMessage(source(data, 100), sink, side);
    expect(result).toEqual({ sha256: sha(data), size: data.length });
    expect(sink.bytes().equals(data)).toBe(true);
    expect(seen).toBeLessThan(data.length);
  });

  it('rejects with the source error and destroys the sink', async () => {
    const failing = new Readable({
      read() {
        this.push(Buffer.from('partial'));
        setImmediate(() => this.destroy(Object.assign(new Error('connection reset'), { code: 'CONNECTION_CLOSED' })));
      },
    });
    const sink = collector();
    await expect(pumpMessage(failing, sink, collector())).rejects.toMatchObject({ message: 'connection reset', code: 'CONNECTION_CLOSED' });
    expect(sink.destroyed).toBe(true);
  });

  it('rejects with the sink error and destroys the source', async () => {
    const src = source(randomBytes(1000), 10);
    const sink = new Writable({
      write(_chunk, _enc, callback) {
        callback(new Error('ENOSPC: no space left on device'));
      },
    });
    await expect(pumpMessage(src, sink, collector())).rejects.toThrow(/ENOSPC/);
    expect(src.destroyed).toBe(true);
  });

  it('rejects when the source is destroyed without an error before it ended', async () => {
    const src = new Readable({
      read() {
        this.push(Buffer.from('abc'));
        setImmediate(() => this.destroy());
      },
    });
    await expect(pumpMessage(src, collector(), collector())).rejects.toMatchObject({ code: 'ERR_STREAM_PREMATURE_CLOSE' });
  });

  it('rejects at once for a source that already failed', async () => {
    const src = new Readable({ read() {} });
    src.on('error', () => undefined);
    src.destroy(new Error('gone before we started'));
    await new Promise((r) => setImmediate(r));
    await expect(pumpMessage(src, collector(), collector())).rejects.toThrow('gone before we started');
  });

  it('handles an empty message', async () => {
    const sink = collector();
    expect(await pumpMessage(Readable.from([]), sink, collector())).toEqual({ sha256: sha(Buffer.alloc(0)), size: 0 });
    expect(sink.writableFinished).toBe(true);
  });
});
