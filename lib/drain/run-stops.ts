/**
 * What ends a run from outside, and what each does to the POP3 session:
 *
 * - the budget's deadline: nothing more is requested; what is in flight and cannot arrive by the
 *   hard deadline is cut off (the pipeline decides, plan.ts endOfSessionVerdict);
 * - the hard deadline: the session is closed at once (no QUIT: nothing is deleted);
 * - the graceful signal (a first SIGINT/SIGTERM): nothing more is requested (the pipeline asks
 *   the signal before each RETR), the run stops at the next message and QUITs; if the session
 *   has not ended INTERRUPT_GRACE_MS after the signal (a large message still arriving on a slow
 *   link, a server that does not answer), it is closed. No estimate from the rate measured so
 *   far decides this: early in a run it is too pessimistic to tell a fast link from a slow one;
 * - the hard signal (a second one): the session is closed at once.
 *
 * Closing is an abort (Pop3Error ABORTED), so the report says `cancelled` (a signal) or
 * `deadline`, never an error of the run's own making. The timers and listeners live here; the
 * decisions stay pure in plan.ts.
 */
import type { Clock } from './ports.js';
import type { StopReason } from './report.js';

/** After a first stop signal, how long the run has to end its session (QUIT answered or not). */
export const INTERRUPT_GRACE_MS = 2_000;

export interface RunStopHooks {
  /** Close the session at once, if there is one: everything pending fails with ABORTED (`why`). */
  abort(why: string): void;
  /** The deadline came: cut off what is in flight when it cannot arrive by the hard deadline. */
  cutOffIfLate(reason: StopReason): void;
  warn(message: string): void;
}

export interface RunStopInputs {
  clock: Clock;
  /** Run clock: no new message after this. */
  deadline: number | undefined;
  /** Run clock: the session is closed at this instant. */
  hardDeadline: number | undefined;
  signal: AbortSignal | undefined;
  hardSignal: AbortSignal | undefined;
}

export class RunStops {
  /** Aborted when the session must close at once: for a client still connecting (its `signal`). */
  private readonly closeNow = new AbortController();
  private interrupted = false;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly unlisten: Array<() => void> = [];

  constructor(
    private readonly inputs: RunStopInputs,
    private readonly hooks: RunStopHooks,
  ) {}

  /** For the POP3 client's options: aborted when the session must close at once. */
  get clientSignal(): AbortSignal {
    return this.closeNow.signal;
  }

  /** Start the clocks and listen for the signals; `disarm` undoes it all. */
  arm(): void {
    const { clock, deadline, hardDeadline, signal, hardSignal } = this.inputs;
    if (deadline !== undefined) {
      this.after(deadline - clock.now(), () => this.hooks.cutOffIfLate('deadline'));
    }
    if (hardDeadline !== undefined) {
      this.after(hardDeadline - clock.now(), () => this.close('hard deadline reached: abandoning the session (nothing is deleted)', 'the deadline passed: connection closed'));
    }
    this.listen(signal, () => this.interrupt());
    this.listen(hardSignal, () => this.close('stopped at once: abandoning the session (nothing is deleted)', 'stopped at once: connection closed'));
  }

  disarm(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.length = 0;
    for (const u of this.unlisten) u();
    this.unlisten.length = 0;
  }

  /** The first signal: the session ends within INTERRUPT_GRACE_MS. */
  private interrupt(): void {
    if (this.interrupted) return;
    this.interrupted = true;
    this.after(INTERRUPT_GRACE_MS, () =>
      this.close('interrupted: the session did not end in time; abandoning it (nothing more is deleted)', 'interrupted: connection closed'),
    );
  }

  private close(log: string, why: string): void {
    if (this.closeNow.signal.aborted) return;
    this.hooks.warn(log);
    this.hooks.abort(why);
    this.closeNow.abort();
  }

  private after(ms: number, fn: () => void): void {
    const timer = setTimeout(fn, Math.max(0, ms));
    timer.unref();
    this.timers.push(timer);
  }

  private listen(signal: AbortSignal | undefined, fn: () => void): void {
    if (signal === undefined) return;
    if (signal.aborted) {
      fn();
      return;
    }
    signal.addEventListener('abort', fn, { once: true });
    this.unlisten.push(() => signal.removeEventListener('abort', fn));
  }
}
