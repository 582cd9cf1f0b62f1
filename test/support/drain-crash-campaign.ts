// A drain crash campaign (drain-crash-*.test.ts): children killed at every kind of step boundary
// and at random instants, new mail between runs, the key invariant checked after every child, and
// the final state checked once a last run completed.
import { expect } from 'vitest';
import { messageKey, storedEventId } from '../../lib/drain/keys.js';
import type { StopAt } from './drain-crash-shared.js';
import { dovecot, seed, sleep } from './drain-crash-world.js';
import { baseName, LARGE_MIN_BYTES, Mailbox } from './drain-crash-mailbox.js';
import type { Family, Observation } from './drain-crash-families.js';
import { KILL_KINDS, runChild, type ChildOutcome, type KillKind, type RandomKill } from './drain-crash-run-child.js';

const KILLS_PER_FAMILY = 50;
/** Every kind of kill (each boundary, a large message mid-RETR, a random instant) lands at least this often. */
const MIN_KILLS_PER_KIND = 4;
/** Children per family before the test gives up reaching the kill counts. */
const MAX_CHILDREN_PER_FAMILY = 160;
const INITIAL_SMALL = 30;
const INITIAL_LARGE = 2;

/** Below this many messages on the server, a batch of new ones is delivered before the next run. */
const REFILL_BELOW = 10;
const REFILL_COUNT = 8;
/** Every this many runs, a few new messages arrive regardless. */
const TRICKLE_EVERY_RUNS = 3;
/**
 * Random kills: a third land this long after the spawn (the child loads in about 150-250 ms,
 * then connects, logs in, lists and looks up), the others this long after its first boundary
 * (while messages stream, commit, record, announce and get deleted).
 */
const RANDOM_KILL_AFTER_SPAWN_MAX_MS = 500;
const RANDOM_KILL_AFTER_FIRST_BOUNDARY_MAX_MS = 300;

const IN_USE_RETRY_DELAY_MS = 200;
const MAX_FINAL_ATTEMPTS = 20;

/** Dovecot's `pop3_uidl_format = %08Xu%08Xv`: UID, then UIDVALIDITY, each 8 hex digits (it prints them in lower case). */
const DOVECOT_UIDL = /^([0-9a-f]{8})([0-9a-f]{8})$/i;

// ---------------------------------------------------------------------------------------------
// The checks

/**
 * The key invariant, after every child: each delivered message that is no longer in the
 * maildir is in the store (exact bytes, under its key), recorded as announced, and its
 * `Email Stored` event went out. Returns the problems found.
 */
function deletionProblems(mailbox: Mailbox, family: Family, present: Set<string>, seen: Observation, gone: Set<number>, when: string): string[] {
  const problems: string[] = [];
  const bySha = new Map([...seen.entries.values()].filter((e) => e.sha256 !== undefined).map((e) => [e.sha256!, e]));
  for (const s of mailbox.sources) {
    if (present.has(s.name)) {
      if (gone.has(s.index)) problems.push(`${when}: message ${s.index} came back to the server`);
      continue;
    }
    gone.add(s.index);
    const entry = bySha.get(s.sha256);
    if (entry === undefined) {
      problems.push(`${when}: message ${s.index} (${s.size} bytes) left the server but the ledger has no entry with its sha256`);
      continue;
    }
    if (entry.status !== 'announced') problems.push(`${when}: message ${s.index} left the server while its entry is '${entry.status}'`);
    if (entry.key === undefined || seen.objects.get(entry.key) !== s.sha256) {
      problems.push(`${when}: message ${s.index} left the server but ${entry.key ?? '(no key)'} holds ${seen.objects.get(entry.key ?? '') ?? 'nothing'}`);
    }
    if (entry.eventId !== storedEventId(family.mailboxId, entry.uidl) || !seen.events.get(entry.eventId)?.sha256s.has(s.sha256)) {
      problems.push(`${when}: message ${s.index} left the server but its Email Stored event ${entry.eventId} was never published`);
    }
  }
  return problems;
}

export interface CampaignResult {
  kills: Map<KillKind, number>;
  children: number;
  completedRuns: number;
  inUse: number;
  busy: number;
  unexpectedReports: string[];
  deliveredSmall: number;
  deliveredLarge: number;
  maxGone: number;
  /** For random kills: the last boundary the child crossed before it died ('start-up' if none). */
  randomKillPoints: Map<string, number>;
  finalReports: Array<Record<string, unknown>>;
  durationMs: number;
  /** Of durationMs: in children (spawn to exit), in the checks after them. */
  childMs: number;
  checkMs: number;
}

export async function runCampaign(family: Family, mailbox: Mailbox, random: () => number): Promise<CampaignResult> {
  const started = Date.now();
  const kills = new Map<KillKind, number>(KILL_KINDS.map((k) => [k, 0]));
  const gone = new Set<number>();
  const result: CampaignResult = {
    kills,
    children: 0,
    completedRuns: 0,
    inUse: 0,
    busy: 0,
    unexpectedReports: [],
    deliveredSmall: 0,
    deliveredLarge: 0,
    maxGone: 0,
    randomKillPoints: new Map(),
    finalReports: [],
    durationMs: 0,
    childMs: 0,
    checkMs: 0,
  };
  const deliver = async (small: number, large: number): Promise<void> => {
    await mailbox.deliver(small, large);
    result.deliveredSmall += small;
    result.deliveredLarge += large;
  };
  const totalKills = (): number => [...kills.values()].reduce((a, b) => a + b, 0);
  const done = (): boolean => totalKills() >= KILLS_PER_FAMILY && [...kills.values()].every((n) => n >= MIN_KILLS_PER_KIND);

  const check = async (when: string): Promise<void> => {
    const checkStarted = Date.now();
    const present = new Set((await dovecot.listMaildir(mailbox.user)).map(baseName));
    const problems = deletionProblems(mailbox, family, present, await family.observe(), gone, when);
    result.maxGone = Math.max(result.maxGone, gone.size);
    result.checkMs += Date.now() - checkStarted;
    expect(problems, `seed ${seed}`).toEqual([]);
  };

  const noteReport = (outcome: ChildOutcome, when: string): void => {
    const report = outcome.report!;
    if (report.stopReason === 'in-use') result.inUse += 1;
    else if (report.stopReason === 'busy') result.busy += 1;
    else if (report.ok !== true || report.stopReason !== 'complete') {
      result.unexpectedReports.push(`${when}: ${JSON.stringify({ stopReason: report.stopReason, error: report.error, failures: report.failures })}`);
    }
  };

  await deliver(INITIAL_SMALL, INITIAL_LARGE);
  let kind = 0;
  while (!done()) {
    expect(result.children, `seed ${seed}: kills so far ${JSON.stringify(Object.fromEntries(kills))}`).toBeLessThan(MAX_CHILDREN_PER_FAMILY);
    // Pick the next kind that still needs kills (cycling), so every one gets its share.
    let next = KILL_KINDS[kind % KILL_KINDS.length]!;
    for (let k = 0; k < KILL_KINDS.length && totalKills() >= KILLS_PER_FAMILY && kills.get(next)! >= MIN_KILLS_PER_KIND; k++) {
      kind += 1;
      next = KILL_KINDS[kind % KILL_KINDS.length]!;
    }
    kind += 1;

    const onServer = await mailbox.onServer();
    if (result.children % TRICKLE_EVERY_RUNS === TRICKLE_EVERY_RUNS - 1) await deliver(1 + Math.floor(random() * 3), 0);
    if (onServer.length < REFILL_BELOW) await deliver(REFILL_COUNT, 0);
    if (next === 'retr-chunk-large' && !onServer.some((s) => s.large)) await deliver(0, 1);

    let stopAt: StopAt | undefined;
    let randomKill: RandomKill | undefined;
    const pick = (max: number): number => 1 + Math.floor(random() * max);
    switch (next) {
      case 'random':
        randomKill =
          random() < 1 / 3
            ? { from: 'spawn', delayMs: Math.floor(random() * RANDOM_KILL_AFTER_SPAWN_MAX_MS) }
            : { from: 'first-boundary', delayMs: Math.floor(random() * RANDOM_KILL_AFTER_FIRST_BOUNDARY_MAX_MS) };
        break;
      case 'retr-chunk-large':
        stopAt = { boundary: 'retr-chunk', occurrence: 1, minSize: LARGE_MIN_BYTES };
        break;
      case 'retr-chunk':
      case 'store-commit':
        stopAt = { boundary: next, occurrence: pick(8) };
        break;
      case 'dele-acked':
        stopAt = { boundary: next, occurrence: pick(4) };
        break;
      case 'quit-sent':
        stopAt = { boundary: next, occurrence: 1 };
        break;
      default: // batched steps: a run has a few batches
        stopAt = { boundary: next, occurrence: pick(2) };
    }
    const outcome = await runChild(family.childConfig(stopAt), randomKill);
    result.children += 1;
    result.childMs += outcome.durationMs;
    const when = `${family.name} child ${result.children} (planned: ${next}${stopAt ? ` #${stopAt.occurrence}` : ` ${randomKill!.delayMs} ms after the ${randomKill!.from}`})`;
    if (outcome.killedAt !== undefined) {
      kills.set(outcome.killedAt, kills.get(outcome.killedAt)! + 1);
      if (outcome.killedAt === 'random') {
        const point = outcome.crossed.at(-1) ?? 'start-up';
        result.randomKillPoints.set(point, (result.randomKillPoints.get(point) ?? 0) + 1);
      }
      await family.afterKill();
    } else {
      result.completedRuns += 1;
      noteReport(outcome, when);
    }
    await check(when);
  }

  // The last runs: no kill, until one completes (a Dovecot session a kill left behind may hold
  // the mailbox for a moment: [IN-USE] is counted and retried, not a failure). New mail, a
  // large message among it, arrives first, so the last run also writes (and spools) messages.
  await deliver(1, 1);
  for (let attempt = 1; ; attempt++) {
    expect(attempt, `seed ${seed}: no clean final run`).toBeLessThanOrEqual(MAX_FINAL_ATTEMPTS);
    const outcome = await runChild(family.childConfig(undefined), undefined);
    result.children += 1;
    result.childMs += outcome.durationMs;
    result.finalReports.push(outcome.report!);
    noteReport(outcome, `${family.name} final run ${attempt}`);
    await check(`${family.name} final run ${attempt}`);
    if (outcome.report!.stopReason === 'complete') break;
    await sleep(IN_USE_RETRY_DELAY_MS);
  }
  result.durationMs = Date.now() - started;
  return result;
}

/** Everything a family must hold once the last run completed. */
export async function checkFinalState(family: Family, mailbox: Mailbox, result: CampaignResult): Promise<void> {
  const where = `seed ${seed}, ${family.name}`;
  expect(await dovecot.listMaildir(mailbox.user), `${where}: the mailbox is drained`).toEqual([]);
  expect(result.unexpectedReports, where).toEqual([]);
  const seen = await family.observe();
  const sources = mailbox.sources;

  // Store: one object per message, exact bytes, nothing else.
  expect(seen.stray, `${where}: stray objects`).toEqual([]);
  expect(seen.objects.size, `${where}: objects`).toBe(sources.length);
  expect([...seen.objects.values()].sort(), `${where}: stored bytes`).toEqual(sources.map((s) => s.sha256).sort());

  // Ledger: one announced entry per object and per message, under the key of its UIDL.
  expect(seen.entries.size, `${where}: ledger entries`).toBe(sources.length);
  const uidValidities = new Set<string>();
  const bySha = new Map([...seen.entries.values()].map((e) => [e.sha256, e]));
  for (const s of sources) {
    const entry = bySha.get(s.sha256);
    expect(entry, `${where}: message ${s.index} has a ledger entry`).toBeDefined();
    expect(entry!.status, `${where}: message ${s.index}`).toBe('announced');
    expect(entry!.key, `${where}: message ${s.index}`).toBe(messageKey(family.mailboxId, entry!.uidl));
    expect(seen.objects.get(entry!.key!), `${where}: message ${s.index}`).toBe(s.sha256);
    // The UIDL is this message's: Dovecot numbers messages in delivery order from UID 1.
    const uidl = DOVECOT_UIDL.exec(entry!.uidl);
    expect(uidl, `${where}: UIDL ${entry!.uidl}`).not.toBeNull();
    expect(parseInt(uidl![1]!, 16), `${where}: UID of message ${s.index}`).toBe(s.index + 1);
    uidValidities.add(uidl![2]!);
  }
  expect(uidValidities.size, where).toBe(1);
  for (const key of seen.objects.keys()) {
    expect([...seen.entries.values()].some((e) => e.key === key), `${where}: object ${key} has an entry`).toBe(true);
  }
  const { ledger, close } = family.freshLedger();
  const looked = await ledger.lookup(family.mailboxId, [...seen.entries.keys()]);
  expect(looked.size, where).toBe(sources.length);
  for (const [uidl, e] of looked) {
    expect({ status: e.status, sha256: e.sha256, key: e.key }, `${where}: lookup ${uidl}`).toEqual({
      status: 'announced',
      sha256: seen.entries.get(uidl)!.sha256,
      key: seen.entries.get(uidl)!.key,
    });
  }
  expect(await ledger.pending(family.mailboxId), where).toEqual([]);
  await close();

  // Events: every message announced; all copies of an event carry its one id and sha256.
  expect(seen.events.size, `${where}: distinct Email Stored events`).toBe(sources.length);
  for (const e of seen.entries.values()) {
    const view = seen.events.get(e.eventId);
    expect(view, `${where}: event of ${e.uidl}`).toBeDefined();
    expect([...view!.sha256s], `${where}: event ${e.eventId}`).toEqual([e.sha256]);
    expect([...view!.uidls], `${where}: event ${e.eventId}`).toEqual([e.uidl]);
    expect([...view!.keys], `${where}: event ${e.eventId} names the object`).toEqual([e.key]);
  }
}

export function summary(family: Family, r: CampaignResult, seen: Observation, leftovers: string[]): string {
  const counts = [...seen.events.values()].map((v) => v.count);
  const duplicated = counts.filter((c) => c > 1).length;
  const deletedUnmarked = [...seen.entries.values()].filter((e) => e.deletedAt === undefined).length;
  return (
    `[drain-crash ${family.name}] seed ${seed}: ${r.children} children in ${(r.durationMs / 1000).toFixed(1)} s ` +
    `(${(r.childMs / 1000).toFixed(1)} s in children, ${(r.checkMs / 1000).toFixed(1)} s in checks); ` +
    `kills ${JSON.stringify(Object.fromEntries(r.kills))} (random ones after ${JSON.stringify(Object.fromEntries(r.randomKillPoints))}); runs that ended by themselves ${r.completedRuns}; ` +
    `in-use ${r.inUse}, busy ${r.busy}; delivered ${r.deliveredSmall} small + ${r.deliveredLarge} large; ` +
    `events: ${counts.length} ids, ${duplicated} published more than once (max ${Math.max(0, ...counts)}); ` +
    `entries without deletedAt ${deletedUnmarked}; leftover temp/spool files ${leftovers.length}`
  );
}
