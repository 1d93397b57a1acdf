import { defineConfig } from 'vitest/config';

// `npm run test:kind` (scripts/test-kind.sh): the end-to-end suite on a kind cluster.
export default defineConfig({
  test: {
    pool: 'forks',
    maxWorkers: 1,
    include: ['test/e2e/**/*.test.ts'],
    // The fault table crashes the cluster's own programs (kube-apiserver, etcd, containerd), which only a
    // cluster this test bed started lets it do (testbed/harness/faults.ts).
    exclude: ['test/e2e/faults.test.ts'],
    globalSetup: ['test/support/global-kind.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
  },
});
