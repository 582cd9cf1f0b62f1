/**
 * `npm run bench:ledger-reads`: what a `keep` run's ledger lookup reads from DynamoDB, before and
 * after the done set, for a mailbox with 20,000 kept (announced) messages and 5 new ones a run.
 *
 * One dynalite (in memory, loopback) holds the ledger. The mailbox's 20,000 entries are recorded
 * and announced through the ledger itself (the test fixtures' entries, ~1 KB items with their
 * events). Then, per variant, RUNS runs each look up the server's listing (the kept UIDLs and 5
 * new ones) with the run's policy, as the engine does, and record and announce the 5 new ones
 * (not counted: those writes are the same before and after).
 *
 *   before  `doneSet: false`: every listed UIDL's item (from 10,000 UIDLs, a Query of the partition)
 *   after   the done set: its 16 items (eventually consistent), then the UIDLs it does not answer
 *
 * Read units: each request asks for ReturnConsumedCapacity TOTAL; dynalite reports it (it
 * computes units from item sizes as DynamoDB does). Where a response carries none, the figure
 * says so. Write units are the done set's own writes (its flushes), amortized over the runs.
 *
 * Figures only: nothing here passes or fails.
 */
import { DynamoDbLedger } from '../lib/adapters/aws/dynamodb-ledger.js';
import { startDynalite } from '../testkit/aws/standins.js';
import { storedEntry } from '../testkit/fixtures/ledger-fixtures.js';

const KEPT = 20_000;
const NEW_PER_RUN = 5;
/** Runs per variant: "before" reads the same 20,000 items every run (slow on dynalite, and constant). */
const RUNS = { before: 5, after: 40 } as const;
const TABLE = 'ledger-reads-bench';
const NOW = Date.UTC(2026, 11, 1);

interface Tally {
  requests: number;
  readUnits: number;
  writeUnits: number;
  unreported: number;
}

type Consumed = { CapacityUnits?: number; ReadCapacityUnits?: number; WriteCapacityUnits?: number };

async function main(): Promise<void> {
  const db = await startDynalite();
  try {
    await db.createLedgerTable(TABLE);
    const tally: Tally = { requests: 0, readUnits: 0, writeUnits: 0, unreported: 0 };
    const client = db.client();
    client.middlewareStack.add(
      (next, context) => async (args) => {
        (args.input as { ReturnConsumedCapacity?: string }).ReturnConsumedCapacity = 'TOTAL';
        const result = await next(args);
        const name = (context as { commandName?: string }).commandName ?? '';
        const raw = (result.output as { ConsumedCapacity?: Consumed | Consumed[] }).ConsumedCapacity;
        const all = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
        tally.requests += 1;
        if (all.length === 0) tally.unreported += 1;
        for (const c of all) {
          const units = c.CapacityUnits ?? 0;
          if (/^(Put|Update|Delete|BatchWrite)/.test(name)) tally.writeUnits += units;
          else tally.readUnits += units;
        }
        return result;
      },
      { step: 'initialize', name: 'consumedCapacity' },
    );
    const mailbox = 'bench-keep';
    const kept = Array.from({ length: KEPT }, (_, i) => `${(i + 1).toString(16).toUpperCase().padStart(8, '0')}5F3A9C01`);
    const seeder = new DynamoDbLedger({ client, tableName: TABLE });
    const started = Date.now();
    for (let i = 0; i < kept.length; i += 1_000) {
      const chunk = kept.slice(i, i + 1_000);
      await seeder.record(chunk.map((uidl) => storedEntry(mailbox, uidl)));
      await seeder.markAnnounced(mailbox, chunk, NOW - 86_400_000);
    }
    console.log(`seeded ${KEPT} kept messages in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    const rows: string[] = [];
    let serial = 0;
    for (const variant of ['before', 'after'] as const) {
      const ledger = new DynamoDbLedger({ client, tableName: TABLE, doneSet: variant === 'after' });
      const perRun: Tally[] = [];
      for (let run = 0; run < RUNS[variant]; run++) {
        const fresh = Array.from({ length: NEW_PER_RUN }, () => `NEW${String(++serial).padStart(13, '0')}`);
        const listing = [...kept, ...fresh];
        const at = { ...tally };
        await ledger.lookup(mailbox, listing, { deletePolicy: { mode: 'keep' }, now: NOW + run });
        perRun.push({
          requests: tally.requests - at.requests,
          readUnits: tally.readUnits - at.readUnits,
          writeUnits: tally.writeUnits - at.writeUnits,
          unreported: tally.unreported - at.unreported,
        });
        await ledger.record(fresh.map((uidl) => storedEntry(mailbox, uidl)));
        await ledger.markAnnounced(mailbox, fresh, NOW + run);
        kept.push(...fresh);
        process.stderr.write(`${variant} run ${run + 1}: ${perRun.at(-1)!.readUnits} RCU, ${perRun.at(-1)!.requests} requests\n`);
      }
      const steady = variant === 'after' ? perRun.slice(1) : perRun;
      const mean = (f: (t: Tally) => number, runs: Tally[]): number => runs.reduce((s, t) => s + f(t), 0) / runs.length;
      const max = (f: (t: Tally) => number, runs: Tally[]): number => Math.max(...runs.map(f));
      rows.push(
        `| ${variant} | ${perRun[0]!.readUnits.toFixed(1)} / ${perRun[0]!.requests} / ${perRun[0]!.writeUnits.toFixed(1)}` +
          ` | ${mean((t) => t.readUnits, steady).toFixed(1)} (max ${max((t) => t.readUnits, steady).toFixed(1)})` +
          ` | ${mean((t) => t.requests, steady).toFixed(1)} (max ${max((t) => t.requests, steady)})` +
          ` | ${mean((t) => t.writeUnits, steady).toFixed(1)} | ${perRun.reduce((s, t) => s + t.unreported, 0)} |`,
      );
    }
    console.log(`\n${KEPT} kept messages, ${NEW_PER_RUN} new a run, ${RUNS.before} runs before, ${RUNS.after} after (the mailbox grows by ${NEW_PER_RUN} a run)`);
    console.log('| lookup | first run: RCU / requests / WCU | RCU per run | requests per run | done-set WCU per run | requests without ConsumedCapacity |');
    console.log('|---|---|---|---|---|---|');
    for (const row of rows) console.log(row);
    console.log('\n"after" per-run figures leave out its first run (the done set is written then, from the per-message reads).');
  } finally {
    await db.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
