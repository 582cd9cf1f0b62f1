/**
 * The local ledger's index (ledger-index-file.ts) on real files: a load through the index gives
 * what replaying the whole log gives, also after a crash between appends to the log and the next
 * index write (the appended records are replayed on top), and an index that does not describe
 * the log (replaced, truncated, changed, damaged) is ignored and the log replayed.
 *
 * "Whole replay" is the same ledger folder with the index removed. A crash is a ledger that
 * appended (each write fsynced before it resolved) and was never closed: what kill -9 leaves on
 * disk (test/integration/local-ledger-crash.test.ts kills real processes that compact, and so
 * write indexes, between kills).
 */
import { appendFile, copyFile, mkdtemp, readFile, rm, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileLedger } from '../../lib/adapters/local/file-ledger.js';
import { encodeRecord } from '../../lib/adapters/local/ledger-log.js';
import type { DeletePolicy } from '../../lib/drain/mailbox.js';
import type { DrainLogger, LedgerEntry, UidlLedger } from '../../lib/drain/ports.js';
import { storedEntry } from '../../testkit/fixtures/ledger-fixtures.js';

const MAILBOX = 'idx-box';
const NOW = Date.UTC(2026, 0, 10);
let dir = '';
const logPath = (): string => join(dir, `${MAILBOX}.ledger`);
const indexPath = (): string => join(dir, `${MAILBOX}.ledger-index`);

/** A logger that keeps the debug records (the ledger says there when it ignores an index). */
function recordingLogger(): DrainLogger & { ignored: string[] } {
  const ignored: string[] = [];
  const keep = (message: string, fields?: Record<string, unknown>): void => {
    if (message.startsWith('ledger index not used')) ignored.push(String(fields?.reason));
  };
  return { ignored, debug: keep, info: keep, warn: keep, error: keep };
}

const opened: FileLedger[] = [];
function ledger(options: Partial<ConstructorParameters<typeof FileLedger>[0]> = {}): FileLedger {
  const l = new FileLedger({ dir, indexMinBytes: 0, now: () => NOW, ...options });
  opened.push(l);
  return l;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'popdrain-ledger-index-'));
});
afterEach(async () => {
  for (const l of opened.splice(0)) await l.close().catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
});

const uidls = Array.from({ length: 60 }, (_, i) => `u${i}`);

/** A mailbox with every kind of entry: stored, announced, deleted, expired, skipped, imported. */
async function fill(l: FileLedger): Promise<void> {
  await l.recordImported(MAILBOX, ['seen-1', 'seen-2', 'u59'], NOW - 5);
  await l.record(uidls.slice(0, 59).map((u) => storedEntry(MAILBOX, u)));
  await l.record([{ mailboxId: MAILBOX, uidl: 'big', status: 'skipped', size: 9e7, firstSeenAt: NOW, event: storedEntry(MAILBOX, 'big').event }]);
  await l.markAnnounced(MAILBOX, [...uidls.slice(0, 40), 'big'], NOW + 1);
  await l.markDeleted(MAILBOX, uidls.slice(0, 10), NOW + 2, Math.floor(NOW / 1000) + 86_400);
  await l.markDeleted(MAILBOX, ['u10'], NOW + 2, Math.floor(NOW / 1000) - 1);
  await l.updateMailboxState(MAILBOX, { lastSuccessAt: NOW, backlogSince: NOW - 9 });
}

const ASKED = ['nope', ...uidls, 'big', 'seen-1', 'seen-2', 'later', 'later-2'];

/** Everything a reader can ask, with whole entries as JSON (keys in order). */
async function view(l: UidlLedger & Pick<FileLedger, 'counts'>): Promise<unknown> {
  const policies: DeletePolicy[] = [{ mode: 'keep' }, { mode: 'delete' }, { mode: 'keep-days', days: 3 }];
  const triages = [];
  for (const deletePolicy of policies) {
    const t = await l.triage!(MAILBOX, ASKED, { deletePolicy, now: NOW + 5 * 86_400_000 });
    triages.push([...t.codes], [...t.entries.values()].map((e) => JSON.stringify(e)));
  }
  const found = await l.lookup(MAILBOX, ASKED);
  return {
    entries: [...found.values()].map((e: LedgerEntry) => JSON.stringify(e)),
    pending: (await l.pending(MAILBOX)).map((e) => JSON.stringify(e)),
    counts: await l.counts(MAILBOX),
    state: await l.getMailboxState(MAILBOX),
    triages,
  };
}

/** The view of a fresh ledger that replays the whole log (the index set aside, then put back). */
async function wholeReplayView(): Promise<unknown> {
  const aside = join(dir, 'aside');
  await copyFile(indexPath(), aside).catch(() => undefined);
  await unlink(indexPath()).catch(() => undefined);
  const logger = recordingLogger();
  const l = ledger({ logger, indexMinBytes: Number.MAX_SAFE_INTEGER });
  const seen = await view(l);
  await l.close();
  await copyFile(aside, indexPath()).catch(() => undefined);
  return seen;
}

/** The view through the index; fails if the index was not used. */
async function indexedView(): Promise<unknown> {
  expect((await stat(indexPath())).size).toBeGreaterThan(0);
  const logger = recordingLogger();
  const l = ledger({ logger, indexMinBytes: Number.MAX_SAFE_INTEGER });
  const seen = await view(l);
  expect(logger.ignored).toEqual([]);
  await l.close();
  return seen;
}

describe('FileLedger index', () => {
  it('is written at close by a writer; a load through it gives what the whole log gives', async () => {
    const writer = ledger();
    await fill(writer);
    await writer.close();
    expect((await stat(indexPath())).size).toBeGreaterThan(0);
    expect(await indexedView()).toEqual(await wholeReplayView());
  });

  it('after a crash between appends and the next index, replays the appended records on top', async () => {
    const first = ledger();
    await fill(first);
    await first.close();
    const index = await readFile(indexPath());
    // A second writer loads through the index, changes entries the index holds and adds others,
    // and dies before it could write an index (never closed).
    const crashed = ledger();
    await crashed.record([storedEntry(MAILBOX, 'later'), storedEntry(MAILBOX, 'u59'), storedEntry(MAILBOX, 'u0')]);
    await crashed.markAnnounced(MAILBOX, ['u45', 'later', 'u59', 'big'], NOW + 7);
    await crashed.markDeleted(MAILBOX, ['u41', 'u42', 'later'], NOW + 8, Math.floor(NOW / 1000) + 99);
    await crashed.recordImported(MAILBOX, ['later-2', 'u1'], NOW + 9);
    await crashed.updateMailboxState(MAILBOX, { lastSuccessAt: NOW + 10, backlogSince: null });
    opened.splice(opened.indexOf(crashed), 1);
    expect(await readFile(indexPath())).toEqual(index);
    // And a torn line after them, as a kill in the middle of a write leaves it.
    await appendFile(logPath(), encodeRecord({ t: 'rec', e: storedEntry(MAILBOX, 'torn') }).subarray(0, 40));
    const through = await indexedView();
    expect(through).toEqual(await wholeReplayView());
    const entries = (through as { entries: string[] }).entries;
    expect(entries.filter((e) => e.includes('"uidl":"later"') || e.includes('"uidl":"later-2"'))).toHaveLength(2);
    expect(entries.find((e) => e.includes('"uidl":"u59"'))).toContain('"status":"announced"');
  });

  it('is rewritten after a compaction (a new file), and the old one is refused for the new log', async () => {
    const writer = ledger();
    await fill(writer);
    await writer.close();
    const old = await readFile(indexPath());
    const compactor = ledger();
    await compactor.compact(MAILBOX);
    expect(await readFile(indexPath())).not.toEqual(old);
    expect(await indexedView()).toEqual(await wholeReplayView());
    await writeFile(indexPath(), old);
    const logger = recordingLogger();
    const after = await view(ledger({ logger }));
    expect(logger.ignored).toEqual(['it was built from another file (the log was replaced since)']);
    await unlink(indexPath());
    expect(after).toEqual(await wholeReplayView());
  });

  it('is ignored when the log is shorter than what it covers, its covered bytes changed, or the index is torn', async () => {
    const writer = ledger();
    await fill(writer);
    await writer.close();
    const index = await readFile(indexPath());
    const log = await readFile(logPath());
    const cases: Array<[string, () => Promise<void>, RegExp]> = [
      ['torn index', () => writeFile(indexPath(), index.subarray(0, index.length - 9)), /torn or damaged/],
      ['truncated log', () => truncate(logPath(), log.length - 1), /covers \d+ bytes and the log has/],
      [
        'a changed byte in the log',
        // The same length, one digit of a size changed (its line then fails its checksum: the
        // whole replay finds the log unreadable, as it would without an index).
        async () => {
          const changed = Buffer.from(log);
          const at = changed.indexOf('"size":') + 8;
          changed[at] = changed[at] === 0x31 ? 0x32 : 0x31;
          await writeFile(logPath(), changed);
        },
        /changed/,
      ],
    ];
    for (const [what, damage, reason] of cases) {
      await writeFile(indexPath(), index);
      await writeFile(logPath(), log);
      await damage();
      const logger = recordingLogger();
      const seen = await view(ledger({ logger, indexMinBytes: Number.MAX_SAFE_INTEGER }));
      expect(logger.ignored, what).toHaveLength(1);
      expect(logger.ignored[0], what).toMatch(reason);
      await unlink(indexPath());
      expect(seen, what).toEqual(await wholeReplayView());
    }
  });

  it('checks the ends of what it covers, not the middle: a log rewritten in place is refused, a byte changed mid-log by hand is not seen', async () => {
    const writer = ledger();
    await fill(writer);
    // A log longer than both check windows together.
    const many = Array.from({ length: 300 }, (_, i) => storedEntry(MAILBOX, `m${i}`));
    await writer.record(many);
    await writer.close();
    const index = await readFile(indexPath());
    const log = await readFile(logPath());
    expect(log.length).toBeGreaterThan(2 * 64 * 1024 + 10_000);
    const inode = (await stat(logPath())).ino;
    // Written in place (same inode): the last line cut and the log written again a line shorter
    // at its end, then grown past its old length by a line that is not there in the original.
    const rewritten = Buffer.concat([log.subarray(0, log.lastIndexOf('\n', log.length - 2) + 1), encodeRecord({ t: 'rec', e: storedEntry(MAILBOX, 'other') }), encodeRecord({ t: 'rec', e: storedEntry(MAILBOX, 'other-2') })]);
    await writeFile(logPath(), rewritten);
    expect((await stat(logPath())).ino).toBe(inode);
    let logger = recordingLogger();
    let seen = await view(ledger({ logger, indexMinBytes: Number.MAX_SAFE_INTEGER }));
    expect(logger.ignored).toEqual(['the bytes of the log it covers changed (at its start or its end)']);
    await unlink(indexPath());
    expect(seen).toEqual(await wholeReplayView());
    // One digit of a size in the middle of the log, its line's checksum left as it was: the
    // index does not see it and answers with the fields it holds, until the entry is read whole
    // from its line, whose checksum then fails (LEDGER_FAILED); the whole replay would find the
    // log unreadable. A hand edit, not anything popdrain writes.
    await writeFile(logPath(), log);
    await writeFile(indexPath(), index);
    const counts = await ledger({ indexMinBytes: Number.MAX_SAFE_INTEGER }).counts(MAILBOX);
    const changed = Buffer.from(log);
    const at = changed.indexOf('"size":', log.length / 2) + 8;
    changed[at] = changed[at] === 0x31 ? 0x32 : 0x31;
    await writeFile(logPath(), changed);
    logger = recordingLogger();
    const through = ledger({ logger, indexMinBytes: Number.MAX_SAFE_INTEGER });
    expect(await through.counts(MAILBOX)).toEqual(counts);
    expect(logger.ignored).toEqual([]);
    await expect(through.pending(MAILBOX)).rejects.toMatchObject({ code: 'LEDGER_FAILED', message: expect.stringMatching(/points at a line of the log that is not the entry of UIDL m\d+/) });
  });

  it('a reader (no append) writes none; a writer rewrites it only once the log grew indexMinBytes past it', async () => {
    const writer = ledger();
    await fill(writer);
    await writer.close();
    await unlink(indexPath());
    const reader = ledger();
    await reader.lookup(MAILBOX, uidls);
    await reader.close();
    await expect(stat(indexPath())).rejects.toMatchObject({ code: 'ENOENT' });
    const small = ledger({ indexMinBytes: 10_000 });
    await small.updateMailboxState(MAILBOX, { lastSuccessAt: 1 });
    await small.close();
    const written = await readFile(indexPath());
    const again = ledger({ indexMinBytes: 10_000 });
    await again.updateMailboxState(MAILBOX, { lastSuccessAt: 2 });
    await again.close();
    expect(await readFile(indexPath())).toEqual(written);
    expect(await indexedView()).toEqual(await wholeReplayView());
  });
});
