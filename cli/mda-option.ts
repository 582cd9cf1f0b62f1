/** `--mda "COMMAND"` [`--mda-shell`]: the argv of a mail delivery agent to store each message. */
import { commandArgv, shellWordsProblem } from '../lib/drain/shell-words.js';
import { UsageError } from './exit-codes.js';

export interface MdaOptions {
  mda?: string;
  'mda-shell'?: boolean;
  maildir?: string;
  's3-bucket'?: string;
}

/**
 * Deliveries to one MDA at a time, in the order the messages come: an MDA such as procmail
 * locks the mailbox it writes, and a folder then reads in the server's order.
 */
export const MDA_STORE_CONCURRENCY = 1;

export function mdaArgv(o: MdaOptions): string[] | undefined {
  if (o['mda-shell'] === true && o.mda === undefined) throw new UsageError('--mda-shell goes with --mda');
  if (o.mda === undefined) return undefined;
  if (o.maildir !== undefined || o['s3-bucket'] !== undefined) throw new UsageError('choose one of --mda, --maildir and --s3-bucket');
  const shell = o['mda-shell'] === true;
  const problem = shell ? undefined : shellWordsProblem(o.mda);
  if (problem !== undefined) throw new UsageError(`--mda: ${problem} (--mda-shell runs it with sh -c)`);
  return commandArgv(o.mda, shell);
}
