/** `popdrain drain`: one mailbox from a URL, or every mailbox of a --config file. */
import { outDir } from './out-dir.js';
import { refuseCommandsFromUnsafeConfig } from './config-safety.js';
import { MDA_STORE_CONCURRENCY, mdaArgv } from './mda-option.js';
import { resolve } from 'node:path';
import { LocalStateFolders } from './local-state-folders.js';
import { LocalCredentials } from '../lib/adapters/local/local-credentials.js';
import type { MaildirStore as MaildirStoreClass } from '../lib/adapters/local/maildir-store.js';
import { drainMailbox, type DrainBudget, type DrainProgress } from '../lib/drain/drain-mailbox.js';
import type { DeletePolicy, MailboxConfig } from '../lib/drain/mailbox.js';
import type { CredentialsProvider, DrainPorts } from '../lib/drain/ports.js';
import type { DrainReport } from '../lib/drain/report.js';
import { parseDuration } from '../lib/drain/units.js';
import type { Pop3TraceEvent } from '../lib/pop3/index.js';
import type { AwsAdapters } from './aws.js';
import { resolveMailbox, type ConnectionOptions } from './connection.js';
import { sameMailboxCheck, settleDefaultId } from './default-identity.js';
import { EXIT, exitCodeFor, UsageError, worstExitCode, type ExitCode } from './exit-codes.js';
import { positiveInt, size } from './option-values.js';
import { stderrLogger } from './stderr-logger.js';
import { shownInReport } from './shown-in-report.js';
import { parseMailboxUrl } from './mailbox-url.js';
import { createProgress, formatBytes } from './progress.js';
import { stateFolder } from './state-folder.js';
import { withoutUndefined } from '../lib/drain/without-undefined.js';

export interface DrainCommandOptions extends ConnectionOptions {
  out?: string;
  mda?: string;
  'mda-shell'?: boolean;
  maildir?: string;
  keep?: boolean;
  delete?: boolean;
  'keep-days'?: string;
  'max-size'?: string;
  'max-messages'?: string;
  'max-bytes'?: string;
  'max-time'?: string;
  'dry-run'?: boolean;
  refetch?: boolean;
  config?: string;
  parallel?: string;
  json?: boolean;
  quiet?: boolean;
  trace?: boolean;
  'insecure-plaintext'?: boolean;
  'no-uidl-reset-guard'?: boolean;
  'new-mailbox'?: boolean;
  's3-bucket'?: string;
  's3-prefix'?: string;
  'kms-key-id'?: string;
  'ledger-table'?: string;
  'event-bus'?: string;
  'aws-region'?: string;
  'aws-endpoint'?: string;
  'secrets-manager'?: boolean;
}

function deletePolicyFrom(o: DrainCommandOptions): DeletePolicy | undefined {
  const chosen = [o.keep === true, o.delete === true, o['keep-days'] !== undefined].filter(Boolean).length;
  if (chosen > 1) throw new UsageError('choose one of --keep, --delete and --keep-days');
  if (o.delete === true) return { mode: 'delete' };
  if (o['keep-days'] !== undefined) return { mode: 'keep-days', days: positiveInt(o['keep-days'], '--keep-days')! };
  if (o.keep === true) return { mode: 'keep' };
  return undefined;
}

function traceWriter(label: string): (e: Pop3TraceEvent) => void {
  return (e) => {
    const dir = e.direction === 'client' ? 'C:' : e.direction === 'server' ? 'S:' : '--';
    process.stderr.write(`${label} ${dir} ${e.line}\n`);
  };
}

export function summarize(report: DrainReport, where: string): string {
  const lines: string[] = [];
  const status = report.stopReason === 'complete' ? 'drained' : report.stopReason === 'cancelled' ? 'interrupted' : `stopped: ${report.stopReason}`;
  const later = report.retryAfterSeconds === undefined ? ' (retry later)' : ` (retry later: the server allows one login per ${report.retryAfterSeconds} s)`;
  lines.push(`${report.mailboxId}: ${status}${report.ok ? '' : report.retryLater ? later : ''}`);
  if (report.serverDeletesRetrieved) lines.push('  the server announces EXPIRE 0: it deletes every message once retrieved, whatever the delete policy says');
  if (report.serverMessages > 0 || report.stopReason === 'complete') {
    lines.push(`  server: ${report.serverMessages} messages, ${formatBytes(report.serverBytes)}${report.uidlSupported ? '' : ' (no UIDL: header digests used)'}`);
  }
  if (report.plan !== undefined) {
    lines.push(`  would fetch ${report.plan.fetch.length} (${formatBytes(report.plan.fetch.reduce((n, m) => n + m.size, 0))}), skip ${report.plan.skip.length} over the size cap, delete ${report.plan.delete.length}, announce again ${report.plan.announce}`);
    for (const m of report.plan.fetch.slice(0, 50)) lines.push(`    fetch #${m.number}  ${formatBytes(m.size).padStart(8)}  ${m.uidl}`);
    if (report.plan.fetch.length > 50) lines.push(`    ... and ${report.plan.fetch.length - 50} more`);
    for (const m of report.plan.skip) lines.push(`    skip  #${m.number}  ${formatBytes(m.size).padStart(8)}  ${m.uidl}`);
  } else {
    lines.push(
      `  fetched ${report.fetched} (${formatBytes(report.fetchedBytes)}), already had ${report.alreadyKnown}, skipped ${report.skipped} over the size cap, deleted ${report.deleted}`,
    );
    if (report.unconfirmedDeletes > 0) {
      lines.push(`  ${report.unconfirmedDeletes} deletions not confirmed (the server closed the connection without answering QUIT): the next run records which the server applied`);
    }
    lines.push(`  announced ${report.announced} events${report.reannounced > 0 ? ` (${report.reannounced} from an earlier run)` : ''}; pending ${report.pendingAnnouncements}`);
    if (report.refetch !== undefined) {
      const r = report.refetch;
      lines.push(`  refetched ${r.refetched} already stored: ${r.same} the same${r.restored > 0 ? `, ${r.restored} written again (the stored copy was missing)` : ''}, ${r.differences.length} differ (stored copies kept)`);
      for (const d of r.differences.slice(0, 10)) {
        lines.push(`    differs ${d.uidl}: stored sha256 ${d.storedSha256 ?? '?'} (${d.storedSize} bytes), received ${d.receivedSha256} (${d.receivedSize} bytes); the stored copy ${d.storedCopy === 'differs' ? 'holds other bytes' : d.storedCopy === 'written' ? 'was missing' : 'has the received bytes'}`);
      }
    }
    if (report.importedLeft !== undefined) lines.push(`  left ${report.importedLeft} on the server: known only from an imported seen-list (never deleted; --refetch fetches them)`);
  }
  if (report.plan !== undefined) lines.push('  dry run: nothing was fetched, stored, announced or deleted');
  else if (report.moreRemaining) lines.push(`  ${report.remaining} messages remain: run again to continue`);
  if (report.error !== undefined) lines.push(`  error: ${report.error.message}${report.error.hint === undefined ? '' : `\n  ${report.error.hint}`}`);
  const shown = report.failures.filter((f) => f !== report.error).slice(0, 10);
  for (const f of shown) lines.push(`  failed${f.uidl ? ` ${f.uidl}` : ''}: ${f.code}: ${f.message}`);
  if (report.failures.length > shown.length + (report.error ? 1 : 0)) lines.push(`  ... ${report.failures.length - shown.length} more failures (see --json)`);
  if (report.stopReason === 'uidl-reset-suspected') {
    lines.push('  most known messages vanished and unknown ones appeared (a UIDL reset?); nothing was fetched.');
    lines.push('  check the mailbox, then: popdrain status --accept-uidl-reset --id ' + report.mailboxId);
  }
  if (report.fetched > 0) lines.push(`  stored in ${where}`);
  else if (report.plan === undefined) lines.push(`  messages go to ${where}`);
  lines.push(`  took ${(report.durationMs / 1000).toFixed(1)} s`);
  return lines.join('\n');
}

/** One line over the mailboxes of a --config run: how many ended how, and the totals. */
export function overallSummary(reports: readonly DrainReport[], mailboxes: number): string {
  const byOutcome = new Map<string, number>();
  for (const r of reports) {
    const outcome = r.stopReason === 'complete' ? 'drained' : r.stopReason === 'cancelled' ? 'interrupted' : r.stopReason;
    byOutcome.set(outcome, (byOutcome.get(outcome) ?? 0) + 1);
  }
  if (reports.length < mailboxes) byOutcome.set('not started', mailboxes - reports.length);
  const outcomes = [...byOutcome].map(([k, n]) => `${n} ${k}`).join(', ');
  const fetched = reports.reduce((n, r) => n + r.fetched, 0);
  const bytes = reports.reduce((n, r) => n + r.fetchedBytes, 0);
  const failures = reports.reduce((n, r) => n + r.failures.filter((f) => f.uidl !== undefined).length, 0);
  return `all ${mailboxes} mailboxes: ${outcomes}; fetched ${fetched} (${formatBytes(bytes)})${failures > 0 ? `; ${failures} messages failed` : ''}`;
}

/**
 * Messages open in a local store at once. Creating, fsyncing and linking a file is kernel work
 * in the thread pool; many commits in flight let it overlap with fetching and share the folder
 * fsyncs. On 2,000 x 4 KB, 64 drained about 30 % faster than the engine's default of 8 (which
 * suits a remote store). The file store (--out) takes small messages whole and commits them in
 * batches of 64 in a worker thread, several batches in flight: 256 keep it busy (about 15 %
 * faster than 64 on the same mailbox); the engine bounds the bytes they hold (32 MB).
 */
const MAILDIR_STORE_CONCURRENCY = 64;
const FILE_STORE_CONCURRENCY = 256;

/** After a second SIGINT/SIGTERM, the process exits this long later if the run has not ended. */
const HARD_STOP_GRACE_MS = 1_000;

interface Job {
  mailbox: MailboxConfig;
  credentials: CredentialsProvider;
  /** The id is the default (no --id, no --config): checked against the state folder. */
  defaultId?: { user: string; host: string; port: number };
  /** Deliver to this MDA instead of the run's store. */
  mda?: string[] | undefined;
  /** From the config file (one machine only): this mailbox's state folder, Maildir, time budget. */
  out?: string;
  maildir?: string;
  maxTimeMs?: number;
}

export async function runDrain(positionals: string[], o: DrainCommandOptions): Promise<ExitCode> {
  if (o.config !== undefined && positionals.length > 0) throw new UsageError('give either a mailbox URL or --config FILE, not both');
  if (o.config === undefined && positionals.length !== 1) {
    throw new UsageError(positionals.length === 0 ? 'drain needs a mailbox URL (pop3s://user@host) or --config FILE' : `drain takes one mailbox URL, got ${positionals.length}`);
  }
  if (o.maildir !== undefined && o['s3-bucket'] !== undefined) throw new UsageError('choose --maildir or --s3-bucket, not both');
  const mda = mdaArgv(o);
  if (o.refetch === true && mda !== undefined) throw new UsageError('--refetch cannot go with --mda: an MDA cannot tell whether it holds a message, so it would get every message again');
  const policy = deletePolicyFrom(o);
  const maxSize = size(o['max-size'], '--max-size');
  const budget: DrainBudget = {};
  const maxMessages = positiveInt(o['max-messages'], '--max-messages');
  if (maxMessages !== undefined) budget.maxMessages = maxMessages;
  const maxBytes = size(o['max-bytes'], '--max-bytes');
  if (maxBytes !== undefined) budget.maxBytes = maxBytes;
  let maxTimeMs: number | undefined;
  if (o['max-time'] !== undefined) {
    maxTimeMs = parseDuration(o['max-time']);
    if (maxTimeMs === undefined || maxTimeMs <= 0) throw new UsageError(`--max-time wants a duration such as 90s, 10m or 1h, not "${o['max-time']}"`);
  }
  const parallel = positiveInt(o.parallel, '--parallel') ?? 1;
  const quiet = o.quiet === true;
  // Why a run stopped and each message's failure are in its summary (or the --json report):
  // printed once, there; with --quiet alone, nothing else shows them, so the engine's records stay.
  const summaryShowsStop = !quiet || o.json === true;
  const logger = stderrLogger({ omit: (message) => summaryShowsStop && shownInReport(message) });

  // The jobs: one from the URL, or all from the config file.
  const jobs: Job[] = [];
  let aws: AwsAdapters = {};
  const wantsAws = o['s3-bucket'] !== undefined || o['ledger-table'] !== undefined || o['event-bus'] !== undefined || o['secrets-manager'] === true;
  if (wantsAws) {
    const { createAwsAdapters } = await import('./aws.js');
    aws = createAwsAdapters({
      ...withoutUndefined({ region: o['aws-region'], endpoint: o['aws-endpoint'], bucket: o['s3-bucket'], prefix: o['s3-prefix'] }),
      ...withoutUndefined({ kmsKeyId: o['kms-key-id'], table: o['ledger-table'], eventBus: o['event-bus'] }),
      secretsManager: o['secrets-manager'] === true,
      logger,
    });
  }
  const adjust = (m: MailboxConfig): MailboxConfig => ({
    ...m,
    // Only what the command line sets overrides the mailbox's own settings.
    ...(policy === undefined ? {} : { deletePolicy: policy }),
    ...(maxSize === undefined ? {} : { maxMessageBytes: maxSize }),
    ...(o['no-uidl-reset-guard'] === true ? { uidlResetGuard: { ...m.uidlResetGuard, enabled: false } } : {}),
  });
  if (o.config !== undefined) {
    // The configuration schema (zod) loads only when there is a file to check: it costs a
    // noticeable part of the tool's start-up.
    const { ConfigError, loadMailboxFile } = await import('../lib/drain/config.js');
    let configured;
    try {
      configured = loadMailboxFile(o.config);
    } catch (error) {
      // One line on stderr: the problems (one per line in the message) joined with "; ".
      if (error instanceof ConfigError) throw new UsageError(error.message.replace(/:\n\s+/, ': ').replace(/\n\s*/g, '; '));
      throw error;
    }
    await refuseCommandsFromUnsafeConfig(o.config, configured);
    const local = new LocalCredentials({ env: process.env, logger });
    for (const m of configured) {
      const usesSm = m.secret.type === 'secrets-manager';
      if (usesSm && aws.credentials === undefined) {
        throw new UsageError(`mailbox "${m.id}" keeps its secret in Secrets Manager: add --secrets-manager (with AWS credentials)`);
      }
      if (o.refetch === true && m.mda !== undefined) throw new UsageError(`--refetch cannot go with mailbox "${m.id}", which delivers to an MDA (it would get every message again)`);
      // The command line's destination and budget override the file's.
      const own = withoutUndefined({
        out: o.out === undefined ? m.out : undefined,
        maildir: o.maildir === undefined && mda === undefined && o['s3-bucket'] === undefined ? m.maildir : undefined,
        maxTimeMs: maxTimeMs === undefined ? m.maxTimeMs : undefined,
      });
      jobs.push({ mailbox: adjust(m), credentials: usesSm ? aws.credentials! : local, mda: mda ?? m.mda, ...own });
    }
  } else {
    if (o['secrets-manager'] === true) throw new UsageError('--secrets-manager goes with --config (its mailboxes name their secrets)');
    const url = parseMailboxUrl(positionals[0]!, { insecurePlaintext: o['insecure-plaintext'] === true });
    if (url.tls === 'insecure-plaintext') {
      process.stderr.write('popdrain: WARNING: --insecure-plaintext: the password and every message cross the network unencrypted\n');
    }
    const resolved = await resolveMailbox(url, o, { interactive: process.stdin.isTTY === true, requireCredentials: true, logger });
    for (const w of resolved.warnings) process.stderr.write(`popdrain: ${w}\n`);
    const defaultId = o.id === undefined ? { user: resolved.mailbox.user, host: url.host, port: url.port } : undefined;
    jobs.push({ mailbox: adjust(resolved.mailbox), credentials: resolved.credentials!, mda, ...withoutUndefined({ defaultId }) });
  }

  const folder = stateFolder(o.out === undefined ? undefined : outDir(o.out));
  if (folder.notice !== undefined && !quiet) process.stderr.write(`popdrain: ${folder.notice}\n`);
  const out = folder.dir;
  // Opened on first use: a folder no mailbox uses is not created.
  const folders = new LocalStateFolders(out, logger);
  // Loaded only for --mda (it brings node:child_process): a drain into files starts without it.
  const MdaStore = jobs.some((j) => j.mda !== undefined) ? (await import('../lib/adapters/local/mda-store.js')).MdaStore : undefined;
  // Loaded only when a Maildir is the destination: a drain into files starts without it.
  const MaildirStore: typeof MaildirStoreClass | undefined =
    o.maildir !== undefined || jobs.some((j) => j.maildir !== undefined) ? (await import('../lib/adapters/local/maildir-store.js')).MaildirStore : undefined;
  const storeFor = (job: Job) =>
    job.mda !== undefined
      ? new MdaStore!({ argv: job.mda })
      : job.maildir !== undefined
        ? new MaildirStore!({ dir: resolve(job.maildir) })
        : (aws.store ?? (o.maildir !== undefined ? new MaildirStore!({ dir: resolve(o.maildir) }) : folders.get(job.out).store));
  const where =
    o['s3-bucket'] !== undefined ? `s3://${o['s3-bucket']}/${o['s3-prefix'] ?? 'messages/'}` : o.maildir !== undefined ? resolve(o.maildir) : out;

  // Without --id: continue the former default id's records; refuse to drain again, under a new
  // id, a mailbox this folder holds under another (unless --new-mailbox).
  const only = jobs[0];
  let checkListing: ((uidls: readonly string[]) => Promise<void>) | undefined;
  if (only?.defaultId !== undefined) {
    const settled = await settleDefaultId(only.mailbox.id, only.defaultId, aws.ledger ?? folders.get().ledger);
    if (settled.notice !== undefined && !quiet) process.stderr.write(`popdrain: ${settled.notice}\n`);
    only.mailbox = { ...only.mailbox, id: settled.id };
    if (aws.ledger === undefined && o['new-mailbox'] !== true) checkListing = sameMailboxCheck(settled.id, folders.get().ledger, out);
  }

  // Signals: the first stops requesting messages and ends the session within 2 s (QUIT if it
  // can be answered in time, else the connection is closed: lib/drain/run-stops.ts); the
  // second abandons the session at once.
  const graceful = new AbortController();
  const hard = new AbortController();
  let signals = 0;
  let runsOver = false;
  const onSignal = (name: string): void => {
    signals += 1;
    // The runs are over (the report is being written): a signal now is still an interruption,
    // and one more ends the process (without a handler, it would die by the signal, not 130).
    if (runsOver) {
      if (signals >= 2) process.exit(EXIT.INTERRUPTED);
      return;
    }
    if (signals === 1) {
      if (!quiet) process.stderr.write(`\npopdrain: ${name}: stopping: no new messages, QUIT (the connection is closed if not done within 2 s; again to stop at once)\n`);
      graceful.abort();
    } else if (signals === 2) {
      if (!quiet) process.stderr.write(`popdrain: ${name} again: stopping at once (without QUIT the server deletes nothing)\n`);
      hard.abort();
      // The engine abandons a session at once while fetching; one still connecting or logging
      // in would wait for its timeouts. Every adapter survives a crash at any instant, so
      // leaving now is as safe as being killed.
      setTimeout(() => process.exit(EXIT.INTERRUPTED), HARD_STOP_GRACE_MS).unref();
    }
  };
  const sigint = (): void => onSignal('SIGINT');
  const sigterm = (): void => onSignal('SIGTERM');
  process.on('SIGINT', sigint);
  process.on('SIGTERM', sigterm);

  const reports: DrainReport[] = [];
  const started = Date.now();
  try {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < jobs.length && !graceful.signal.aborted) {
        const job = jobs[next++]!;
        const ports: DrainPorts = {
          store: storeFor(job),
          ledger: aws.ledger ?? folders.get(job.out).ledger,
          events: aws.events ?? folders.get(job.out).events,
          credentials: job.credentials,
          logger,
        };
        const showProgress = !quiet && jobs.length === 1;
        const progress = createProgress(job.mailbox.id, process.stderr, showProgress);
        const jobBudget: DrainBudget = {
          ...budget,
          ...(maxTimeMs === undefined ? {} : { deadline: started + maxTimeMs }),
          ...(job.maxTimeMs === undefined ? {} : { deadline: Date.now() + job.maxTimeMs }),
        };
        const report = await drainMailbox(job.mailbox, ports, jobBudget, {
          signal: graceful.signal,
          ...(job.mda !== undefined
            ? { storeConcurrency: MDA_STORE_CONCURRENCY }
            : job.maildir !== undefined
            ? { storeConcurrency: MAILDIR_STORE_CONCURRENCY }
            : aws.store === undefined
            ? { storeConcurrency: o.maildir === undefined ? FILE_STORE_CONCURRENCY : MAILDIR_STORE_CONCURRENCY }
            : aws.storeConcurrency === undefined
              ? {}
              : { storeConcurrency: aws.storeConcurrency }),
          hardSignal: hard.signal,
          dryRun: o['dry-run'] === true,
          refetch: o.refetch === true,
          ...withoutUndefined({ checkListing }),
          // No progress shown (--quiet, several mailboxes): no progress object per message either.
          ...(showProgress ? { onProgress: (p: DrainProgress) => progress.update(p) } : {}),
          ...(o.trace === true ? { trace: traceWriter(job.mailbox.id) } : {}),
        });
        progress.done();
        reports.push(report);
        const shown = job.mda !== undefined ? `the MDA (${job.mda[0]})` : job.maildir !== undefined ? resolve(job.maildir) : job.out !== undefined ? folders.dirFor(job.out) : where;
        if (o.json !== true && !quiet) process.stdout.write(`${summarize(report, shown)}\n`);
      }
    };
    await Promise.all(Array.from({ length: Math.min(parallel, jobs.length) }, worker));
  } finally {
    // The handlers stay until the process exits: see onSignal.
    runsOver = true;
    await folders.close();
  }
  if (o.json === true) {
    process.stdout.write(`${JSON.stringify(jobs.length === 1 && o.config === undefined ? reports[0] : reports, null, 2)}\n`);
  }
  if (o.config !== undefined && o.json !== true && !quiet) process.stdout.write(`${overallSummary(reports, jobs.length)}\n`);
  if (reports.length < jobs.length && !quiet) {
    process.stderr.write(`popdrain: interrupted: ${jobs.length - reports.length} mailboxes not started\n`);
  }
  // A session abandoned on the second signal ends as "connection lost": that was the user.
  const codes = reports.map(exitCodeFor).map((c) => (hard.signal.aborted && c === EXIT.NETWORK ? EXIT.INTERRUPTED : c));
  if (reports.length < jobs.length || hard.signal.aborted || signals > 0) codes.push(EXIT.INTERRUPTED);
  return worstExitCode(codes);
}
