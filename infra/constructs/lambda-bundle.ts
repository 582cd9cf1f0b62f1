/**
 * How the Lambda bundles are built: the esbuild options the construct gives NodejsFunction,
 * and that `npm run bench:coldstart` (bench/coldstart.ts) builds with, so the bench measures
 * what is deployed. No CDK import: the bench loads this file alone.
 */

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
} as const;
