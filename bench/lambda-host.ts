/**
 * The Lambda instance process of `npm run bench:scale` (compiled to dist/bench/lambda-host.js
 * with both handlers bundled): see testkit/lambda/host.ts.
 */
import '../testkit/lambda/host.js';
