#!/usr/bin/env -S node --max-semi-space-size=4 --heap-growing-percent=100
/**
 * The `popdrain` command: drain POP3 mailboxes on one machine (files, a Maildir, or the AWS
 * adapters), check a server, show what has been drained. Bad input gets one line on stderr and
 * a documented exit code, never a stack trace.
 *
 * The shebang's `--max-semi-space-size=4` (MB) bounds V8's young generation: a drain keeps
 * thousands of messages in flight whose objects survive a scavenge or two, and V8 then grows
 * the semi-spaces to their 16 MB maximum (48 MB of young generation), which also delays the
 * release of the socket's and the store's buffers. Peak RSS with 16 / 4 / 2 MB: a 2,000 x 4 KB
 * drain 114-117 / 107 / 103-105 MB, a 20,000 x 4 KB one 199-207 / 180 / 181 MB, a rerun with
 * nothing new of 20,000 kept messages 112 / 93-96 / 90-93 MB. 2 MB cost a first drain ~8 % more
 * CPU than 4 MB (scavenges twice as often, with the same survivors: the messages in flight). It
 * is a flag of the `node` that starts (v8.setFlagsFromString at run time does nothing to a heap
 * already set up), so it applies when the file runs as a program: npm's bin link, `npx
 * popdrain`, `./dist/cli/main.js`; not under `node dist/cli/main.js`.
 *
 * `--heap-growing-percent=100` (the same kind of flag): after a full collection V8 lets the old
 * space grow to twice what it kept before the next one, instead of up to 4 times (its factor
 * when the heap limit is 2 GB or more, i.e. on machines with 8 GB of memory or more; less on
 * smaller ones). What a drain promotes is mostly garbage (the objects of the messages in flight),
 * so that is what the 4 times held. Peak RSS, alternated runs into /dev/shm: 2,000 x 4 KB
 * 103-105 -> 95-97 MB, the same with POP3 5 ms away 104-105 -> 94-98 MB, 20,000 x 4 KB 143-145 ->
 * 114-118 MB; CPU within the noise (a20k user+sys medians 4.92 -> 5.04 s; 17 full collections
 * instead of 7, ~+80 ms of pauses). 70 % cost ~6 % more CPU for 3 MB less; 30 %, +25 %.
 */
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { EXIT, UsageError, type ExitCode } from './exit-codes.js';
import { DrainError, describeError } from '../lib/drain/errors.js';

const USAGE = `popdrain — drain POP3 mailboxes: every message stored once, byte for byte, and announced as an event

Usage:
  popdrain drain pop3s://USER@HOST[:PORT] [options]   implicit TLS (port 995)
  popdrain drain pop3://USER@HOST[:PORT] [options]    STLS required (port 110)
  popdrain drain --config FILE [--parallel N] [options]
  popdrain poll --config FILE [--log-file PATH] [--parallel N] [options]   keep running: each mailbox on its schedule
  popdrain drain URL --every DURATION [options]      keep running: one mailbox every DURATION (at least 1m)
  popdrain check pop3s://USER@HOST[:PORT]            TLS, capabilities, login methods, message count; downloads nothing
  popdrain status [--out DIR] [--id ID] [--accept-uidl-reset]   (--out: as for drain)
  popdrain import pop3s://USER@HOST (--fetchmail-ids FILE | --mpop-uidls FILE) [--seen-account USER@HOST]
      [--id ID] [--out DIR] [--dry-run] [--json]   record the UIDLs fetchmail or mpop already fetched (kept on
      the server): drain then fetches only what is new, and never deletes those (--refetch fetches them)
  popdrain fleet list|failures|add FILE|update FILE|pause ID|resume ID|remove ID|drain-now ID|accept-uidl-reset ID|redrive-dlq
      (--stack-outputs FILE [--stack NAME] | --table T [--queue-url U] [--dlq-url U]) [--json]   an AWS deployment's registry
  popdrain --help | --version

The user part of the URL is percent-decoded (pop3s://jane%40example.com@mail.example.com).

Login:
  POPDRAIN_PASSWORD=...           password from the environment
  --password-file FILE            password from a file (first line); warns if others can read it
  --password-command CMD          password from a command's first line of output (30 s at most), run without
                                  a shell (quotes as in sh); --password-command-shell runs it with sh -c
  (neither)                       asked for on a terminal
  --user NAME                     overrides the URL's user
  --auth METHOD                   auto (under TLS PLAIN first; see check), SCRAM-SHA-256, SCRAM-SHA-1,
                                  CRAM-MD5, APOP, PLAIN, LOGIN, USER, XOAUTH2, OAUTHBEARER
  --oauth2-token-env VAR          an OAuth2 access token from the environment
  --oauth2-token-endpoint URL --oauth2-client-id ID [--oauth2-client-secret-env VAR | --oauth2-client-secret-file F]
      [--oauth2-refresh-token-env VAR | --oauth2-refresh-token-file F] [--oauth2-scope S]
                                  refresh access tokens as needed (a rotated refresh token is written back to its file)

TLS:
  --ca FILE                       trust only this CA (PEM), not the system's CAs
  --servername NAME               the name to verify the certificate against
  --fingerprint SHA256            pin the server certificate (as check prints it; repeat for a rotation):
                                  replaces verification by CA, so a self-signed certificate is accepted
  --insecure-plaintext            with pop3:// only: no TLS at all (loudly)

Where messages go (default: --out $XDG_DATA_HOME/popdrain, i.e. ~/.local/share/popdrain; a ./popdrain-data that
  holds a ledger, the default of earlier versions, is still used, with a notice):
  --out DIR                       one .eml file per message (the exact served bytes) under DIR/<mailbox id>/,
                                  the ledger in DIR/.popdrain, events in DIR/events.jsonl
  --maildir DIR                   deliver into a Maildir instead (LF line ends); ledger and events stay in --out
  --mda "COMMAND"                 deliver each message to COMMAND's stdin (no shell; --mda-shell for sh -c), one at
                                  a time; stored when it exits 0. At least once: POPDRAIN_EVENT_ID, POPDRAIN_SHA256,
                                  POPDRAIN_UIDL, POPDRAIN_MAILBOX_ID in its environment let it deduplicate
  --id ID                         the mailbox id (default: derived from user and host, not scheme or port; an id
                                  of an earlier version, which held the port, is continued when its records exist)
  --new-mailbox                   drain even when the server's messages are recorded under another id in the
                                  state folder (without --id, a run stops before fetching when half of them are)
  --s3-bucket B [--s3-prefix P] [--kms-key-id K]   store in S3
  --ledger-table T                the DynamoDB ledger          --event-bus E     EventBridge events
  --secrets-manager               (with --config) secrets from AWS Secrets Manager
  --aws-region R  --aws-endpoint URL                  (credentials from the usual AWS sources)

What to do:
  --keep (default) | --delete | --keep-days N          delete from the server once stored and announced
  --max-size SIZE                 skip larger messages (an "Email Skipped" event), e.g. 25MB
  --max-messages N  --max-bytes SIZE  --max-time DURATION (e.g. 10m)   the run's budget
  --dry-run                       list what would be fetched, skipped and deleted
  --refetch                       retrieve the messages already stored again: each is compared with the stored copy
                                  (differences reported; nothing stored is replaced) and announced again under its
                                  event id; messages known from an imported seen-list are fetched as new
  --no-uidl-reset-guard           do not stop when a drained mailbox suddenly shows only unknown UIDLs

Output:
  -v, --trace                     the protocol exchange on stderr (passwords and tokens redacted)
  --json                          the final report as JSON on stdout
  --quiet                         no progress, no summary

Poll (popdrain poll --config FILE, popdrain drain URL --every DURATION):
  each mailbox on its schedule (schedule.everyMinutes, default 5), jittered by up to 10 % per mailbox; failures
  that retrying cannot fix soon back off 15 min, 30 min ... 6 h; busy and login delays retry later
  --every DURATION                run every DURATION (at least 1m); with --config, instead of each schedule
  --log-file PATH                 one line per run, appended (reopened on SIGHUP; default stderr)
  --parallel N                    mailboxes running at once (default 1)
  SIGHUP reads the config again (a bad one is reported, the old kept); SIGINT/SIGTERM stop: exit 0 (twice: 130)

SIGINT/SIGTERM: no new messages; the session ends within 2 s (QUIT if it can be answered in time, else the
  connection is closed: what did not arrive stays on the server); exit 130. A second signal stops at once.

Exit codes: 0 done (also when stopped by the budget or when messages were skipped; the report says so),
  1 internal error, 2 usage or configuration, 3 login refused, 4 TLS, 5 network or server,
  6 mailbox busy (retry later), 7 partial (some messages not stored or announced; they stay on the server),
  8 UIDL reset suspected, 9 credentials unavailable, 130 interrupted.`;

const connectionOptions = {
  user: { type: 'string' },
  'password-file': { type: 'string' },
  'password-command': { type: 'string' },
  'password-command-shell': { type: 'boolean' },
  'oauth2-token-env': { type: 'string' },
  'oauth2-token-endpoint': { type: 'string' },
  'oauth2-client-id': { type: 'string' },
  'oauth2-client-secret-env': { type: 'string' },
  'oauth2-client-secret-file': { type: 'string' },
  'oauth2-refresh-token-env': { type: 'string' },
  'oauth2-refresh-token-file': { type: 'string' },
  'oauth2-scope': { type: 'string' },
  auth: { type: 'string' },
  ca: { type: 'string' },
  servername: { type: 'string' },
  fingerprint: { type: 'string', multiple: true },
  'insecure-plaintext': { type: 'boolean' },
  trace: { type: 'boolean', short: 'v' },
  json: { type: 'boolean' },
  id: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

const drainOptions = {
  ...connectionOptions,
  out: { type: 'string' },
  maildir: { type: 'string' },
  mda: { type: 'string' },
  'mda-shell': { type: 'boolean' },
  keep: { type: 'boolean' },
  delete: { type: 'boolean' },
  'keep-days': { type: 'string' },
  'max-size': { type: 'string' },
  'max-messages': { type: 'string' },
  'max-bytes': { type: 'string' },
  'max-time': { type: 'string' },
  'dry-run': { type: 'boolean' },
  refetch: { type: 'boolean' },
  config: { type: 'string' },
  parallel: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  'no-uidl-reset-guard': { type: 'boolean' },
  'new-mailbox': { type: 'boolean' },
  's3-bucket': { type: 'string' },
  's3-prefix': { type: 'string' },
  'kms-key-id': { type: 'string' },
  'ledger-table': { type: 'string' },
  'event-bus': { type: 'string' },
  'aws-region': { type: 'string' },
  'aws-endpoint': { type: 'string' },
  'secrets-manager': { type: 'boolean' },
} as const satisfies ParseArgsConfig['options'];

/** `poll`, and `drain --every`: the loop's own options (see cli/poll-command.ts). */
const pollOptions = {
  ...drainOptions,
  every: { type: 'string' },
  'log-file': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

const statusOptions = {
  out: { type: 'string' },
  id: { type: 'string' },
  json: { type: 'boolean' },
  'accept-uidl-reset': { type: 'boolean' },
} as const satisfies ParseArgsConfig['options'];

const importOptions = {
  'fetchmail-ids': { type: 'string' },
  'mpop-uidls': { type: 'string' },
  'seen-account': { type: 'string' },
  user: { type: 'string' },
  id: { type: 'string' },
  out: { type: 'string' },
  'insecure-plaintext': { type: 'boolean' },
  'dry-run': { type: 'boolean' },
  json: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
} as const satisfies ParseArgsConfig['options'];

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function parse<O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    // node:util's messages are one line; make them ours.
    const message = (error as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    throw new UsageError(`${message} (see popdrain --help)`);
  }
}

async function main(argv: string[]): Promise<ExitCode> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return command === undefined ? EXIT.USAGE : EXIT.OK;
  }
  if (command === '--version' || command === '-V') {
    process.stdout.write(`popdrain ${version()}\n`);
    return EXIT.OK;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    return EXIT.OK;
  }
  switch (command) {
    case 'drain': {
      const { values, positionals } = parse(rest, pollOptions);
      if (values.every !== undefined || values['log-file'] !== undefined) return (await import('./poll-command.js')).runPoll(positionals, values);
      const { runDrain } = await import('./drain-command.js');
      return runDrain(positionals, values);
    }
    case 'poll': {
      const { values, positionals } = parse(rest, pollOptions);
      return (await import('./poll-command.js')).runPoll(positionals, values);
    }
    case 'check': {
      const { values, positionals } = parse(rest, connectionOptions);
      const { runCheck } = await import('./check-command.js');
      return runCheck(positionals, values);
    }
    case 'status': {
      const { values, positionals } = parse(rest, statusOptions);
      const { runStatus } = await import('./status-command.js');
      return runStatus(positionals, values);
    }
    case 'import': {
      const { values, positionals } = parse(rest, importOptions);
      return (await import('./import-command.js')).runImport(positionals, values);
    }
    case 'fleet': {
      const { values, positionals } = parse(rest, { 'stack-outputs': { type: 'string' }, stack: { type: 'string' }, table: { type: 'string' }, 'queue-url': { type: 'string' }, 'dlq-url': { type: 'string' }, 'aws-region': { type: 'string' }, 'aws-endpoint': { type: 'string' }, json: { type: 'boolean' } });
      return (await import('./fleet-command.js')).runFleet(positionals, values);
    }
    default:
      throw new UsageError(`unknown command "${command}" (drain, poll, check, status or fleet; see popdrain --help)`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      process.stderr.write(`popdrain: ${error.message}\n`);
      process.exitCode = error.exitCode;
      return;
    }
    const message = describeError(error);
    if (error instanceof DrainError) {
      // A store, ledger or lease failure outside a run (reading the ledger to settle the mailbox id): not ours.
      process.stderr.write(`popdrain: error: ${error.code}: ${message}\n`);
      process.exitCode = error.code === 'CONFIG_INVALID' ? EXIT.USAGE : EXIT.PARTIAL;
      return;
    }
    process.stderr.write(`popdrain: internal error: ${message}\n`);
    if (process.env.POPDRAIN_DEBUG === '1' && error instanceof Error) process.stderr.write(`${error.stack}\n`);
    process.exitCode = EXIT.INTERNAL;
  },
);
