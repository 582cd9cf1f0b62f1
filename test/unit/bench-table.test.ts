/** The bench's pure parts: GNU time's line, and the rows' medians and ratios (bench/table.ts). */
import { describe, expect, it } from 'vitest';
import { parseTimeLine } from '../../bench/measure.js';
import { formatRow, summarise, type Measurement } from '../../bench/table.js';

const m = (seconds: number, extra: Partial<Measurement> = {}): Measurement => ({
  messages: 10,
  seconds,
  peakRssMb: 50,
  userCpuSeconds: seconds / 2,
  sysCpuSeconds: 0.1,
  ...extra,
});

describe('bench figures', () => {
  it('reads peak RSS and CPU seconds from the last line GNU time wrote', () => {
    expect(parseTimeLine('Command exited with non-zero status 1\n11240 0.05 0.02\n')).toEqual({ peakRssKb: 11240, user: 0.05, sys: 0.02 });
    expect(() => parseTimeLine('')).toThrow(/GNU time/);
  });

  it('takes medians and compares each row with mpop on its own medium and with the floor', () => {
    const key = { label: 'a20k', latencyMs: 0, messages: 20_000, bytes: 100_000_000, reportTransfer: false };
    const rows = summarise(key, [
      { tool: 'node-floor', medium: 'none', runs: [m(1.3), m(1.2), m(9)] },
      { tool: 'mpop', medium: 'tmpfs', runs: [m(1.5), m(1.1), m(1.4)] },
      { tool: 'mpop', medium: 'disk', runs: [m(10), m(12), m(11)] },
      { tool: 'popdrain-cli', medium: 'tmpfs', runs: [m(2.8), m(2.6), m(2.7)] },
      { tool: 'popdrain-cli', medium: 'disk', runs: [m(5.5)] },
    ]);
    const by = (tool: string, medium: string) => rows.find((r) => r.tool === tool && r.medium === medium)!;
    expect(by('node-floor', 'none')).toMatchObject({ seconds: 1.3, msgsPerSec: 15384.6, mbPerSec: 76.9, userCpuSeconds: 0.65, timeToMpop: 0.93 });
    expect(by('node-floor', 'none').timeToFloor).toBeUndefined();
    expect(by('popdrain-cli', 'tmpfs')).toMatchObject({ seconds: 2.7, timeToMpop: 1.93, timeToFloor: 2.08, ratioToMpop: { msgsPerSec: 0.52 } });
    expect(by('popdrain-cli', 'disk')).toMatchObject({ seconds: 5.5, timeToMpop: 0.5, timeToFloor: 4.23 });
    expect(by('mpop', 'disk').timeToMpop).toBeUndefined();
    expect(formatRow(by('popdrain-cli', 'tmpfs'))).toMatch(/^a20k\s+tmpfs\s+popdrain-cli .* x1\.93 mpop, x2\.08 floor$/);
  });
});
