/**
 * The clocks of a `Pop3Channel` (client.ts): the caller's AbortSignal, the session's hard
 * deadline (`Pop3ClientOptions.deadline`) and the watchdog that, while connected, asks
 * deadline.ts whether the server has kept the head of the pipeline waiting too long. It owns
 * when the server last sent something (`lastActivity`); the channel reports activity with
 * `touch()`. Whatever it finds goes to the channel's `fail`.
 */
import type { Pop3ClientOptions, Pop3Timeouts } from './client-options.js';
import { overdue } from './deadline.js';
import { Pop3Error, type Pop3Phase } from './errors.js';
import type { Pending } from './pending.js';

/** What the watch reads from, and reports to, its channel. */
export interface WatchedChannel {
  /** The command whose answer is awaited first, if any. */
  head(): Pending | undefined;
  /** Nothing can be expected from the server now (we hold it back, or the session ended). */
  idle(): boolean;
  /** The framer is inside a multi-line response. */
  readingBody(): boolean;
  currentPhase(): Pop3Phase;
  fail(error: Pop3Error): void;
}

export class ChannelWatch {
  /**
   * When the server last sent something (or we last wrote, or stopped waiting): for the
   * inactivity timeout in the middle of a body or listing. Status lines have their own
   * deadline (`Pending.waitingSince`).
   */
  lastActivity = 0;
  private watchdog: NodeJS.Timeout | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private abortListener: (() => void) | undefined;

  constructor(
    private readonly options: Pick<Pop3ClientOptions, 'signal' | 'deadline'>,
    private readonly timeouts: Pop3Timeouts,
    private readonly server: string,
    private readonly channel: WatchedChannel,
  ) {}

  /** Before dialling: watch the caller's AbortSignal and arm the hard deadline. */
  start(): void {
    const signal = this.options.signal;
    if (signal?.aborted) throw new Pop3Error('ABORTED', 'aborted before connecting', { phase: 'connect' });
    if (signal !== undefined) {
      this.abortListener = () =>
        this.channel.fail(new Pop3Error('ABORTED', 'aborted by the caller', { phase: this.channel.currentPhase() }));
      signal.addEventListener('abort', this.abortListener, { once: true });
    }
    this.armDeadline();
  }

  /** The session's hard deadline: the session fails when it passes. */
  private armDeadline(): void {
    const deadline = this.options.deadline;
    if (deadline === undefined) return;
    const expire = (): void =>
      this.channel.fail(new Pop3Error('ABORTED', 'the deadline passed: connection closed', { phase: this.channel.currentPhase() }));
    const left = deadline - Date.now();
    if (left <= 0) throw new Pop3Error('ABORTED', 'the deadline passed before connecting', { phase: 'connect' });
    this.deadlineTimer = setTimeout(expire, left);
    this.deadlineTimer.unref();
  }

  /** Once connected (again, after STLS): activity now, and the watchdog running. */
  connected(): void {
    this.touch();
    if (this.watchdog !== undefined) return;
    const shortest = Math.min(...Object.values(this.timeouts).filter((v) => v > 0));
    this.watchdog = setInterval(this.check, Math.min(1000, Math.max(5, Math.floor(shortest / 5))));
    this.watchdog.unref();
  }

  /** The server sent something, or we wrote, or stopped holding it back. */
  touch(): void {
    this.lastActivity = performance.now();
  }

  /** Stop every clock (the session failed or was closed). */
  stop(): void {
    if (this.abortListener !== undefined) {
      this.options.signal?.removeEventListener('abort', this.abortListener);
      this.abortListener = undefined;
    }
    if (this.watchdog !== undefined) {
      clearInterval(this.watchdog);
      this.watchdog = undefined;
    }
    clearTimeout(this.deadlineTimer);
    this.deadlineTimer = undefined;
  }

  /** Runs on an interval while connected; fails the session when the server went silent. */
  private readonly check = (): void => {
    const head = this.channel.head();
    const now = performance.now();
    if (head === undefined || this.channel.idle()) {
      // Nothing expected from the server, or we hold it back: silence is not its fault.
      this.lastActivity = now;
      if (head !== undefined) head.waitingSince = now;
      return;
    }
    const error = overdue(head, {
      now,
      readingBody: this.channel.readingBody(),
      lastActivity: this.lastActivity,
      bodyIdleMs: this.timeouts.bodyIdleMs,
      server: this.server,
    });
    if (error !== undefined) this.channel.fail(error);
  };
}
