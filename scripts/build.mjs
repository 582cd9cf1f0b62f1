// Compile the command-line tool and the benchmark scripts to plain JavaScript in dist/, so they
// start fast (no TypeScript loader at run time). Our own code is bundled; npm packages stay
// external and are loaded from node_modules (the AWS SDK only when an AWS adapter is used).
import { build } from 'esbuild';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const entries = {};
const add = (dir, outDir) => {
  const abs = join(root, dir);
  if (!existsSync(abs)) return;
  for (const f of readdirSync(abs)) {
    if (f.endsWith('.ts') && !f.endsWith('.d.ts')) entries[join(outDir, f.slice(0, -3))] = join(abs, f);
  }
};
entries['cli/main'] = join(root, 'cli/main.ts');
entries['demo/demo'] = join(root, 'demo/demo.ts');
add('bench', 'bench');

await build({
  entryPoints: entries,
  outdir: join(root, 'dist'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  // Real dynamic imports (chunks), so the CLI loads the AWS SDK only when it uses it.
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  sourcemap: 'linked',
  // Whitespace and syntax minified, names kept (stack traces stay readable): V8 scans and
  // pre-parses every byte of a module at load, and a drain's modules are ~390 KB. Importing the
  // drain command (callgrind, main thread): 246-248 M instructions as printed, 225-232 M like
  // this, 223-228 M with identifiers minified too (not worth unreadable names).
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'warning',
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  // The CLI entry keeps its shebang (esbuild moves it above the banner).
});
