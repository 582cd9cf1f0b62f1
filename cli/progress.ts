/**
 * Progress on stderr: a bar redrawn in place on a terminal (messages, bytes, rate, ETA), plain
 * lines otherwise (at each phase and every 10 %), nothing with --quiet.
 */
import type { DrainProgress } from '../lib/drain/drain-mailbox.js';

export function formatBytes(n: number): string {
  if (n < 1000) return `${Math.round(n)} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = -1;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u += 1;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(r).padStart(2, '0')}` : `${m}:${String(r).padStart(2, '0')}`;
}

export interface ProgressRenderer {
  update(p: DrainProgress): void;
  done(): void;
}

/** An ETA is shown only after this long fetching ... */
export const ETA_MIN_ELAPSED_S = 3;
/** ... and once this share of the bytes has arrived: before, the rate is mostly start-up. */
export const ETA_MIN_DONE_SHARE = 0.05;

/** Seconds left at the rate so far, or undefined while that rate means little. */
export function etaSeconds(elapsedS: number, fetchedBytes: number, toFetchBytes: number): number | undefined {
  if (elapsedS < ETA_MIN_ELAPSED_S || toFetchBytes <= 0 || fetchedBytes < toFetchBytes * ETA_MIN_DONE_SHARE) return undefined;
  return Math.max(0, toFetchBytes - fetchedBytes) / (fetchedBytes / elapsedS);
}

export function createProgress(label: string, stream: NodeJS.WriteStream, enabled: boolean): ProgressRenderer {
  if (!enabled) return { update: () => {}, done: () => {} };
  let started = Date.now();
  let lastPhase = '';
  let lastDecile = -1;
  let lastDraw = 0;
  let drawn = false;
  const tty = stream.isTTY === true;

  const line = (p: DrainProgress): string => {
    const elapsed = (Date.now() - started) / 1000;
    const rate = elapsed > 0 ? p.fetched / elapsed : 0;
    const byteRate = elapsed > 0 ? p.fetchedBytes / elapsed : 0;
    const eta = etaSeconds(elapsed, p.fetchedBytes, p.toFetchBytes);
    return `${p.fetched}/${p.toFetch} msgs, ${formatBytes(p.fetchedBytes)}/${formatBytes(p.toFetchBytes)}, ${rate.toFixed(0)} msg/s, ${formatBytes(byteRate)}/s${eta === undefined ? '' : `, ETA ${formatDuration(eta)}`}`;
  };

  return {
    update(p) {
      if (p.phase === 'fetching' && lastPhase !== 'fetching' && lastPhase !== 'finishing') started = Date.now();
      if (tty) {
        const now = Date.now();
        if (p.phase === lastPhase && now - lastDraw < 100) return;
        lastDraw = now;
        lastPhase = p.phase;
        let text: string;
        if (p.phase === 'fetching' || p.phase === 'finishing') {
          const width = Math.max(10, Math.min(30, (stream.columns ?? 80) - 70));
          const frac = p.toFetchBytes > 0 ? Math.min(1, p.fetchedBytes / p.toFetchBytes) : 1;
          const full = Math.round(frac * width);
          text = `${label} [${'#'.repeat(full)}${'-'.repeat(width - full)}] ${line(p)}`;
        } else {
          text = `${label}: ${p.phase}...`;
        }
        const columns = stream.columns ?? 120;
        stream.write(`\r${text.slice(0, columns - 1)}\x1b[K`);
        drawn = true;
        return;
      }
      if (p.phase !== lastPhase) {
        lastPhase = p.phase;
        if (p.phase === 'fetching') stream.write(`${label}: ${p.toFetch} new of ${p.serverMessages} messages to fetch (${formatBytes(p.toFetchBytes)})\n`);
        else if (p.phase !== 'finishing') stream.write(`${label}: ${p.phase}\n`);
      }
      if (p.phase === 'fetching' && p.toFetch > 0) {
        const decile = Math.floor((p.fetched / p.toFetch) * 10);
        if (decile > lastDecile && p.fetched > 0) {
          lastDecile = decile;
          stream.write(`${label}: ${line(p)}\n`);
        }
      }
    },
    done() {
      if (tty && drawn) stream.write('\r\x1b[K');
    },
  };
}
