/** The run verdict lives in lib/drain/run-verdict.ts (the local poll mode uses it too). */
export * from '../lib/drain/run-verdict.js';
