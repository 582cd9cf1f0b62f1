/**
 * A Maildir as the message store (`popdrain drain --maildir DIR`), for mail readers: each
 * message is delivered the way local delivery does it — line ends as LF, written to `tmp/`,
 * fsynced, then linked into `new/` — under a name derived from the store key, so a retry after
 * a crash finds it (in `new/`, or in `cur/` once a reader has seen it) instead of delivering it
 * twice. The bytes differ from the served ones only in CRLF → LF; the event's sha256 and size
 * are of the served bytes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { link, mkdir, open, readdir, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { finished } from 'node:stream/promises';
import { DrainError } from '../../drain/errors.js';
import type { MessageStore, MessageSummary, MessageWriter, StoredObject, StoreRef } from '../../drain/ports.js';
import { DIR_MODE, errnoCode, FILE_MODE, fsyncDirectory, isRetryableFsError, realMkdirError } from './durable-fs.js';
import { fsFailureText } from './fs-failure-text.js';

/** CRLF → LF as the bytes pass (a CR split from its LF across chunks included). */
class CrlfToLf extends Transform {
  /** Bytes given (before conversion), to check the engine's summary against. */
  bytesIn = 0;
  private pendingCr = false;
  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.bytesIn += chunk.length;
    let start = 0;
    const parts: Buffer[] = [];
    if (this.pendingCr) {
      this.pendingCr = false;
      if (chunk[0] !== 0x0a) parts.push(Buffer.from('\r'));
    }
    let i = chunk.indexOf(0x0d);
    while (i !== -1) {
      if (i === chunk.length - 1) {
        parts.push(chunk.subarray(start, i));
        this.pendingCr = true;
        start = chunk.length;
        break;
      }
      if (chunk[i + 1] === 0x0a) {
        parts.push(chunk.subarray(start, i));
        start = i + 1;
      }
      i = chunk.indexOf(0x0d, i + 1);
    }
    if (start < chunk.length) parts.push(chunk.subarray(start));
    callback(null, parts.length === 1 ? parts[0] : Buffer.concat(parts));
  }
  override _flush(callback: TransformCallback): void {
    callback(null, this.pendingCr ? Buffer.from('\r') : undefined);
  }
}

function misuse(message: string): DrainError {
  return new DrainError('STORE_FAILED', message, { phase: 'store', retryable: false });
}

async function digestOf(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Whether two files hold the same bytes. */
async function sameContent(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([digestOf(a), digestOf(b)]);
  return x === y;
}

export interface MaildirStoreOptions {
  /** The Maildir (created with cur/, new/, tmp/ when missing). */
  dir: string;
}

function storeError(error: unknown, what: string): DrainError {
  return new DrainError('STORE_FAILED', `${what}: ${fsFailureText(error)}`, {
    phase: 'store',
    retryable: isRetryableFsError(error),
    cause: error,
  });
}

export class MaildirStore implements MessageStore {
  private readonly dir: string;
  private ready: Promise<void> | undefined;
  /** Messages a reader moved to cur/: their name → their file name there (`<name>:2,<flags>`). */
  private seenInCur: Map<string, string> | undefined;
  private counter = 0;

  constructor(options: MaildirStoreOptions) {
    this.dir = options.dir;
  }

  /** The file name of a key (`<mailbox>/<digest>.eml` → `<digest>.popdrain`), unique per message. */
  private nameFor(key: string): string {
    return `${basename(key, '.eml')}.popdrain`;
  }

  refFor(key: string): StoreRef {
    return { type: 'file', path: join(this.dir, 'new', this.nameFor(key)) };
  }

  private prepare(): Promise<void> {
    this.ready ??= (async () => {
      for (const sub of ['tmp', 'new', 'cur']) {
        const dir = join(this.dir, sub);
        await mkdir(dir, { recursive: true, mode: DIR_MODE }).catch((error: unknown) => realMkdirError(dir, error));
      }
      // A reader moves delivered mail to cur/ as `<name>:2,<flags>`: remember what is there.
      this.seenInCur = new Map((await readdir(join(this.dir, 'cur'))).map((n) => [n.split(':')[0]!, n]));
    })().catch((error: unknown) => {
      this.ready = undefined;
      throw storeError(error, `cannot prepare the Maildir ${this.dir}`);
    });
    return this.ready;
  }

  async open(key: string): Promise<MessageWriter> {
    await this.prepare();
    const name = this.nameFor(key);
    this.counter += 1;
    const tmp = join(this.dir, 'tmp', `${Date.now()}.P${process.pid}Q${this.counter}R${randomBytes(4).toString('hex')}.${hostname().replace(/[/:]/g, '_')}`);
    const file = createWriteStream(tmp, { flags: 'wx', mode: FILE_MODE });
    const convert = new CrlfToLf();
    convert.pipe(file);
    let done = false;
    const abort = async (): Promise<void> => {
      if (done) return;
      done = true;
      convert.destroy();
      file.destroy();
      await unlink(tmp).catch(() => undefined);
    };
    return {
      stream: convert,
      abort,
      commit: async (summary: MessageSummary): Promise<StoredObject> => {
        try {
          if (done) throw misuse(`cannot commit to ${this.dir}: the writer was aborted or committed`);
          if (!convert.writableEnded) throw misuse(`cannot commit to ${this.dir}: the message stream was not ended`);
          await finished(file);
          if (convert.bytesIn !== summary.size) {
            throw misuse(`cannot commit to ${this.dir}: ${convert.bytesIn} bytes were written but the summary says ${summary.size}`);
          }
          const handle = await open(tmp, 'r');
          try {
            await handle.sync();
          } finally {
            await handle.close();
          }
          const target = join(this.dir, 'new', name);
          const inCur = this.seenInCur?.get(name);
          let existing = inCur === undefined ? undefined : join(this.dir, 'cur', inCur);
          if (existing === undefined) {
            try {
              await link(tmp, target);
            } catch (error) {
              if (errnoCode(error) !== 'EEXIST') throw error;
              existing = target;
            }
          }
          if (existing !== undefined && !(await sameContent(tmp, existing))) {
            throw new DrainError('STORE_CONFLICT', `${existing} already holds a different message; it is kept`, { phase: 'store', retryable: false });
          }
          await unlink(tmp);
          done = true;
          if (existing === undefined) await fsyncDirectory(join(this.dir, 'new'));
          return { ref: { type: 'file', path: target }, existed: existing !== undefined };
        } catch (error) {
          await abort();
          throw error instanceof DrainError ? error : storeError(error, `cannot deliver to ${this.dir}`);
        }
      },
    };
  }
}
