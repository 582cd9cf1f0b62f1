/**
 * The Lambda instance process of `npm run bench:scale` (compiled to dist/bench/lambda-host.js
 * with both handlers bundled): see test/support/lambda-host.ts.
 */
import '../test/support/lambda-host.js';
