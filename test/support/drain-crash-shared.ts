// What the drain crash test and its child process (drain-crash-child.ts) agree on: the child's
// configuration and the lines it prints on stdout.
import type { MailboxConfig } from '../../lib/drain/mailbox.js';
import type { DrainPorts } from '../../lib/drain/ports.js';

/**
 * The step boundaries the child reports, in the order a message meets them:
 *
 * - `retr-chunk`      the first chunk of a message reached the store writer (mid-RETR), or a
 *                     small message received whole reached the store's `put` (not yet durable)
 * - `store-commit`    the store's commit resolved (the object is durable)
 * - `ledger-record`   a ledger record batch resolved (status 'stored')
 * - `event-publish`   an event batch with `Email Stored` events was published
 * - `mark-announced`  a markAnnounced batch resolved (status 'announced')
 * - `dele-acked`      the server answered +OK to a DELE (marked for deletion, QUIT not sent)
 * - `quit-sent`       QUIT was written to the socket (the server may be committing deletions)
 */
export const BOUNDARIES = [
  'retr-chunk',
  'store-commit',
  'ledger-record',
  'event-publish',
  'mark-announced',
  'dele-acked',
  'quit-sent',
] as const;
export type Boundary = (typeof BOUNDARIES)[number];

/** Where the child stops (freezes) so the parent can SIGKILL it exactly there. */
export interface StopAt {
  boundary: Boundary;
  /** Stop at the n-th crossing (from 1) of the boundary in this run. */
  occurrence: number;
  /** For `retr-chunk`: count only messages the server lists with at least this many bytes. */
  minSize?: number;
}

export interface AwsChildConfig {
  s3Endpoint: string;
  bucket: string;
  dynamoEndpoint: string;
  table: string;
  eventsEndpoint: string;
  bus: string;
  /** Where the S3 store spools large messages. */
  spoolDir: string;
}

export interface CrashChildConfig {
  family: 'local' | 'aws';
  mailbox: MailboxConfig;
  password: string;
  leaseTtlMs: number;
  stopAt?: StopAt;
  local?: { out: string };
  aws?: AwsChildConfig;
}

/** A child's ports before the reporting wrappers, and how to let go of them at the end. */
export interface ChildPorts {
  ports: Omit<DrainPorts, 'credentials'>;
  close(): Promise<void>;
}

/** The environment variable the child reads its configuration (JSON) from. */
export const CRASH_CONFIG_ENV = 'POPDRAIN_CRASH_CHILD_CONFIG';
/** A frozen child that nobody kills exits with this code after FREEZE_LIMIT_MS. */
export const FROZEN_EXIT_CODE = 86;
export const FREEZE_LIMIT_MS = 30_000;

/*
 * stdout lines (one per write; a pipe write is synchronous on Linux, so a line is out before
 * the child goes on):
 *
 *   B <boundary> <detail>     a boundary was crossed
 *   STOP <boundary>           the child froze right after the previous B line; kill it now
 *   REPORT <json>             the drain report (the run ended by itself)
 */
export type ChildLine =
  | { kind: 'boundary'; boundary: Boundary; detail: string }
  | { kind: 'stop'; boundary: Boundary }
  | { kind: 'report'; report: Record<string, unknown> }
  | { kind: 'other'; text: string };

export function parseChildLine(line: string): ChildLine {
  if (line.startsWith('B ')) {
    const [, boundary, ...rest] = line.split(' ');
    return { kind: 'boundary', boundary: boundary as Boundary, detail: rest.join(' ') };
  }
  if (line.startsWith('STOP ')) return { kind: 'stop', boundary: line.slice(5) as Boundary };
  if (line.startsWith('REPORT ')) return { kind: 'report', report: JSON.parse(line.slice(7)) as Record<string, unknown> };
  return { kind: 'other', text: line };
}
