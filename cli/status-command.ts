/**
 * `popdrain status`: each mailbox of an output folder — its last run, what the ledger holds,
 * anything pending (stored but not announced, a tripped UIDL-reset guard). With
 * `--accept-uidl-reset`, the next run of a tripped mailbox may proceed.
 */
import { outDir } from './out-dir.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { FileLedger, LEDGER_SUBDIR } from '../lib/adapters/local/index.js';
import type { Lease, MailboxState } from '../lib/drain/ports.js';
import { EXIT, UsageError, type ExitCode } from './exit-codes.js';
import { formatBytes } from './progress.js';
import { stateFolder } from './state-folder.js';

export interface StatusOptions {
  out?: string;
  id?: string;
  json?: boolean;
  'accept-uidl-reset'?: boolean;
}

const when = (ms: number | undefined): string => (ms === undefined ? 'never' : new Date(ms).toISOString());

const isoOrNull = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

/** A status row for --json: every instant an ISO date. */
function jsonRow<R extends { state: MailboxState; lease: Lease | null }>(r: R): R | Record<string, unknown> {
  const { lastRun, lastSuccessAt, backlogSince, uidlResetTrippedAt, ...rest } = r.state;
  return {
    ...r,
    state: {
      ...rest,
      ...(lastRun === undefined ? {} : { lastRun: { ...lastRun, startedAt: isoOrNull(lastRun.startedAt), finishedAt: isoOrNull(lastRun.finishedAt) } }),
      lastSuccessAt: isoOrNull(lastSuccessAt),
      backlogSince: isoOrNull(backlogSince),
      uidlResetTrippedAt: isoOrNull(uidlResetTrippedAt),
    },
    lease: r.lease === null ? null : { ...r.lease, expiresAt: isoOrNull(r.lease.expiresAt) },
  };
}

export async function runStatus(positionals: string[], o: StatusOptions): Promise<ExitCode> {
  if (positionals.length > 0) throw new UsageError(`status takes no arguments (got "${positionals[0]}"); use --out DIR and --id ID`);
  const folder = stateFolder(o.out === undefined ? undefined : outDir(o.out));
  if (folder.notice !== undefined) process.stderr.write(`popdrain: ${folder.notice}\n`);
  const out = folder.dir;
  const dir = join(out, LEDGER_SUBDIR);
  if (!existsSync(dir)) throw new UsageError(`${out} holds no popdrain ledger (nothing drained there yet?)`);
  const ledger = new FileLedger({ dir });
  try {
    let ids = await ledger.mailboxIds();
    if (o.id !== undefined) {
      if (!ids.includes(o.id)) throw new UsageError(`no mailbox "${o.id}" in ${out} (have: ${ids.join(', ') || 'none'})`);
      ids = [o.id];
    }
    const rows = [];
    for (const id of ids) {
      let state = await ledger.getMailboxState(id);
      if (o['accept-uidl-reset'] === true && state.uidlResetTrippedAt !== undefined) {
        await ledger.updateMailboxState(id, { acceptUidlReset: true });
        state = await ledger.getMailboxState(id);
        if (o.json !== true) process.stdout.write(`${id}: UIDL reset accepted; the next run re-fetches what looks new\n`);
      }
      const counts = await ledger.counts(id);
      const pending = await ledger.pending(id);
      const lease = await ledger.leaseHolder(id, Date.now());
      rows.push({ mailboxId: id, state, counts, pending: pending.map((p) => ({ uidl: p.uidl, key: p.key, size: p.size })), lease: lease ?? null });
    }
    if (o['accept-uidl-reset'] === true && !rows.some((r) => r.state.acceptUidlReset === true)) {
      throw new UsageError(o.id === undefined ? 'no mailbox has a tripped UIDL-reset guard' : `the UIDL-reset guard of "${o.id}" has not tripped`);
    }
    if (o.json === true) {
      // ISO dates, as in drain --json (the ledger keeps epoch ms).
      process.stdout.write(`${JSON.stringify(rows.map(jsonRow), null, 2)}\n`);
      return EXIT.OK;
    }
    if (rows.length === 0) process.stdout.write(`no mailboxes in ${out}\n`);
    for (const r of rows) {
      const last = r.state.lastRun;
      process.stdout.write(`${r.mailboxId}\n`);
      process.stdout.write(
        last === undefined
          ? '  last run: never\n'
          : `  last run: ${when(last.finishedAt)} ${last.stopReason}: fetched ${last.fetched} (${formatBytes(last.fetchedBytes)}), skipped ${last.skipped}, deleted ${last.deleted}, failures ${last.failures}${last.moreRemaining ? ', more remained' : ''}\n`,
      );
      process.stdout.write(`  last success: ${when(r.state.lastSuccessAt)}\n`);
      process.stdout.write(`  ledger: ${r.counts.announced} announced, ${r.counts.stored} stored not announced, ${r.counts.skipped} skipped, ${r.counts.deleted} deleted from the server\n`);
      if (r.pending.length > 0) process.stdout.write(`  pending: ${r.pending.length} stored but not announced (the next run announces them)\n`);
      if (r.state.uidlResetTrippedAt !== undefined) {
        process.stdout.write(
          r.state.acceptUidlReset === true
            ? `  UIDL-reset guard tripped ${when(r.state.uidlResetTrippedAt)}; accepted: the next run proceeds\n`
            : `  UIDL-reset guard TRIPPED ${when(r.state.uidlResetTrippedAt)}: check the mailbox, then popdrain status --accept-uidl-reset --id ${r.mailboxId}\n`,
        );
      }
      if (r.lease !== null) process.stdout.write(`  running now (lease held until ${when(r.lease.expiresAt)})\n`);
    }
    return EXIT.OK;
  } finally {
    await ledger.close();
  }
}
