/**
 * The Lambda instance process of `npm run bench:fleet`: the simulation's scaled clock
 * (testkit/clock/scaled-clock-install.ts) is installed before the handler module loads, so the
 * handler's Date.now(), its context's remaining time and everything below it (leases, markers,
 * backoff, the drain's deadlines) read simulated time. Then as testkit/lambda/host.ts.
 */
import '../testkit/clock/scaled-clock-install.js';
import '../testkit/lambda/host.js';
