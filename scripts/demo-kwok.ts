/**
 * The demo without root (scripts/demo.ts falls back to it): the kwok test bed
 * (Kubernetes control plane with kwok, Dapr CRDs, redis-server, PostgreSQL),
 * the TaskApi CRD, the operator as a local process, the sample TaskApi, Ready,
 * then a swap from Redis to PostgreSQL started with one field edit. kwok only pretends
 * to run pods: no task service runs here.
 */
import { join } from 'node:path';
import { kubectlOk } from '../testbed/harness/kubectl.ts';
import { compileSources, startOperator } from '../testbed/harness/operator.ts';
import { kubectlBinary } from '../testbed/harness/prerequisites.ts';
import { startTestbed } from '../testbed/harness/testbed.ts';
import { DemoLifetime, eventTable, patchAndWatch, step, swapToPostgresql } from './demo-steps.ts';

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

    // kwok only pretends to run the pods: nothing answers at their addresses, so the swap starts and waits.
    await swapToPostgresql(k, 'default', (row) => /\bTargetAdded\b/.test(row));
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    console.log(
      await k(['get', 'taskapi', 'tasks', '-o', 'jsonpath={.status.conditions[?(@.type=="Degraded")].message}']),
    );
    step(
      'kwok only pretends to run the pods here: no task service runs, so the swap waits at its first phase, ' +
        'Redis still the source of truth (the real tour, as root, moves real tasks). Undoing the edit:',
    );
    await patchAndWatch(
      k,
      'default',
      '{"spec":{"stateBackend":"redis"}}',
      (row, components) =>
        /\bCompleted\b/.test(row) && !components.some((name) => name.endsWith('tasks-state-postgresql')),
    );
    console.log(`\n${await k(['get', 'taskapis'])}`);
    console.log(await eventTable(kubeconfig, 'default'));
    step('Use the cluster from another terminal (kubectl matching the cluster version is at the path below):');
    console.log(`export KUBECONFIG=${kubeconfig}`);
    console.log(`alias kubectl=${kubectlBinary()}`);
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    console.error(testbed.logs(30));
    await lifetime.shutdown(1);
  }
}
