// The MessageStore contract against the MDA store, with a real command as the MDA (sh running
// cat into a folder, one file per store key), then what is particular to an MDA: the POPDRAIN_*
// variables, exit codes, the spool left behind.
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MdaStore } from '../../lib/adapters/local/mda-store.js';
import { messageKey, storedEventId } from '../../lib/drain/keys.js';
import type { StoreRef } from '../../lib/drain/ports.js';
import { drainErrorOf } from '../support/drain-error.js';
import { describeStoreContract, message, summaryOf, writeAll } from './store-contract.js';

/** An MDA that keeps each message as <dir>/<store key with / as _>, written whole then renamed. */
const DELIVER = 'f="$MDA_DIR/$(printf %s "$POPDRAIN_STORE_KEY" | tr / _)"; cat > "$f.part" && mv "$f.part" "$f"';

let dir = '';
let spool = '';
describeStoreContract('MdaStore', {
  setup: async () => {
    dir = await mkdtemp(join(tmpdir(), 'popdrain-mda-contract-'));
    spool = await mkdtemp(join(tmpdir(), 'popdrain-mda-spool-'));
  },
  open: () => new MdaStore({ argv: ['/bin/sh', '-c', DELIVER], spoolDir: spool, env: { PATH: process.env.PATH, MDA_DIR: dir } }),
  read: async (ref: StoreRef) => {
    if (ref.type !== 'mda') throw new Error(`not an mda ref: ${JSON.stringify(ref)}`);
    return readFile(join(dir, ref.key.replace(/\//g, '_'))).catch(() => undefined);
  },
  teardown: async () => {
    // Every spooled message was removed, delivered or not.
    expect(await readdir(spool)).toEqual([]);
    await rm(dir, { recursive: true, force: true });
    await rm(spool, { recursive: true, force: true });
  },
  exclude: {
    existed:
      'an MDA cannot say it already had a message: delivering again delivers again (at least once); the MDA deduplicates by POPDRAIN_EVENT_ID or POPDRAIN_SHA256',
    conflict: 'for the same reason an MDA cannot refuse different bytes under a known key: the ledger, not the store, guards against that',
  },
});

describe('MdaStore specifics', () => {
  let work = '';
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'popdrain-mda-specific-'));
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('gives the MDA the event id, sha256, UIDL, mailbox id and store key; the ref names the program only', async () => {
    const out = join(work, 'env.txt');
    const store = new MdaStore({
      argv: ['/bin/sh', '-c', 'cat > /dev/null; env | grep ^POPDRAIN_ | sort > "$OUT"', 'ignored-arg0'],
      env: { PATH: process.env.PATH, OUT: out },
      spoolDir: work,
    });
    const data = message(3_000);
    const key = messageKey('box-1', 'uidl-7');
    const writer = await store.open(key, { mailboxId: 'box-1', uidl: 'uidl-7' });
    await writeAll(writer, data);
    const stored = await writer.commit(summaryOf(data));
    expect(stored).toEqual({ ref: { type: 'mda', program: 'sh', key }, existed: false });
    const env = Object.fromEntries((await readFile(out, 'utf8')).trim().split('\n').map((l) => l.split(/=(.*)/s).slice(0, 2)));
    expect(env).toEqual({
      POPDRAIN_EVENT_ID: storedEventId('box-1', 'uidl-7'),
      POPDRAIN_MAILBOX_ID: 'box-1',
      POPDRAIN_SHA256: summaryOf(data).sha256,
      POPDRAIN_STORE_KEY: key,
      POPDRAIN_UIDL: 'uidl-7',
    });
  });

  it('a refusing MDA is STORE_FAILED naming the exit code; 75 (EX_TEMPFAIL) is retryable, others not', async () => {
    for (const [code, retryable] of [
      [1, false],
      [75, true],
    ] as const) {
      const store = new MdaStore({ argv: ['/bin/sh', '-c', `cat > /dev/null; exit ${code}`], spoolDir: work });
      const data = message(500);
      const error = await drainErrorOf(store.put(messageKey('b', `u${code}`), { mailboxId: 'b', uidl: `u${code}` }, [data], summaryOf(data)));
      expect(error).toMatchObject({ code: 'STORE_FAILED', phase: 'store', retryable });
      expect(error.message).toContain(`exit code ${code}`);
    }
  });

  it('an MDA that does not exist is STORE_FAILED (ENOENT); one that hangs is killed after the timeout (retryable)', async () => {
    const data = message(200);
    const missing = new MdaStore({ argv: ['/nonexistent/popdrain-mda'], spoolDir: work });
    expect((await drainErrorOf(missing.put(messageKey('b', 'x'), { mailboxId: 'b', uidl: 'x' }, [data], summaryOf(data)))).message).toContain('ENOENT');
    const slow = new MdaStore({ argv: ['/bin/sh', '-c', 'cat > /dev/null; exec sleep 30'], spoolDir: work, timeoutMs: 300 });
    const error = await drainErrorOf(slow.put(messageKey('b', 'y'), { mailboxId: 'b', uidl: 'y' }, [data], summaryOf(data)));
    expect(error).toMatchObject({ code: 'STORE_FAILED', retryable: true });
    expect(error.message).toContain('took longer than 300 ms');
  });
});
