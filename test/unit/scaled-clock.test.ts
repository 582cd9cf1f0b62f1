// The simulation clock (testkit/clock/scaled-clock.ts): the mapping, the environment round
// trip, and a child process that installed it from the environment reading the same time as
// the mapping says (its Date.now, new Date() and a scaled setTimeout).
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { scaledClockEnv, scaledClockFromEnv, simulatedNow, wallDelayMs } from '../../testkit/clock/scaled-clock.js';

const run = promisify(execFile);
const spec = { epochMs: Date.UTC(2026, 0, 5), originMs: 1_000_000, speed: 96 };

describe('scaled clock', () => {
  it('maps wall time to simulated time at the given speed', () => {
    expect(simulatedNow(spec, 1_000_000)).toBe(spec.epochMs);
    expect(simulatedNow(spec, 1_000_000 + 37_500)).toBe(spec.epochMs + 3_600_000);
    expect(simulatedNow(spec, 1_000_000 - 1000)).toBe(spec.epochMs - 96_000);
    expect(wallDelayMs(spec, 5400_000)).toBe(56_250);
  });

  it('round-trips through the environment and refuses a bad one', () => {
    expect(scaledClockFromEnv(scaledClockEnv(spec, { scaleTimers: true }))).toEqual({ ...spec, scaleTimers: true });
    expect(scaledClockFromEnv({})).toBeUndefined();
    expect(() => scaledClockFromEnv({ ...scaledClockEnv(spec), POPDRAIN_SIM_SPEED: '0' })).toThrow(/invalid scaled clock/);
  });

  it('makes a child process read simulated time once installed from the environment', async () => {
    const live = { epochMs: Date.UTC(2030, 5, 1), originMs: Date.now(), speed: 100 };
    const install = fileURLToPath(new URL('../../testkit/clock/scaled-clock-install.ts', import.meta.url));
    const script = `
      const t0 = Date.now();
      const d = new Date().getTime();
      const fixed = new Date(0).getTime();
      const started = performance.now();
      setTimeout(() => {
        console.log(JSON.stringify({ t0, d, fixed, waitedMs: performance.now() - started, iso: new Date(Date.UTC(2026, 0, 1)).toISOString() }));
      }, 20_000);`;
    const before = Date.now();
    const { stdout } = await run(process.execPath, ['--import', 'tsx', '--import', install, '--input-type=module', '-e', script], {
      env: { ...process.env, ...scaledClockEnv(live, { scaleTimers: true }) },
      timeout: 30_000,
    });
    const after = Date.now();
    const out = JSON.parse(stdout) as { t0: number; d: number; fixed: number; waitedMs: number; iso: string };
    expect(out.t0).toBeGreaterThanOrEqual(simulatedNow(live, before));
    expect(out.t0).toBeLessThanOrEqual(simulatedNow(live, after));
    expect(out.d).toBeGreaterThanOrEqual(out.t0);
    expect(out.fixed).toBe(0);
    expect(out.iso).toBe('2026-01-01T00:00:00.000Z');
    // 20 simulated seconds at x100: about 200 ms of wall time, not 20 s.
    expect(out.waitedMs).toBeLessThan(5_000);
    expect(out.waitedMs).toBeGreaterThanOrEqual(150);
  }, 40_000);
});
