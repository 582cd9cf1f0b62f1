/**
 * How the Lambda bundles are built: the esbuild options the construct gives NodejsFunction,
 * and that `npm run bench:coldstart` (bench/coldstart.ts) builds with, so the bench measures
 * what is deployed. No CDK import: the bench loads this file alone.
 */
import { join } from 'node:path';

/**
 * ESM bundles still meet CommonJS dependencies that call `require` (Node built-ins): give them
 * one. The name is unusual so no bundled module's own top-level binding collides with it.
 */
export const CREATE_REQUIRE_BANNER =
  "import { createRequire as __popdrainCreateRequire } from 'node:module'; const require = __popdrainCreateRequire(import.meta.url);";

/** The bundle options both functions share. */
export const LAMBDA_BUNDLE = {
  format: 'esm',
  mainFields: ['module', 'main'],
  banner: CREATE_REQUIRE_BANNER,
  minify: true,
  /**
   * No source map: a map is only read when the runtime runs with --enable-source-maps, which
   * slows every stack trace and the cold start, and shipping one unread doubled the asset.
   * Stack traces name minified functions; the log line of a failure carries the error code,
   * phase and message, which is what the runbook reads.
   */
  sourceMap: false,
  /**
   * Split at dynamic imports: what a handler imports with `import()` (the mail libraries, which
   * a run that stores nothing never loads; the SQS client, for continuations) goes into
   * chunks/*.mjs beside index.mjs, which the runtime neither reads nor parses until it is used.
   * One file would hold it all, and V8 would parse all of it on every cold start.
   */
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
} as const;

/**
 * The esbuild command-line arguments of the Lambda build of `entry` into `outDir` (index.mjs
 * and its chunks), for NodejsFunction's afterBundling hook: NodejsFunction builds one file
 * (`--outfile`), which esbuild cannot split, so the hook builds again, split, over it.
 */
export function splitBundleArgs(entry: string, outDir: string, projectRoot: string, target: string): string[] {
  return [
    `index=${entry}`,
    '--bundle',
    '--platform=node',
    `--target=${target}`,
    `--format=${LAMBDA_BUNDLE.format}`,
    '--splitting',
    `--outdir=${outDir}`,
    '--out-extension:.js=.mjs',
    `--chunk-names=${LAMBDA_BUNDLE.chunkNames}`,
    `--main-fields=${LAMBDA_BUNDLE.mainFields.join(',')}`,
    `--banner:js=${LAMBDA_BUNDLE.banner}`,
    ...(LAMBDA_BUNDLE.minify ? ['--minify'] : []),
    '--log-level=warning',
    ...Object.entries(lambdaBundleAliases(projectRoot)).map(([from, to]) => `--alias:${from}=${to}`),
  ];
}

/**
 * Modules the Lambda bundles replace, as esbuild aliases (absolute paths under the project
 * root):
 * - iconv-lite and encoding-japanese, which libmime decodes charsets with (570 KiB of tables),
 *   by lambdas/bundle-shims/, which decode with Node's built-in `TextDecoder`
 *   (test/unit/bundle-shims.test.ts holds them to the libraries' output);
 * - libmime's ES module build, by its CommonJS build, which mailsplit already `require`s: one
 *   copy of libmime (and its MIME type table) in the bundle instead of two;
 * - the SDK's default credential chain (`@aws-sdk/credential-provider-node`), by its first
 *   link, the environment (lambdas/bundle-shims/credential-provider-node.ts): where the Lambda
 *   runtime puts the role's credentials; the other links and their STS/SSO clients (~95 KiB)
 *   are never called there.
 */
export function lambdaBundleAliases(projectRoot: string): Record<string, string> {
  return {
    'iconv-lite': join(projectRoot, 'lambdas', 'bundle-shims', 'iconv-lite.ts'),
    'encoding-japanese': join(projectRoot, 'lambdas', 'bundle-shims', 'encoding-japanese.ts'),
    libmime: join(projectRoot, 'node_modules', 'libmime', 'dist', 'cjs', 'libmime.js'),
    '@aws-sdk/credential-provider-node': join(projectRoot, 'lambdas', 'bundle-shims', 'credential-provider-node.ts'),
  };
}
