/**
 * The local demo: starts the real test bed (Kubernetes control plane with kwok,
 * Dapr CRDs, redis-server, PostgreSQL), shows the cluster, prints how to reach it
 * with kubectl, and stays up until Ctrl-C. `--exit` stops right after the tour.
 */
import { kubectlOk } from '../testbed/harness/kubectl.ts';
import { kubectlBinary } from '../testbed/harness/prerequisites.ts';
import { startTestbed } from '../testbed/harness/testbed.ts';

const exitWhenDone = process.argv.includes('--exit');
const step = (message: string): void => {
  console.log(`\n==> ${message}`);
};

step('Starting the test bed: etcd, kube-apiserver, controller-manager, scheduler, kwok, redis-server, PostgreSQL');
const testbed = await startTestbed();
const { kubeconfig } = testbed.controlPlane;
let stopping = false;
const shutdown = async (code: number): Promise<void> => {
  if (stopping) return;
  stopping = true;
  step('Stopping every test bed process');
  await testbed.stop();
  process.exit(code);
};
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

try {
  const { controlPlane, redis, postgres } = testbed.startupSeconds;
  console.log(
    `up: control plane ${controlPlane.toFixed(1)}s, redis-server ${redis.toFixed(1)}s, PostgreSQL ${postgres.toFixed(1)}s`,
  );
  step('kubectl get nodes');
  console.log(await kubectlOk(kubeconfig, ['get', 'nodes', '-o', 'wide']));
  step('Dapr resource kinds served by the apiserver');
  console.log(await kubectlOk(kubeconfig, ['api-resources', '--api-group=dapr.io']));
  step('Use it from another terminal (kubectl matching the cluster version is at the path below):');
  console.log(`export KUBECONFIG=${kubeconfig}`);
  console.log(`alias kubectl=${kubectlBinary()}`);
  console.log(`redis-server on ${testbed.redis.address}, PostgreSQL on 127.0.0.1:${testbed.postgres.port}`);
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  console.error(testbed.logs(30));
  await shutdown(1);
}

if (exitWhenDone) {
  await shutdown(0);
} else {
  step('Running. Press Ctrl-C to stop everything.');
  // Keep the event loop alive until a signal arrives.
  setInterval(() => undefined, 1 << 30);
}
