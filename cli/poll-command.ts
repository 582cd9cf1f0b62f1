/**
 * `popdrain poll --config FILE` and `popdrain drain URL --every DURATION`: a loop that keeps
 * running, each mailbox on its schedule (cli/poll-schedule.ts decides when), one line per run
 * in the log (cli/poll-log.ts). Mailboxes run one at a time, or up to --parallel at once; a
 * mailbox never runs twice at once (here, and across processes by its ledger lease).
 *
 * Signals: SIGHUP reads the config again (a config that no longer loads is reported and the old
 * one kept) and reopens --log-file. The first SIGINT/SIGTERM stops starting runs and interrupts
 * the running ones as `drain` does (no new messages; QUIT within 2 s); the process then exits 0,
 * a stop asked for. A second signal abandons the sessions at once and exits 130.
 *
 * POPDRAIN_POLL_TIME_SCALE (for tests only): multiplies every interval, jitter, backoff and
 * server-requested delay, so a test can go through minutes of schedule in seconds.
 */
import { resolve } from 'node:path';
import { MaildirStore } from '../lib/adapters/local/maildir-store.js';
import { MdaStore } from '../lib/adapters/local/mda-store.js';
import { drainMailbox, type DrainBudget } from '../lib/drain/drain-mailbox.js';
import { describeError } from '../lib/drain/errors.js';
import type { MessageStore } from '../lib/drain/ports.js';
import type { DrainReport } from '../lib/drain/report.js';
import { withoutUndefined } from '../lib/drain/without-undefined.js';
import { resolveMailbox } from './connection.js';
import { sameMailboxCheck, settleDefaultId } from './default-identity.js';
import { EXIT, UsageError, type ExitCode } from './exit-codes.js';
import { LocalStateFolders } from './local-state-folders.js';
import { parseMailboxUrl } from './mailbox-url.js';
import { MDA_STORE_CONCURRENCY } from './mda-option.js';
import { formatNoticeLine, formatRunLine, PollLog } from './poll-log.js';
import { adjustMailbox, loadPollJobs, pollOverrides, type PollCommandOptions, type PollJob } from './poll-jobs.js';
import { decideAfterRun, dueNow, nextWakeAt, reconcile, regularNextAt, type PollEntry } from './poll-schedule.js';
import { stateFolder } from './state-folder.js';
import { stderrLogger } from './stderr-logger.js';

export type { PollCommandOptions } from './poll-jobs.js';

/** The loop looks again at least this often (timers cannot wait for ever; the clock may jump). */
const MAX_SLEEP_MS = 60_000;
/** After a second SIGINT/SIGTERM, the process exits this long later if the runs have not ended. */
const HARD_STOP_GRACE_MS = 1_000;

function timeScale(env: NodeJS.ProcessEnv): number {
  const raw = env.POPDRAIN_POLL_TIME_SCALE;
  if (raw === undefined || raw === '') return 1;
  const n = Number(raw);
  if (!(n > 0 && n <= 1)) throw new UsageError(`POPDRAIN_POLL_TIME_SCALE (for tests) wants a number in (0, 1], not "${raw}"`);
  return n;
}

export async function runPoll(positionals: string[], o: PollCommandOptions): Promise<ExitCode> {
  if (o.config !== undefined && positionals.length > 0) throw new UsageError('give either a mailbox URL or --config FILE, not both');
  if (o.config === undefined && positionals.length !== 1) throw new UsageError('poll needs --config FILE (or drain URL --every DURATION)');
  if (o.config === undefined && o.every === undefined) throw new UsageError('a mailbox URL runs in a loop with --every DURATION (e.g. drain URL --every 5m)');
  const overrides = pollOverrides(o);
  const scale = timeScale(process.env);
  const parallel = o.parallel === undefined ? 1 : Number(o.parallel);
  if (!Number.isSafeInteger(parallel) || parallel < 1) throw new UsageError(`--parallel wants a whole number of at least 1, not "${o.parallel}"`);
  const logger = stderrLogger({ omit: (message) => message === 'drain stopped' });
  const log = new PollLog(o['log-file'] === undefined ? undefined : resolve(o['log-file']));
  const say = (text: string): void => log.write(formatNoticeLine(text, Date.now()));

  const folder = stateFolder(o.out);
  if (folder.notice !== undefined) say(folder.notice);
  const folders = new LocalStateFolders(folder.dir, logger);

  // The jobs, by mailbox id.
  let jobs = new Map<string, PollJob>();
  let checkListing: ((uidls: readonly string[]) => Promise<void>) | undefined;
  if (o.config !== undefined) {
    jobs = new Map((await loadPollJobs(o.config, o, overrides, logger)).map((j) => [j.mailbox.id, j]));
  } else {
    const url = parseMailboxUrl(positionals[0]!, { insecurePlaintext: o['insecure-plaintext'] === true });
    if (url.tls === 'insecure-plaintext') say('WARNING: --insecure-plaintext: the password and every message cross the network unencrypted');
    const resolved = await resolveMailbox(url, o, { interactive: process.stdin.isTTY === true, requireCredentials: true, logger });
    for (const w of resolved.warnings) say(w);
    let mailbox = resolved.mailbox;
    if (o.id === undefined) {
      const settled = await settleDefaultId(mailbox.id, { user: mailbox.user, host: url.host, port: url.port }, folders.get().ledger);
      if (settled.notice !== undefined) say(settled.notice);
      mailbox = { ...mailbox, id: settled.id };
      if (o['new-mailbox'] !== true) checkListing = sameMailboxCheck(settled.id, folders.get().ledger, folders.defaultDir);
    }
    const job: PollJob = { mailbox: adjustMailbox(mailbox, overrides), credentials: resolved.credentials!, intervalMs: overrides.everyMs!, ...withoutUndefined({ mda: overrides.mda, maxTimeMs: overrides.maxTimeMs }) };
    jobs.set(job.mailbox.id, job);
  }
  const intervals = (): Array<{ id: string; intervalMs: number }> => [...jobs.values()].map((j) => ({ id: j.mailbox.id, intervalMs: Math.round(j.intervalMs * scale) }));
  let entries: PollEntry[] = reconcile([], intervals(), Date.now());

  // Waking the loop early: a run ended, a signal arrived.
  let wake = (): void => {};
  const sleep = (ms: number): Promise<void> =>
    new Promise((done) => {
      const timer = setTimeout(done, Math.max(0, Math.min(ms, MAX_SLEEP_MS)));
      wake = () => {
        clearTimeout(timer);
        done();
      };
    });

  const graceful = new AbortController();
  const hard = new AbortController();
  let signals = 0;
  const onStop = (name: string): void => {
    signals += 1;
    if (signals === 1) {
      say(`${name}: stopping (running sessions get no new messages and QUIT within 2 s; again to stop at once)`);
      graceful.abort();
      wake();
    } else if (signals === 2) {
      say(`${name} again: stopping at once`);
      hard.abort();
      setTimeout(() => process.exit(EXIT.INTERRUPTED), HARD_STOP_GRACE_MS).unref();
    }
  };
  let reloading = false;
  const onHangup = (): void => {
    const reopened = log.reopen();
    if (reopened !== undefined) say(reopened);
    if (o.config === undefined || reloading || graceful.signal.aborted) return;
    reloading = true;
    loadPollJobs(o.config, o, overrides, logger).then(
      (loaded) => {
        reloading = false;
        const before = new Set(jobs.keys());
        jobs = new Map(loaded.map((j) => [j.mailbox.id, j]));
        entries = reconcile(entries, intervals(), Date.now());
        const added = [...jobs.keys()].filter((id) => !before.has(id));
        const removed = [...before].filter((id) => !jobs.has(id));
        say(`SIGHUP: read ${o.config} again: ${jobs.size} mailboxes${added.length > 0 ? `, added ${added.join(', ')}` : ''}${removed.length > 0 ? `, removed ${removed.join(', ')}` : ''}`);
        wake();
      },
      (error: unknown) => {
        reloading = false;
        say(`SIGHUP: ${o.config} not used, the previous configuration stays: ${error instanceof UsageError ? error.message : describeError(error)}`);
      },
    );
  };
  process.on('SIGINT', () => onStop('SIGINT'));
  process.on('SIGTERM', () => onStop('SIGTERM'));
  process.on('SIGHUP', onHangup);

  const storeFor = (job: PollJob): MessageStore =>
    job.mda !== undefined
      ? new MdaStore({ argv: job.mda })
      : job.maildir !== undefined
        ? new MaildirStore({ dir: resolve(job.maildir) })
        : o.maildir !== undefined
          ? new MaildirStore({ dir: resolve(o.maildir) })
          : folders.get(job.out).store;

  const runOne = async (job: PollJob): Promise<DrainReport> => {
    const local = folders.get(job.out);
    const budget: DrainBudget = withoutUndefined({
      maxMessages: overrides.maxMessages,
      maxBytes: overrides.maxBytes,
      deadline: job.maxTimeMs === undefined ? undefined : Date.now() + job.maxTimeMs,
    });
    return drainMailbox(job.mailbox, { store: storeFor(job), ledger: local.ledger, events: local.events, credentials: job.credentials, logger }, budget, {
      signal: graceful.signal,
      hardSignal: hard.signal,
      ...(job.mda === undefined ? {} : { storeConcurrency: MDA_STORE_CONCURRENCY }),
      ...withoutUndefined({ checkListing }),
    });
  };

  const running = new Set<Promise<void>>();
  const start = (entry: PollEntry): void => {
    const job = jobs.get(entry.id)!;
    entries = entries.map((e) => (e.id === entry.id ? { ...e, running: true } : e));
    const run = runOne(job)
      .then(
        (report) => {
          const current = entries.find((e) => e.id === entry.id);
          const after = decideAfterRun({ id: entry.id, intervalMs: current?.intervalMs ?? entry.intervalMs, endedAt: Date.now(), streak: current?.streak ?? entry.streak, report, timeScale: scale });
          log.write(formatRunLine(report, after, Date.now()));
          entries = entries.map((e) => (e.id === entry.id ? { ...e, running: false, nextAt: after.nextAt, streak: after.streak } : e));
        },
        (error: unknown) => {
          const nextAt = regularNextAt(entry.id, entry.intervalMs, Date.now());
          say(`${entry.id}: run failed: ${describeError(error)}; next=${new Date(nextAt).toISOString()}`);
          entries = entries.map((e) => (e.id === entry.id ? { ...e, running: false, nextAt } : e));
        },
      )
      .finally(() => {
        running.delete(run);
        wake();
      });
    running.add(run);
  };

  say(`polling ${jobs.size} mailboxes${o.config === undefined ? '' : ` from ${o.config}`} (pid ${process.pid}); state in ${folders.defaultDir}`);
  try {
    while (!graceful.signal.aborted) {
      const now = Date.now();
      for (const entry of dueNow(entries, now, parallel - running.size)) start(entry);
      // With every slot taken, only a run's end (or a signal) can change anything.
      const at = running.size >= parallel ? undefined : nextWakeAt(entries);
      await sleep(at === undefined ? MAX_SLEEP_MS : at - Date.now());
    }
    await Promise.all(running);
  } finally {
    await folders.close();
  }
  say(hard.signal.aborted ? 'stopped at once' : 'stopped');
  log.close();
  return hard.signal.aborted ? EXIT.INTERRUPTED : EXIT.OK;
}
