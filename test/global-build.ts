// Vitest global set-up: compile dist/ (the CLI and the bench scripts, scripts/build.mjs) once,
// before any test file runs. The CLI tests spawn `node dist/cli/main.js`; when each file rebuilt
// dist in its own beforeAll, a build in one file rewrote the chunks under a CLI another file was
// running, which then failed to import them ("does not provide an export named …").
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export default async function buildDistOnce(): Promise<void> {
  await promisify(execFile)(process.execPath, [join(ROOT, 'scripts/build.mjs')], { cwd: ROOT, timeout: 120_000 });
}
