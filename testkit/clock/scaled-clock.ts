/**
 * Compressed time for simulations that run real processes: simulated time runs `speed` times
 * faster than the wall clock from a shared origin, so every process that installs the same
 * clock (same origin, epoch and speed) reads the same simulated time without talking to the
 * others. `simulatedNow` is the pure mapping; `installScaledClock` makes a process's `Date`
 * (Date.now and `new Date()` without arguments) read it, and optionally runs the timers of a
 * second or more (`setTimeout`) `speed` times sooner, so a stand-in's visibility timeouts,
 * delays and retention follow simulated time too. Shorter timers (polls, I/O timeouts) stay
 * real: they measure the machine, not the simulated world.
 */

export interface ScaledClockSpec {
  /** Simulated epoch ms at the origin. */
  epochMs: number;
  /** Wall-clock epoch ms (the real Date.now()) at which simulated time is `epochMs`. */
  originMs: number;
  /** Simulated ms per wall ms (> 0). */
  speed: number;
}

/** Timers at least this long are scaled when `scaleTimers` is set. */
export const SCALED_TIMER_MIN_MS = 1000;

export const SCALED_CLOCK_ENV = {
  epochMs: 'POPDRAIN_SIM_EPOCH_MS',
  originMs: 'POPDRAIN_SIM_ORIGIN_MS',
  speed: 'POPDRAIN_SIM_SPEED',
  scaleTimers: 'POPDRAIN_SIM_SCALE_TIMERS',
} as const;

/** Simulated epoch ms at wall-clock epoch ms `wallMs`. */
export function simulatedNow(spec: ScaledClockSpec, wallMs: number): number {
  return Math.floor(spec.epochMs + (wallMs - spec.originMs) * spec.speed);
}

/** Wall ms a simulated duration takes. */
export function wallDelayMs(spec: ScaledClockSpec, simulatedMs: number): number {
  return simulatedMs / spec.speed;
}

/** The environment that makes a child install the same clock (see scaled-clock-install.ts). */
export function scaledClockEnv(spec: ScaledClockSpec, options: { scaleTimers?: boolean } = {}): Record<string, string> {
  return {
    [SCALED_CLOCK_ENV.epochMs]: String(spec.epochMs),
    [SCALED_CLOCK_ENV.originMs]: String(spec.originMs),
    [SCALED_CLOCK_ENV.speed]: String(spec.speed),
    ...(options.scaleTimers === true ? { [SCALED_CLOCK_ENV.scaleTimers]: 'true' } : {}),
  };
}

/** The clock an environment describes, or undefined when it describes none. */
export function scaledClockFromEnv(env: NodeJS.ProcessEnv): (ScaledClockSpec & { scaleTimers: boolean }) | undefined {
  const raw = [env[SCALED_CLOCK_ENV.epochMs], env[SCALED_CLOCK_ENV.originMs], env[SCALED_CLOCK_ENV.speed]];
  if (raw.some((v) => v === undefined || v === '')) return undefined;
  const [epochMs, originMs, speed] = raw.map(Number) as [number, number, number];
  if (![epochMs, originMs, speed].every(Number.isFinite) || speed <= 0) {
    throw new Error(`invalid scaled clock in the environment: ${raw.join(', ')}`);
  }
  return { epochMs, originMs, speed, scaleTimers: env[SCALED_CLOCK_ENV.scaleTimers] === 'true' };
}

/** Makes this process's Date (and, with `scaleTimers`, its long setTimeouts) follow simulated time. */
export function installScaledClock(spec: ScaledClockSpec, options: { scaleTimers?: boolean } = {}): void {
  const RealDate = Date;
  const realNow = RealDate.now.bind(RealDate);
  const now = (): number => simulatedNow(spec, realNow());
  class SimulatedDate extends RealDate {
    constructor(...args: unknown[]) {
      if (args.length === 0) super(now());
      else super(...(args as [string | number | Date]));
    }
    static override now(): number {
      return now();
    }
  }
  globalThis.Date = SimulatedDate as DateConstructor;
  if (options.scaleTimers === true) {
    const realSetTimeout = globalThis.setTimeout;
    const scaled = ((fn: (...a: unknown[]) => void, ms?: number, ...rest: unknown[]) => {
      const delay = typeof ms === 'number' && ms >= SCALED_TIMER_MIN_MS ? wallDelayMs(spec, ms) : ms;
      return realSetTimeout(fn, delay, ...rest);
    }) as typeof setTimeout;
    globalThis.setTimeout = Object.assign(scaled, realSetTimeout);
  }
}
