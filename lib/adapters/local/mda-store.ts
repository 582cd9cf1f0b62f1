/**
 * A mail delivery agent as the message store (`popdrain drain --mda "procmail"`, as fetchmail's
 * `mda` and getmail's `MDA_external`): the command runs once per message, without a shell, with
 * the exact served bytes on its standard input; the message counts as stored when it exits 0
 * (the proof `--delete` waits for). Exit 75 (EX_TEMPFAIL, as procmail and maildrop use it) is a
 * failure worth retrying; any other is not.
 *
 * Delivery is at least once: a crash between the MDA's exit and the ledger's record delivers
 * the message again on the next run, and an MDA cannot say "already had it". So the command
 * gets POPDRAIN_EVENT_ID, POPDRAIN_SHA256, POPDRAIN_UIDL, POPDRAIN_MAILBOX_ID and
 * POPDRAIN_STORE_KEY in its environment to deduplicate by. A streamed message is spooled to a
 * private temporary file first (its sha256 is known only at the end); a message received whole
 * (`put`) is written from memory.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { DrainError } from '../../drain/errors.js';
import { storedEventId } from '../../drain/keys.js';
import type { MessageStore, MessageSummary, MessageWriter, StoredObject, StoreRef } from '../../drain/ports.js';
import { errnoCode, FILE_MODE } from './durable-fs.js';

/** A delivery that has not ended by then is killed and fails (retryable). */
export const MDA_TIMEOUT_MS = 5 * 60_000;
/** sysexits.h EX_TEMPFAIL: the MDA asks to be tried again later. */
export const EX_TEMPFAIL = 75;

export interface MdaStoreOptions {
  /** The command's argv (see lib/drain/shell-words.ts; `['/bin/sh', '-c', line]` for a shell). */
  argv: readonly string[];
  /** Where streamed messages are spooled (mode 0600). @default os.tmpdir() */
  spoolDir?: string;
  /** @default process.env (the POPDRAIN_* variables are added) */
  env?: NodeJS.ProcessEnv;
  /** @default MDA_TIMEOUT_MS */
  timeoutMs?: number;
}

interface Delivery {
  key: string;
  mailboxId: string;
  uidl: string;
  summary: MessageSummary;
}

function failed(message: string, retryable = false, cause?: unknown): DrainError {
  return new DrainError('STORE_FAILED', message, { phase: 'store', retryable, cause });
}

/** Counts and hashes the bytes on their way to the spool file. */
class Digesting extends Transform {
  bytes = 0;
  readonly hash = createHash('sha256');
  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    this.hash.update(chunk);
    callback(null, chunk);
  }
}

export class MdaStore implements MessageStore {
  private readonly argv: readonly string[];
  private readonly program: string;
  private readonly spoolDir: string;
  private readonly env: NodeJS.ProcessEnv;
  private readonly timeoutMs: number;

  constructor(options: MdaStoreOptions) {
    if (options.argv.length === 0 || options.argv[0] === '') throw new Error('MdaStore needs a command');
    this.argv = options.argv;
    this.program = basename(options.argv[0]!);
    this.spoolDir = options.spoolDir ?? tmpdir();
    this.env = options.env ?? process.env;
    this.timeoutMs = options.timeoutMs ?? MDA_TIMEOUT_MS;
  }

  refFor(key: string): StoreRef {
    return { type: 'mda', program: this.program, key };
  }

  async put(key: string, info: { mailboxId: string; uidl: string }, chunks: readonly Buffer[], summary: MessageSummary): Promise<StoredObject> {
    const hash = createHash('sha256');
    let size = 0;
    for (const c of chunks) {
      hash.update(c);
      size += c.length;
    }
    checkSummary(size, hash.digest('hex'), summary);
    return this.deliver({ key, ...info, summary }, () => Readable.from(chunks));
  }

  async open(key: string, info: { mailboxId: string; uidl: string }): Promise<MessageWriter> {
    const spool = join(this.spoolDir, `popdrain-mda-${process.pid}-${randomBytes(8).toString('hex')}.tmp`);
    const file = createWriteStream(spool, { flags: 'wx', mode: FILE_MODE });
    const digest = new Digesting();
    digest.pipe(file);
    let done = false;
    const abort = async (): Promise<void> => {
      if (done) return;
      done = true;
      digest.destroy();
      // The file may still be opening: unlink once it is closed, or the open would recreate it.
      const closed = file.closed ? Promise.resolve() : new Promise<void>((r) => file.once('close', () => r()));
      file.destroy();
      await closed;
      await unlink(spool).catch(() => undefined);
    };
    return {
      stream: digest,
      abort,
      commit: async (summary: MessageSummary): Promise<StoredObject> => {
        try {
          if (done) throw failed(`cannot deliver to ${this.program}: the writer was aborted or committed`);
          if (!digest.writableEnded) throw failed(`cannot deliver to ${this.program}: the message stream was not ended`);
          await finished(file);
          checkSummary(digest.bytes, digest.hash.digest('hex'), summary);
          const stored = await this.deliver({ key, ...info, summary }, () => createReadStream(spool));
          await abort();
          return stored;
        } catch (error) {
          await abort();
          throw error instanceof DrainError ? error : failed(`cannot spool a message for ${this.program}: ${errnoCode(error) ?? (error as Error).message}`, true, error);
        }
      },
    };
  }

  /** Runs the MDA with `bytes()` on its stdin; resolves once it exited 0. */
  private deliver(d: Delivery, bytes: () => Readable): Promise<StoredObject> {
    const [program, ...args] = this.argv;
    const env = {
      ...this.env,
      POPDRAIN_EVENT_ID: storedEventId(d.mailboxId, d.uidl),
      POPDRAIN_SHA256: d.summary.sha256,
      POPDRAIN_UIDL: d.uidl,
      POPDRAIN_MAILBOX_ID: d.mailboxId,
      POPDRAIN_STORE_KEY: d.key,
    };
    return new Promise((resolve, reject) => {
      const child = spawn(program!, args, { shell: false, stdio: ['pipe', 'ignore', 'inherit'], env });
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, this.timeoutMs);
      // An MDA may exit without reading everything (EPIPE): its exit status decides.
      pipeline(bytes(), child.stdin).catch(() => undefined);
      child.once('error', (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(failed(`the MDA (${this.program}) could not start: ${error.code ?? error.message}`, false, error));
      });
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        if (code === 0) return resolve({ ref: this.refFor(d.key), existed: false });
        if (timedOut) return reject(failed(`the MDA (${this.program}) took longer than ${this.timeoutMs} ms; killed`, true));
        const how = code === null ? `killed by ${signal}` : `exit code ${code}${code === EX_TEMPFAIL ? ' (temporary failure)' : ''}`;
        reject(failed(`the MDA (${this.program}) did not accept ${d.uidl}: ${how}`, code === EX_TEMPFAIL || code === null));
      });
    });
  }
}

function checkSummary(bytes: number, sha256: string, summary: MessageSummary): void {
  if (bytes !== summary.size) throw failed(`${bytes} bytes were written but the summary says ${summary.size}`);
  if (sha256 !== summary.sha256) throw failed('the bytes written do not have the sha256 the summary says');
}
