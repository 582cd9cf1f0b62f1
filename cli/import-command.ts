/**
 * `popdrain import URL --fetchmail-ids FILE | --mpop-uidls FILE`: record the UIDLs another client
 * already fetched from this mailbox (its seen-list) in the local ledger as 'imported', so a first
 * drain fetches only what is new. The mailbox id follows the drain's rules (URL user and host,
 * `--id`, the former default id continued); the account selected in the file is the login's
 * user and the URL's host, or `--seen-account USER@HOST`. Imported messages are never deleted by
 * popdrain (no copy of them was stored); `drain --refetch` fetches them as new.
 */
import { createLocalAdapters } from '../lib/adapters/local/index.js';
import { mailboxIdProblem } from '../lib/drain/keys.js';
import { readTextFileBounded } from '../lib/drain/read-bounded.js';
import { MAX_SEEN_LIST_BYTES, parseSeenList, SeenListFormatError, type SeenAccount, type SeenListFormat } from '../lib/drain/seen-lists.js';
import { settleDefaultId } from './default-identity.js';
import { EXIT, UsageError, type ExitCode } from './exit-codes.js';
import { defaultMailboxId } from './mailbox-identity.js';
import { parseMailboxUrl } from './mailbox-url.js';
import { outDir } from './out-dir.js';
import { stateFolder } from './state-folder.js';

export interface ImportCommandOptions {
  'fetchmail-ids'?: string;
  'mpop-uidls'?: string;
  'seen-account'?: string;
  user?: string;
  id?: string;
  out?: string;
  'insecure-plaintext'?: boolean;
  'dry-run'?: boolean;
  json?: boolean;
  quiet?: boolean;
}

/** How long the import holds the mailbox's lease (it writes once). */
const IMPORT_LEASE_TTL_MS = 60_000;
/** Other accounts named in the summary line. */
const OTHERS_NAMED = 5;

export interface ImportReport {
  mailboxId: string;
  file: string;
  format: SeenListFormat;
  account: string;
  /** UIDLs of the account in the file (valid, each once). */
  listed: number;
  imported: number;
  /** Already in the ledger (drained, skipped or imported before): left as they were. */
  alreadyKnown: number;
  /** Lines of the account without a valid UIDL. */
  invalid: number;
  problems: string[];
  otherAccounts: string[];
  otherUidls: number;
  dryRun: boolean;
}

function splitAccount(text: string): SeenAccount {
  const at = text.lastIndexOf('@');
  if (at <= 0 || at === text.length - 1) throw new UsageError(`--seen-account wants USER@HOST, not "${text}"`);
  return { user: text.slice(0, at), host: text.slice(at + 1) };
}

function readSeenList(path: string): string {
  // Bounded as it is read, not by its stat size: /dev/zero or a FIFO reports 0 bytes.
  try {
    return readTextFileBounded(path, MAX_SEEN_LIST_BYTES);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== undefined) throw new UsageError(`cannot read ${path}: ${code}`);
    throw new UsageError(`${path} holds more than a seen-list of ${MAX_SEEN_LIST_BYTES} bytes; is it the right file?`);
  }
}

export function summarizeImport(r: ImportReport): string {
  const lines = [
    `${r.mailboxId}: ${r.dryRun ? 'would import' : 'imported'} ${r.imported} UIDLs of ${r.account} from ${r.file} (${r.format}); ${r.alreadyKnown} already known`,
  ];
  if (r.invalid > 0) lines.push(`  ${r.invalid} lines of the account hold no valid UIDL and were not imported: ${r.problems.join('; ')}`);
  if (r.otherAccounts.length > 0) {
    const named = r.otherAccounts.slice(0, OTHERS_NAMED).join(', ') + (r.otherAccounts.length > OTHERS_NAMED ? ', ...' : '');
    lines.push(`  ignored ${r.otherUidls} UIDLs of ${r.otherAccounts.length} other accounts (${named})`);
  }
  if (!r.dryRun && r.imported > 0) lines.push('  these messages are left on the server: never fetched, never deleted by popdrain (drain --refetch fetches them)');
  return lines.join('\n');
}

export async function runImport(positionals: string[], o: ImportCommandOptions): Promise<ExitCode> {
  if (positionals.length !== 1) throw new UsageError('import needs the mailbox URL (pop3s://user@host) it drains');
  const given = [o['fetchmail-ids'], o['mpop-uidls']].filter((f) => f !== undefined);
  if (given.length !== 1) throw new UsageError('import wants one of --fetchmail-ids FILE and --mpop-uidls FILE');
  const format: SeenListFormat = o['mpop-uidls'] !== undefined ? 'mpop' : 'fetchmail';
  const file = (o['mpop-uidls'] ?? o['fetchmail-ids'])!;
  const url = parseMailboxUrl(positionals[0]!, { insecurePlaintext: o['insecure-plaintext'] === true });
  const user = o.user ?? url.user;
  if (user === undefined || user === '') throw new UsageError('no user: put it in the URL (pop3s://user@host) or give --user');
  const account = o['seen-account'] !== undefined ? splitAccount(o['seen-account']) : { user, host: url.host };
  const requestedId = o.id ?? defaultMailboxId(user, url.host);
  const problem = mailboxIdProblem(requestedId);
  if (problem !== undefined) throw new UsageError(`--id "${requestedId}": ${problem}`);

  let selection;
  try {
    selection = parseSeenList(format, readSeenList(file), account);
  } catch (error) {
    if (error instanceof SeenListFormatError) throw new UsageError(`${file}: ${error.message}`);
    throw error;
  }
  if (!selection.found) {
    const found = selection.otherAccounts.length === 0 ? 'no accounts' : `only ${selection.otherAccounts.slice(0, OTHERS_NAMED).join(', ')}`;
    throw new UsageError(`${file} has no entries of ${account.user}@${account.host} (it holds ${found}): give --seen-account USER@HOST as the file names it`);
  }

  const folder = stateFolder(o.out === undefined ? undefined : outDir(o.out));
  if (folder.notice !== undefined && o.quiet !== true) process.stderr.write(`popdrain: ${folder.notice}\n`);
  const local = createLocalAdapters({ out: folder.dir });
  try {
    const ledger = local.ledger;
    let id = requestedId;
    if (o.id === undefined) {
      const settled = await settleDefaultId(id, { user, host: url.host, port: url.port }, ledger);
      if (settled.notice !== undefined && o.quiet !== true) process.stderr.write(`popdrain: ${settled.notice}\n`);
      id = settled.id;
    }
    const report: ImportReport = {
      mailboxId: id,
      file,
      format,
      account: `${account.user}@${account.host}`,
      listed: selection.uidls.length,
      imported: 0,
      alreadyKnown: 0,
      invalid: selection.invalid,
      problems: selection.problems,
      otherAccounts: selection.otherAccounts,
      otherUidls: selection.otherUidls,
      dryRun: o['dry-run'] === true,
    };
    if (report.dryRun) {
      report.alreadyKnown = (await ledger.lookup(id, selection.uidls)).size;
      report.imported = selection.uidls.length - report.alreadyKnown;
    } else {
      // The ledger has one writer per mailbox: the holder of its lease (a drain under way holds it).
      const lease = await ledger.acquireLease(id, `import-${process.pid}`, IMPORT_LEASE_TTL_MS, Date.now());
      if (lease === undefined) {
        process.stderr.write(`popdrain: mailbox ${id} is being drained right now: import when that run has ended\n`);
        return EXIT.BUSY;
      }
      try {
        const counts = await ledger.recordImported(id, selection.uidls, Date.now());
        report.imported = counts.imported;
        report.alreadyKnown = counts.known;
      } finally {
        await ledger.releaseLease(lease);
      }
    }
    if (o.json === true) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else if (o.quiet !== true) process.stdout.write(`${summarizeImport(report)}\n`);
    return EXIT.OK;
  } finally {
    await local.close();
  }
}
