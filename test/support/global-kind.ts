/**
 * Vitest global setup for `npm run test:kind`: the end-to-end suite on a kind
 * cluster that scripts/test-kind.sh created (KIND_CLUSTER, KUBECONFIG), with
 * ctr run inside kind's node container.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import type { ChainInfo } from '../../testbed/harness/cluster.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    chain: ChainInfo;
  }
}

export default function setup(project: TestProject): () => void {
  const cluster = process.env['KIND_CLUSTER'];
  const kubeconfig = process.env['KUBECONFIG'];
  if (!cluster || !kubeconfig) throw new Error('KIND_CLUSTER and KUBECONFIG are not set: run `npm run test:kind`');
  const dir = mkdtempSync(join(tmpdir(), 'taskapi-kind-'));
  const helmHome = join(dir, 'helm');
  mkdirSync(helmHome);
  project.provide('chain', {
    kubeconfig,
    dir,
    helmHome,
    ctr: ['docker', 'exec', `${cluster}-control-plane`, 'ctr', '--namespace', 'k8s.io'],
    backendImages: undefined,
    // Restarting kind's control plane and containerd would go through docker exec: not done here.
    faultSocket: undefined,
  });
  return () => {
    rmSync(dir, { recursive: true, force: true });
  };
}
