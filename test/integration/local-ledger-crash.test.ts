// Crash safety of the local ledger and event sink: a child process writes in a tight loop and
// reports each write that resolved; it is killed with SIGKILL at a random moment, and every
// reported write must then be there, intact, for a new reader. Many rounds on the same files,
// so each round also starts from the previous round's torn tail.
import { spawn } from 'node:child_process';
import { appendFile, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toEnvelope } from '../../lib/drain/events.js';
import { messageKey, storedEventId } from '../../lib/drain/keys.js';
import type { LedgerEntry } from '../../lib/drain/ports.js';
import { FileLedger } from '../../lib/adapters/local/file-ledger.js';
import { FileMessageStore } from '../../lib/adapters/local/file-store.js';
import { JsonlEventSink } from '../../lib/adapters/local/jsonl-event-sink.js';
import { readJsonlEvents } from '../../lib/adapters/local/jsonl-events-reader.js';
import { decodeLog, encodeRecord } from '../../lib/adapters/local/ledger-log.js';
import { storedEntry, storedEvent } from '../../testkit/fixtures/ledger-fixtures.js';
import { CRASH_MAILBOX, crashMessage, crashMessageUidl } from '../support/local-crash-shared.js';

const LEDGER_KILLS = 30;
const EVENT_ROUNDS = 15; // two children each: 30 kills
const STORE_KILLS = 15;
/** Entries of earlier rounds whose content is compared in full after each kill (all are checked for presence). */
const SAMPLE_OLD_ENTRIES = 150;
/**
 * A SIGKILL lands between write() calls (a small write to the page cache is not interrupted),
 * so kills alone seldom leave a torn line; a power loss can. After this share of the rounds the
 * test appends a torn line itself, and the next writer must cope with it.
 */
const TEAR_SHARE = 0.3;

let work: string;
let childScript: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'popdrain-crash-'));
  childScript = join(work, 'child.mjs');
  // Bundled once, so each child starts as fast as plain node (no TypeScript loader).
  await build({
    entryPoints: [new URL('../support/local-crash-child.ts', import.meta.url).pathname],
    outfile: childScript,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'error',
  });
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

interface ChildRun {
  lines: string[];
  stderr: string;
  signal: NodeJS.Signals | null;
}

/**
 * Start the child and SIGKILL it at a random moment: mostly some time after its first report
 * (mid-write), sometimes early (while it loads, truncates or creates files).
 */
function runAndKill(args: string[]): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [childScript, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    const kill = (): void => {
      child.kill('SIGKILL');
    };
    const early = Math.random() < 0.2;
    if (early) timer = setTimeout(kill, 20 + Math.random() * 120);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
      if (!early && timer === undefined) timer = setTimeout(kill, Math.random() * 120);
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (stderr += chunk));
    // A child that never reports (it failed to start) is killed too, and the test sees why.
    const guard = setTimeout(kill, 5000);
    child.on('error', reject);
    child.on('close', (_code, signal) => {
      clearTimeout(guard);
      if (timer !== undefined) clearTimeout(timer);
      // Only whole report lines count: the last one may have been cut by the kill.
      const lines = out.split('\n');
      lines.pop();
      resolve({ lines, stderr, signal });
    });
  });
}

const expectedEntries = new Map<string, string>();
function expectedEntry(uidl: string, announcedAt: number | undefined): string {
  const cacheKey = `${uidl}/${announcedAt}`;
  let json = expectedEntries.get(cacheKey);
  if (json === undefined) {
    const entry: LedgerEntry = storedEntry(CRASH_MAILBOX, uidl);
    json = JSON.stringify(announcedAt === undefined ? entry : { ...entry, status: 'announced', announcedAt });
    expectedEntries.set(cacheKey, json);
  }
  return json;
}

const expectedLines = new Map<string, string>();
function expectedLine(uidl: string): string {
  let line = expectedLines.get(uidl);
  if (line === undefined) {
    const event = storedEvent(CRASH_MAILBOX, uidl);
    line = JSON.stringify({ id: event.id, ...toEnvelope(event) });
    expectedLines.set(uidl, line);
  }
  return line;
}

/** A prefix of a line, as a write cut short by a power loss leaves it. */
function tornPiece(line: Buffer): Buffer {
  return line.subarray(0, 1 + Math.floor(Math.random() * (line.length - 2)));
}

/** Whether the file ends in a whole line (an empty or missing file counts as ending in one). */
async function endsWithNewline(path: string): Promise<boolean> {
  const data = await readFile(path).catch(() => Buffer.alloc(0));
  return data.length === 0 || data[data.length - 1] === 0x0a;
}

describe('local adapters under kill -9', () => {
  it(`the ledger keeps every resolved write through ${LEDGER_KILLS} kills`, async () => {
    const dir = join(work, 'ledger');
    const recorded = new Map<string, number | undefined>(); // uidl -> announcedAt once announced
    let maxState = 0;
    let tornTails = 0;
    let tears = 0;
    const log = join(dir, `${CRASH_MAILBOX}.ledger`);
    let newThisRound: string[] = [];
    for (let kill = 0; kill < LEDGER_KILLS; kill++) {
      const run = await runAndKill(['ledger', dir, `k${kill}`]);
      expect(run.signal, run.stderr).toBe('SIGKILL');
      newThisRound = [];
      for (const line of run.lines) {
        const [kind, value] = [line[0], line.slice(2)];
        if (kind === 'X') throw new Error(`child reported: ${line}`);
        if (kind === 'R') {
          recorded.set(value, undefined);
          newThisRound.push(value);
        } else if (kind === 'A') {
          recorded.set(value, 1_000 + Number(value.slice(value.lastIndexOf('-') + 1)));
        } else if (kind === 'S') {
          maxState = Math.max(maxState, Number(value));
        }
      }

      // The log as a reader finds it: no corrupt line, at most a torn tail.
      const data = await readFile(log).catch(() => Buffer.alloc(0));
      const decoded = decodeLog(data);
      expect(decoded.corruptLines).toBe(0);
      if (decoded.validBytes < data.length) tornTails++;

      const ledger = new FileLedger({ dir });
      try {
        const uidls = [...recorded.keys()];
        const found = await ledger.lookup(CRASH_MAILBOX, uidls);
        const missing = uidls.filter((u) => !found.has(u));
        expect(missing, `round ${kill}: resolved records missing`).toEqual([]);
        for (const [uidl, announcedAt] of recorded) {
          if (announcedAt !== undefined) expect(found.get(uidl)?.status, uidl).toBe('announced');
        }
        const sample = [...newThisRound, ...uidls.sort(() => Math.random() - 0.5).slice(0, SAMPLE_OLD_ENTRIES)];
        for (const uidl of sample) {
          const announcedAt = found.get(uidl)?.announcedAt;
          expect(JSON.stringify(found.get(uidl)), uidl).toBe(expectedEntry(uidl, recorded.get(uidl) ?? announcedAt));
        }
        expect((await ledger.getMailboxState(CRASH_MAILBOX)).backlogSince ?? 0).toBeGreaterThanOrEqual(maxState);
      } finally {
        await ledger.close();
      }
      if (data.length > 0 && Math.random() < TEAR_SHARE) {
        await appendFile(log, tornPiece(encodeRecord({ t: 'rec', e: storedEntry(CRASH_MAILBOX, `torn-${kill}`) })));
        tears++;
      }
    }
    // The rounds did real work (a kill before any write proves nothing).
    expect(recorded.size).toBeGreaterThan(LEDGER_KILLS * 20);
    expect(maxState).toBeGreaterThan(0);
    // Each torn line the test appended was followed by more rounds: had a writer appended after
    // it instead of truncating it, the merged line would have shown up as a corrupt line above.
    expect(tears).toBeGreaterThan(0);
    // The next writer sweeps what a kill during compaction (or an index write) left: only the
    // log remains, and the index of a compacted log, if a compaction completed.
    const writer = new FileLedger({ dir });
    await writer.updateMailboxState(CRASH_MAILBOX, { backlogSince: null });
    await writer.close();
    expect((await readdir(dir)).filter((n) => n !== `${CRASH_MAILBOX}.ledger-index`)).toEqual([`${CRASH_MAILBOX}.ledger`]);
    console.info(
      `ledger crash test: ${recorded.size} records survived ${LEDGER_KILLS} kills; ${tornTails} torn tails seen (${tears} made by the test)`,
    );
  });

  it(`every published event is a whole line through ${EVENT_ROUNDS * 2} kills of two concurrent writers`, async () => {
    const path = join(work, 'events', 'events.jsonl');
    const published = new Set<string>();
    let kills = 0;
    let tears = 0;
    for (let round = 0; round < EVENT_ROUNDS; round++) {
      const runs = await Promise.all([runAndKill(['events', path, `e${round}a`]), runAndKill(['events', path, `e${round}b`])]);
      for (const run of runs) {
        expect(run.signal, run.stderr).toBe('SIGKILL');
        kills++;
        for (const line of run.lines) {
          if (line.startsWith('X')) throw new Error(`child reported: ${line}`);
          if (line.startsWith('P ')) published.add(line.slice(2));
        }
      }
      const read = await readJsonlEvents(path);
      // At most one fragment per killed writer, ever, plus the ones the test made.
      expect(read.tornLines).toBeLessThanOrEqual(kills + tears);
      const lines = new Map(read.events.map((e) => [e.id, JSON.stringify(e)]));
      for (const uidl of published) {
        expect(lines.get(storedEventId(CRASH_MAILBOX, uidl)), uidl).toBe(expectedLine(uidl));
      }
      // Tear only after a whole line: a piece appended to a tail that is already torn (a writer
      // killed before it could end the last tear) would merge with it into one fragment.
      if (published.size > 0 && Math.random() < TEAR_SHARE && (await endsWithNewline(path))) {
        await appendFile(path, tornPiece(Buffer.from(`${expectedLine(`torn-${round}`)}\n`)));
        tears++;
      }
    }
    expect(published.size).toBeGreaterThan(EVENT_ROUNDS * 20);

    // A writer after the crashes ends any torn line first: the file ends in a newline and the
    // last event is whole.
    const sink = new JsonlEventSink({ path });
    const last = storedEvent(CRASH_MAILBOX, 'after-the-crashes');
    expect((await sink.publish([last])).published).toEqual([last.id]);
    await sink.close();
    const text = await readFile(path, 'utf8');
    expect(text.endsWith(`${JSON.stringify({ id: last.id, ...toEnvelope(last) })}\n`)).toBe(true);
    const read = await readJsonlEvents(path);
    expect(read.tornLines).toBeGreaterThanOrEqual(tears);
    console.info(
      `event crash test: ${published.size} events survived ${kills} kills; ${read.tornLines} torn fragments in the file (${tears} made by the test)`,
    );
  });

  it(`the store shows only complete messages through ${STORE_KILLS} kills`, async () => {
    const root = join(work, 'store');
    const folder = join(root, CRASH_MAILBOX);
    const committed = new Set<string>();
    const checked = new Set<string>();
    let leftovers = 0;
    for (let kill = 0; kill < STORE_KILLS; kill++) {
      const run = await runAndKill(['store', root, `s${kill}`]);
      expect(run.signal, run.stderr).toBe('SIGKILL');
      for (const line of run.lines) {
        if (line.startsWith('X')) throw new Error(`child reported: ${line}`);
        if (line.startsWith('C ')) committed.add(line.slice(2));
      }
      const names = await readdir(folder).catch(() => [] as string[]);
      const messages = names.filter((n) => n.endsWith('.eml'));
      // Everything else is a temp file, named so that it never passes for a message.
      for (const name of names.filter((n) => !n.endsWith('.eml'))) expect(name).toMatch(/^\.tmp-\d+-[0-9a-f]+-\d+\.part$/);
      leftovers += names.length - messages.length;
      // Every message visible is complete and under its own name (a name, once there, never
      // changes its content: each is checked once); every committed one is there.
      for (const name of messages) {
        if (checked.has(name)) continue;
        checked.add(name);
        const data = await readFile(join(folder, name));
        const uidl = crashMessageUidl(data);
        expect(uidl, name).toBeDefined();
        expect(`${CRASH_MAILBOX}/${name}`).toBe(messageKey(CRASH_MAILBOX, uidl!));
        expect(data.equals(crashMessage(uidl!)), name).toBe(true);
      }
      const visible = new Set(messages);
      for (const uidl of committed) expect(visible.has(messageKey(CRASH_MAILBOX, uidl).split('/')[1]!), uidl).toBe(true);
    }
    expect(committed.size).toBeGreaterThan(STORE_KILLS * 5);
    // A new store's first write sweeps the temp files of the killed writers.
    const store = new FileMessageStore({ root });
    const writer = await store.open(messageKey(CRASH_MAILBOX, 'after'), { mailboxId: CRASH_MAILBOX, uidl: 'after' });
    await writer.abort();
    expect((await readdir(folder)).filter((n) => !n.endsWith('.eml'))).toEqual([]);
    console.info(`store crash test: ${committed.size} messages committed through ${STORE_KILLS} kills; ${leftovers} temp files seen after kills`);
  });
});
