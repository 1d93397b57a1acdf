import { defineConfig } from 'vitest/config';

const SWAP_TESTS = 'test/dapr/swap*.test.ts';

export default defineConfig({
  test: {
    // Processes, not threads: the test bed's programs die with the process that
    // started them (pdeathsig), which must be the one that owns them.
    pool: 'forks',
    // Two cores: the control plane, daprd and the stores need CPU too.
    maxWorkers: 2,
    // The JSON report lets .ci/run print a plain 'N passed, N failed' line;
    // scripts/test.ts gives each of its lanes a file of its own.
    reporters: ['default', ['json', { outputFile: process.env.TEST_RESULTS ?? 'test-results.json' }]],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
        },
      },
      {
        test: {
          name: 'testbed',
          include: ['test/testbed/**/*.test.ts', 'test/cluster/**/*.test.ts', 'test/dapr/**/*.test.ts'],
          exclude: ['test/testbed/node/**', SWAP_TESTS],
          globalSetup: ['test/support/global-testbed.ts'],
          setupFiles: ['test/support/print-logs-on-failure.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
      {
        // The swap tests, one file at a time after the others: each runs two replicas, two daprd and a
        // client load, and two side by side on two cores take four times as long as one after the other.
        test: {
          name: 'swap',
          include: [SWAP_TESTS],
          globalSetup: ['test/support/global-testbed.ts'],
          setupFiles: ['test/support/print-logs-on-failure.ts'],
          sequence: { groupOrder: 1 },
          maxWorkers: 1,
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
      {
        // A real node and Dapr's control plane (needs root). `npm test`
        // (scripts/test.ts) runs this project in a vitest run of its own beside
        // the others; in one plain `vitest run` it comes after them.
        test: {
          name: 'node',
          include: ['test/testbed/node/**/*.test.ts', 'test/e2e/**/*.test.ts'],
          globalSetup: ['test/support/global-cluster.ts'],
          setupFiles: ['test/support/print-cluster-logs-on-failure.ts'],
          sequence: { groupOrder: 2 },
          // One file at a time: a test may start a second cluster beside the shared one.
          maxWorkers: 1,
          testTimeout: 300_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
