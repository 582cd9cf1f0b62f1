/**
 * The shared set-up of the local adapters' tests on real files (local-file-store.test.ts,
 * local-ledger.test.ts, local-events-and-factory.test.ts): a temp folder per test, ledgers and
 * sinks closed after it, and small helpers to write messages and read what is on disk.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect } from 'vitest';
import { DrainError } from '../../lib/drain/errors.js';
import type { MessageWriter } from '../../lib/drain/ports.js';
import { FileLedger, JsonlEventSink, type FileMessageStore } from '../../lib/adapters/local/index.js';
import { writeAll as writeAllInPieces } from '../contract/store-contract.js';

export const MAILBOX = 'box-1';
export const isRoot = process.getuid?.() === 0;

// Live binding: the test's own temp folder once beforeEach ran.
export let dir: string;
const opened: Array<{ close(): Promise<void> }> = [];

/** Registers the hooks: a fresh temp folder before each test; after it, what was opened closed and the folder removed. */
export function useTempDirPerTest(): void {
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'popdrain-local-'));
  });
  afterEach(async () => {
    for (const o of opened.splice(0)) await o.close();
    await chmod(dir, 0o700).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });
}

/** A ledger closed after the test (it keeps its logs open). */
export function ledgerAt(options: ConstructorParameters<typeof FileLedger>[0]): FileLedger {
  const ledger = new FileLedger(options);
  opened.push(ledger);
  return ledger;
}

export function sinkAt(options: ConstructorParameters<typeof JsonlEventSink>[0]): JsonlEventSink {
  const sink = new JsonlEventSink(options);
  opened.push(sink);
  return sink;
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Write `data` in pieces of `pieceSize`, honouring backpressure, and end the stream. */
export function writeAll(writer: MessageWriter, data: Buffer, pieceSize = 1000): Promise<void> {
  return writeAllInPieces(writer, data, pieceSize);
}

export async function storeMessage(store: FileMessageStore, key: string, data: Buffer) {
  const writer = await store.open(key, { mailboxId: MAILBOX, uidl: 'u' });
  await writeAll(writer, data);
  return writer.commit({ sha256: sha256(data), size: data.length, metadata: {} });
}

export function thrown(fn: () => unknown): DrainError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(DrainError);
    return error as DrainError;
  }
  throw new Error('expected a throw');
}

export async function namesIn(folder: string): Promise<string[]> {
  return (await readdir(folder)).sort();
}

/** A pid that no process has now: a child that already exited. */
export function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}
