import { defineConfig } from 'vitest/config';

// `npm run test:kind` (scripts/test-kind.sh): the end-to-end suite on a kind cluster.
export default defineConfig({
  test: {
    pool: 'forks',
    maxWorkers: 1,
    include: ['test/e2e/**/*.test.ts'],
    globalSetup: ['test/support/global-kind.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
  },
});
