// A child process for the crash tests: writes to a local ledger or event file in a tight loop
// and reports every write that resolved on stdout (a pipe: synchronous, so a report is out
// before the next write starts), until it is killed.
//
//   node child.mjs ledger <dir> <tag>   records, announcements, state updates, compactions
//   node child.mjs events <file> <tag>  publishes
//   node child.mjs store <root> <tag>   messages stored (open, write in chunks, commit)
//
// Report lines: `R <uidl>` recorded, `A <uidl>` announced, `S <n>` state with backlogSince n,
// `P <uidl>` event published, `C <uidl>` message committed, `X <why>` something that must not happen.
import { createHash } from 'node:crypto';
import { messageKey } from '../../lib/drain/keys.js';
import { FileLedger } from '../../lib/adapters/local/file-ledger.js';
import { FileMessageStore } from '../../lib/adapters/local/file-store.js';
import { JsonlEventSink } from '../../lib/adapters/local/jsonl-event-sink.js';
import { CRASH_MAILBOX, crashMessage, crashUidl } from './local-crash-shared.js';
import { storedEntry, storedEvent } from '../../testkit/fixtures/ledger-fixtures.js';

const [mode, target, tag] = process.argv.slice(2);
if (mode === undefined || target === undefined || tag === undefined) throw new Error('usage: child <mode> <target> <tag>');

const report = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

/** Writers in flight at once. */
const IN_FLIGHT = 24;
let next = 0;

async function ledgerWorker(ledger: FileLedger): Promise<void> {
  for (;;) {
    const n = next++;
    const uidl = crashUidl(tag!, n);
    const [outcome] = await ledger.record([storedEntry(CRASH_MAILBOX, uidl)]);
    if (outcome?.ok !== true) report(`X record ${uidl} ${JSON.stringify(outcome)}`);
    report(`R ${uidl}`);
    if (n % 3 === 0) {
      await ledger.markAnnounced(CRASH_MAILBOX, [uidl], 1_000 + n);
      report(`A ${uidl}`);
    }
    if (n % 40 === 0) {
      const stamp = Date.now() * 1000 + (n % 1000);
      await ledger.updateMailboxState(CRASH_MAILBOX, { backlogSince: stamp });
      report(`S ${stamp}`);
    }
    if (n % 150 === 75) await ledger.compact(CRASH_MAILBOX);
  }
}

async function eventsWorker(sink: JsonlEventSink): Promise<void> {
  for (;;) {
    const uidl = crashUidl(tag!, next++);
    const outcome = await sink.publish([storedEvent(CRASH_MAILBOX, uidl)]);
    if (outcome.failed.length > 0) report(`X publish ${uidl} ${JSON.stringify(outcome.failed)}`);
    else report(`P ${uidl}`);
  }
}

/** Chunk size of message writes (a POP3 client hands over about this much at a time). */
const CHUNK_BYTES = 16 * 1024;

async function storeWorker(store: FileMessageStore): Promise<void> {
  for (;;) {
    const uidl = crashUidl(tag!, next++);
    const data = crashMessage(uidl);
    const writer = await store.open(messageKey(CRASH_MAILBOX, uidl), { mailboxId: CRASH_MAILBOX, uidl });
    for (let i = 0; i < data.length; i += CHUNK_BYTES) {
      if (!writer.stream.write(data.subarray(i, i + CHUNK_BYTES))) {
        await new Promise((resolve) => writer.stream.once('drain', resolve));
      }
    }
    await new Promise<void>((resolve) => writer.stream.end(() => resolve()));
    const sha256 = createHash('sha256').update(data).digest('hex');
    const stored = await writer.commit({ sha256, size: data.length, metadata: {} });
    if (stored.existed) report(`X existed ${uidl}`);
    report(`C ${uidl}`);
  }
}

if (mode === 'store') {
  const store = new FileMessageStore({ root: target });
  await Promise.all(Array.from({ length: 8 }, () => storeWorker(store)));
} else if (mode === 'ledger') {
  const ledger = new FileLedger({ dir: target, compactMinBytes: 32 * 1024 });
  await Promise.all(Array.from({ length: IN_FLIGHT }, () => ledgerWorker(ledger)));
} else if (mode === 'events') {
  const sink = new JsonlEventSink({ path: target });
  await Promise.all(Array.from({ length: IN_FLIGHT }, () => eventsWorker(sink)));
} else {
  throw new Error(`unknown mode ${mode}`);
}
