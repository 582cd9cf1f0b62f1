import { defineConfig } from 'vitest/config';

// Two cores: run at most two test files at once. Integration tests start real servers
// (Dovecot, s3rver, dynalite) on loopback; they get generous timeouts, never retries.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // dist/ (the CLI the integration tests spawn) is built once, before any file runs.
    globalSetup: ['test/global-build.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    passWithNoTests: false,
    env: {
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_ACCESS_KEY_ID: 'test-fake-access-key',
      AWS_SECRET_ACCESS_KEY: 'test-fake-secret-key',
      AWS_REGION: 'us-east-1',
    },
  },
});
