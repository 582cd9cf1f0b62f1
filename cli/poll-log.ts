/**
 * The log of `popdrain poll`: one line per run, suited to a service log (journald, a file that
 * logrotate turns over). `formatRunLine` is pure; `PollLog` writes to stderr or appends to a
 * file that `reopen()` (on SIGHUP) opens again by name, so a rotated file is let go.
 *
 *   2025-05-01T10:00:00.000Z jane ok stop=complete fetched=3 bytes=14210 known=120 skipped=0 deleted=0 failed=0 took=1.2s next=2025-05-01T10:05:12.000Z
 *   2025-05-01T10:00:01.000Z joe back-off stop=auth-failed error=AUTH_FAILED "..." took=0.3s streak=2 backoff=30m next=2025-05-01T10:30:01.000Z
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import type { DrainReport } from '../lib/drain/report.js';
import type { AfterRun } from './poll-schedule.js';

function span(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${(ms / 1000).toFixed(1)}s`;
}

/** A message as one quoted token: no line breaks, no bare quotes, at most 300 characters. */
function quoted(text: string): string {
  const flat = text.replace(/[\r\n\t]+/g, ' ').replace(/["\\]/g, (c) => `\\${c}`);
  return `"${flat.length > 300 ? `${flat.slice(0, 297)}...` : flat}"`;
}

export function formatRunLine(report: DrainReport, after: AfterRun, loggedAt: number): string {
  const parts = [new Date(loggedAt).toISOString(), report.mailboxId, after.outcome, `stop=${report.stopReason}`];
  if (report.error !== undefined) parts.push(`error=${report.error.code}`, quoted(report.error.message));
  const failed = report.failures.filter((f) => f.uidl !== undefined).length;
  parts.push(
    `fetched=${report.fetched}`,
    `bytes=${report.fetchedBytes}`,
    `known=${report.alreadyKnown}`,
    `skipped=${report.skipped}`,
    `deleted=${report.deleted}`,
    `failed=${failed}`,
  );
  if (report.moreRemaining) parts.push(`remaining=${report.remaining}`);
  parts.push(`took=${(report.durationMs / 1000).toFixed(1)}s`);
  if (after.streak > 0) parts.push(`streak=${after.streak}`);
  if (after.backoffMs !== undefined) parts.push(`backoff=${span(after.backoffMs)}`);
  parts.push(`next=${new Date(after.nextAt).toISOString()}`);
  return parts.join(' ');
}

/** A line about the loop itself (start, reload, stop), in the same shape. */
export function formatNoticeLine(text: string, loggedAt: number): string {
  return `${new Date(loggedAt).toISOString()} popdrain ${text.replace(/[\r\n]+/g, '; ')}`;
}

export class PollLog {
  private fd: number | undefined;

  /** `path`: append to this file (created 0600); otherwise stderr. */
  constructor(private readonly path?: string) {
    if (path !== undefined) this.fd = openSync(path, 'a', 0o600);
  }

  write(line: string): void {
    const text = `${line}\n`;
    if (this.fd === undefined) process.stderr.write(text);
    else writeSync(this.fd, text);
  }

  /** Open the file again by its name (after logrotate moved it); a failure keeps the old one. */
  reopen(): string | undefined {
    if (this.path === undefined) return undefined;
    let fd: number;
    try {
      fd = openSync(this.path, 'a', 0o600);
    } catch (error) {
      return `cannot reopen ${this.path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; still writing to the old file`;
    }
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = fd;
    return undefined;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
