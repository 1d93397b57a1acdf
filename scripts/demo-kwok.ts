/**
 * The demo without root (scripts/demo.ts falls back to it): the kwok test bed
 * (Kubernetes control plane with kwok, Dapr CRDs, redis-server, PostgreSQL),
 * the TaskApi CRD, the operator as a local process, the sample TaskApi, Ready,
 * then a move from Redis to PostgreSQL with one field edit. kwok only pretends
 * to run pods: no task service runs here.
 */
import { join } from 'node:path';
import { kubectlOk } from '../testbed/harness/kubectl.ts';
import { compileSources, startOperator } from '../testbed/harness/operator.ts';
import { kubectlBinary } from '../testbed/harness/prerequisites.ts';
import { startTestbed } from '../testbed/harness/testbed.ts';
import { DemoLifetime, eventTable, step, swapToPostgresql } from './demo-steps.ts';

export async function kwokTour(lifetime: DemoLifetime): Promise<void> {
  step('Compiling the operator (src/ to dist/)');
  compileSources();

  step('Starting the test bed: etcd, kube-apiserver, controller-manager, scheduler, kwok, redis-server, PostgreSQL');
  const testbed = await startTestbed();
  lifetime.stoppers.push(() => testbed.stop());
  const { kubeconfig } = testbed.controlPlane;
  const k = (args: string[]) => kubectlOk(kubeconfig, args);
  try {
    const { controlPlane, redis, postgres } = testbed.startupSeconds;
    console.log(
      `up: control plane ${controlPlane.toFixed(1)}s, redis-server ${redis.toFixed(1)}s, PostgreSQL ${postgres.toFixed(1)}s`,
    );

    step('Installing the TaskApi CRD (kubectl apply --server-side -f crds/)');
    await k(['apply', '--server-side', '-f', 'crds/taskapi.dev_taskapis.yaml']);
    await k(['wait', '--for=condition=Established', 'crd/taskapis.taskapi.dev', '--timeout=30s']);

    step('Starting the operator (leader election on)');
    const operator = await startOperator({
      kubeconfig,
      logDir: join(testbed.dir, 'operator'),
      env: { LEADER_ELECT: 'true', LEADER_ELECTION_NAMESPACE: 'default' },
    });
    lifetime.stoppers.push(() => operator.stop());
    console.log(`operator logs: ${operator.process.logFile}`);
    console.log(`operator metrics: ${operator.metricsUrl}`);

    step('kubectl apply -k config/samples   (the sample TaskApi and its dev Secrets)');
    console.log(await k(['apply', '-k', 'config/samples']));
    step('kubectl wait --for=condition=Ready taskapi/tasks');
    console.log(await k(['wait', '--for=condition=Ready', 'taskapi/tasks', '--timeout=120s']));
    console.log(await k(['get', 'taskapis']));
    console.log(await k(['get', 'deployments,services,components.dapr.io,subscriptions.dapr.io']));

    await swapToPostgresql(k, 'default');
    console.log(`\n${await k(['get', 'taskapis'])}`);
    console.log(await eventTable(kubeconfig, 'default'));

    step('kwok only pretends to run the pods here: no task service runs, so no task is created or listed.');
    step('Use the cluster from another terminal (kubectl matching the cluster version is at the path below):');
    console.log(`export KUBECONFIG=${kubeconfig}`);
    console.log(`alias kubectl=${kubectlBinary()}`);
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    console.error(testbed.logs(30));
    await lifetime.shutdown(1);
  }
}
