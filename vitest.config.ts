import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Processes, not threads: the test bed's programs die with the process that
    // started them (pdeathsig), which must be the one that owns them.
    pool: 'forks',
    // Two cores: the control plane, daprd and the stores need CPU too.
    maxWorkers: 2,
    // The JSON report lets .ci/run print a plain 'N passed, N failed' line.
    reporters: ['default', ['json', { outputFile: 'test-results.json' }]],
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
          globalSetup: ['test/support/global-testbed.ts'],
          setupFiles: ['test/support/print-logs-on-failure.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
