// dist/cli/main.js run as a program (as npm's bin link and `npx popdrain` run it): its shebang
// starts node with the flags the CLI relies on (cli/main.ts: the young generation's bound and
// the old space's growing factor).
// dist is built once for the whole run by test/global-build.ts (vitest globalSetup).
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = join(ROOT, 'dist/cli/main.js');
const run = promisify(execFile);

describe('dist/cli/main.js as a program', () => {
  it('runs through its shebang with --max-semi-space-size=4 --heap-growing-percent=100', async () => {
    // A module loaded before the CLI tells which flags node was started with.
    const probe = 'data:text/javascript,process.stderr.write(JSON.stringify(process.execArgv))';
    const { stdout, stderr } = await run(MAIN, ['--version'], { env: { PATH: process.env.PATH, NODE_OPTIONS: `--import=${probe}` }, timeout: 30_000 });
    expect(stdout).toMatch(/^popdrain \d+\.\d+\.\d+/);
    expect(JSON.parse(stderr)).toEqual(['--max-semi-space-size=4', '--heap-growing-percent=100']);
  });
});
