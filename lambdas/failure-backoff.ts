/** The failure backoff rules live in lib/drain/failure-backoff.ts (the local poll mode uses them too). */
export * from '../lib/drain/failure-backoff.js';
