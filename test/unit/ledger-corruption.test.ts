// A local ledger holding garbage is unreadable, not torn: said so with its file and offset,
// set aside whole at the next write (never truncated), and its mailbox treated as lost.
import { appendFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileLedger } from '../../lib/adapters/local/file-ledger.js';
import { decodeLog, encodeRecord, isTornTail } from '../../lib/adapters/local/ledger-log.js';
import type { DrainLogger } from '../../lib/drain/ports.js';
import { storedEntry } from '../../testkit/fixtures/ledger-fixtures.js';

const MAILBOX = 'box-1';
/** Bytes of many lines, none a record (a deterministic stand-in for random bytes). */
const GARBAGE = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 256));

describe('decodeLog tells garbage from a torn tail', () => {
  const a = encodeRecord({ t: 'hdr', v: 1, mailboxId: MAILBOX });
  const b = encodeRecord({ t: 'ann', u: ['x'], at: 1 });

  it('a torn tail (any prefix of a line, a complete last line failing its checksum, NULs) is not corruption', () => {
    for (let cut = 0; cut <= b.length; cut++) expect(decodeLog(Buffer.concat([a, b.subarray(0, cut)])).corruptAt).toBeUndefined();
    expect(decodeLog(Buffer.concat([a, Buffer.from('00000000 {"t":"ann","u":["a"],"at":1}\n')])).corruptAt).toBeUndefined();
    expect(decodeLog(Buffer.concat([a, Buffer.alloc(4096)])).corruptAt).toBeUndefined();
    expect(isTornTail(Buffer.concat([b.subarray(0, 30), Buffer.alloc(100)]))).toBe(true);
  });

  it('garbage is corruption at its offset: random bytes, text, a bad record in the middle, two bad lines at the end', () => {
    expect(decodeLog(GARBAGE).corruptAt).toBe(0);
    expect(decodeLog(Buffer.from('hello, this is not a ledger')).corruptAt).toBe(0);
    expect(decodeLog(Buffer.concat([a, Buffer.from('garbage\n')])).corruptAt).toBe(a.length);
    const bad = Buffer.from(b);
    bad[20] = bad[20]! ^ 1;
    expect(decodeLog(Buffer.concat([a, bad, b])).corruptAt).toBe(a.length);
    expect(decodeLog(Buffer.concat([a, b, bad, bad])).corruptAt).toBe(a.length + b.length);
  });
});

describe('FileLedger with an unreadable log', () => {
  let dir: string;
  const logged: Array<{ level: string; message: string; fields?: Record<string, unknown> }> = [];
  const logger: DrainLogger = {
    debug: () => {},
    info: () => {},
    warn: (message, fields) => logged.push({ level: 'warn', message, ...(fields ? { fields } : {}) }),
    error: (message, fields) => logged.push({ level: 'error', message, ...(fields ? { fields } : {}) }),
  };
  const logPath = (): string => join(dir, `${MAILBOX}.ledger`);

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'popdrain-corrupt-ledger-'));
    logged.length = 0;
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  async function expectSetAside(original: Buffer, offset: number): Promise<void> {
    const ledger = new FileLedger({ dir, logger, now: () => 1234 });
    // Nothing is trusted: the mailbox reads as never drained (so the run's lost-ledger rule applies).
    expect((await ledger.lookup(MAILBOX, ['a', 'b'])).size).toBe(0);
    expect((await ledger.getMailboxState(MAILBOX)).lastRun).toBeUndefined();
    const said = logged.find((l) => l.level === 'error');
    expect(said?.message).toContain(`the ledger ${logPath()} is unreadable`);
    expect(said?.message).toContain(`offset ${offset}`);
    expect(said?.fields).toMatchObject({ path: logPath(), offset });
    expect(await readFile(logPath())).toEqual(original); // reading never writes

    await ledger.record([storedEntry(MAILBOX, 'c')]);
    await ledger.close();
    expect(logged.some((l) => l.message === 'truncated a torn ledger tail')).toBe(false);
    // The garbage is kept whole under another name; the new log holds only what came after.
    expect(await readFile(`${logPath()}.corrupt-1234`)).toEqual(original);
    expect((await readdir(dir)).filter((n) => n.endsWith('.ledger'))).toEqual([`${MAILBOX}.ledger`]);
    const fresh = new FileLedger({ dir });
    expect([...(await fresh.lookup(MAILBOX, ['a', 'b', 'c'])).keys()]).toEqual(['c']);
    expect(decodeLog(await readFile(logPath())).corruptAt).toBeUndefined();
    await fresh.close();
  }

  it('random bytes: unreadable at offset 0, set aside whole, not truncated as a torn tail', async () => {
    await writeFile(logPath(), GARBAGE);
    await expectSetAside(GARBAGE, 0);
  });

  it('a record corrupted in the middle: unreadable at that record, set aside with the good records', async () => {
    const first = new FileLedger({ dir });
    await first.record([storedEntry(MAILBOX, 'a')]);
    const goodBytes = (await readFile(logPath())).length;
    await first.record([storedEntry(MAILBOX, 'b')]);
    await first.updateMailboxState(MAILBOX, { acceptUidlReset: true });
    await first.close();
    const data = await readFile(logPath());
    data[goodBytes + 30] = data[goodBytes + 30]! ^ 1;
    await writeFile(logPath(), data);
    await expectSetAside(data, goodBytes);
  });

  it('a torn tail is still only truncated (no error, nothing set aside)', async () => {
    const first = new FileLedger({ dir });
    await first.record([storedEntry(MAILBOX, 'a')]);
    await first.close();
    await appendFile(logPath(), encodeRecord({ t: 'rec', e: storedEntry(MAILBOX, 'b') }).subarray(0, 100));
    const ledger = new FileLedger({ dir, logger });
    expect([...(await ledger.lookup(MAILBOX, ['a', 'b'])).keys()]).toEqual(['a']);
    await ledger.record([storedEntry(MAILBOX, 'c')]);
    await ledger.close();
    expect(logged.map((l) => l.level)).toEqual(['warn']);
    expect(logged[0]!.message).toBe('truncated a torn ledger tail');
    expect((await readdir(dir)).some((n) => n.includes('.corrupt-'))).toBe(false);
  });
});
