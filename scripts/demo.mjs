// `npm run demo` on a fresh clone: install the dependencies and build when needed, then run the demo.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const step = (what, cmd, args) => {
  process.stdout.write(`== ${what}\n`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
if (!existsSync(join(root, 'node_modules'))) step('installing dependencies (npm ci)', npm, ['ci', '--no-audit', '--no-fund']);
if (!existsSync(join(root, 'dist/cli/main.js')) || !existsSync(join(root, 'dist/demo/demo.js'))) step('building', process.execPath, ['scripts/build.mjs']);
step('demo', process.execPath, [join(root, 'dist/demo/demo.js')]);
