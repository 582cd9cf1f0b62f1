// The world of a drain crash test file (drain-crash-*.test.ts): one Dovecot, a work folder, the
// child script bundled once, and the seed of the kill schedule. setUpCrashWorld() registers the
// hooks that start and stop them; the bindings below are live, so they hold the values once
// beforeAll ran.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll } from 'vitest';
import { startDovecot, type Dovecot } from '../../testkit/pop3-servers/dovecot.js';

export const PASSWORD = 'crash-test-password';
/** One campaign takes about 20-35 s on two cores. */
export const CAMPAIGN_TIMEOUT_MS = 240_000;

export const seed = process.env.CRASH_SEED === undefined ? randomBytes(4).readUInt32BE(0) : Number(process.env.CRASH_SEED);

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export let dovecot: Dovecot;
export let work: string;
export let childScript: string;

export function setUpCrashWorld(): void {
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'popdrain-drain-crash-'));
    const outdir = join(work, 'child');
    childScript = join(outdir, 'drain-crash-child.mjs');
    // Bundled once, so each of the 100+ children starts as fast as plain node; split, so only
    // the AWS children load the SDK.
    const bundling = build({
      entryPoints: [new URL('./drain-crash-child.ts', import.meta.url).pathname],
      outdir,
      outExtension: { '.js': '.mjs' },
      splitting: true,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      logLevel: 'error',
      // Bundled CommonJS dependencies (the SDK) call require() for node's own modules.
      banner: { js: "import { createRequire as __crashRequire } from 'node:module'; const require = __crashRequire(import.meta.url);" },
    });
    [dovecot] = await Promise.all([startDovecot(), bundling]);
  });

  afterAll(async () => {
    await dovecot?.stop();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });
}
