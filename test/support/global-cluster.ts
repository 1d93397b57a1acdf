/**
 * Vitest global setup for the tests that need a real node: starts a cluster
 * with a real node and Dapr's control plane once (testbed/harness/cluster.ts),
 * hands its addresses to the test files, and stops it at the end. Without root
 * it fails at once, saying why: nothing is skipped.
 */
import type { TestProject } from 'vitest/node';
import {
  chainInfo,
  realClusterInfo,
  startRealCluster,
  type ChainInfo,
  type RealClusterInfo,
} from '../../testbed/harness/cluster.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    cluster: RealClusterInfo;
    chain: ChainInfo;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started = performance.now();
  const cluster = await startRealCluster();
  const steps = Object.entries(cluster.startupSeconds)
    .map(([step, seconds]) => `${step} ${seconds.toFixed(1)}s`)
    .join(', ');
  console.log(`[cluster] up in ${((performance.now() - started) / 1000).toFixed(1)}s (${steps}) in ${cluster.dir}`);
  project.provide('cluster', realClusterInfo(cluster));
  project.provide('chain', chainInfo(cluster));
  return () => cluster.stop();
}
