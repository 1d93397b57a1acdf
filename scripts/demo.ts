/**
 * The local demo: starts the real test bed (Kubernetes control plane with kwok,
 * Dapr CRDs, redis-server, PostgreSQL), installs the TaskApi CRD, runs the
 * operator, applies the sample TaskApi, waits for Ready, then moves it from
 * Redis to PostgreSQL with one field edit and shows the status move. Stays up
 * until Ctrl-C so you can use kubectl; `--exit` stops after the tour.
 */
import { join } from 'node:path';
import { kubectlOk } from '../testbed/harness/kubectl.ts';
import { compileSources, startOperator } from '../testbed/harness/operator.ts';
import { kubectlBinary } from '../testbed/harness/prerequisites.ts';
import { startTestbed } from '../testbed/harness/testbed.ts';

const exitWhenDone = process.argv.includes('--exit');
const step = (message: string): void => {
  console.log(`\n==> ${message}`);
};

step('Compiling the operator (src/ to dist/)');
compileSources();

step('Starting the test bed: etcd, kube-apiserver, controller-manager, scheduler, kwok, redis-server, PostgreSQL');
const testbed = await startTestbed();
const { kubeconfig } = testbed.controlPlane;
const k = (args: string[]) => kubectlOk(kubeconfig, args);
const stoppers: (() => Promise<void>)[] = [() => testbed.stop()];
let stopping = false;
const shutdown = async (code: number): Promise<void> => {
  if (stopping) return;
  stopping = true;
  step('Stopping the operator and every test bed process');
  for (const stop of stoppers.reverse()) await stop();
  process.exit(code);
};
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

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
  stoppers.push(() => operator.stop());
  console.log(`operator logs: ${operator.process.logFile}`);
  console.log(`operator metrics: ${operator.metricsUrl}`);

  step('kubectl apply -k config/samples   (the sample TaskApi and its dev Secrets)');
  console.log(await k(['apply', '-k', 'config/samples']));
  step('kubectl wait --for=condition=Ready taskapi/tasks');
  console.log(await k(['wait', '--for=condition=Ready', 'taskapi/tasks', '--timeout=120s']));
  console.log(`export KUBECONFIG=${kubeconfig}`);
  console.log(await k(['get', 'taskapis']));
  console.log(await k(['get', 'deployments,services,components.dapr.io,subscriptions.dapr.io']));

  step(`kubectl patch taskapi tasks --type merge -p '{"spec":{"stateBackend":"postgresql"}}'`);
  await k(['patch', 'taskapi', 'tasks', '--type', 'merge', '-p', '{"spec":{"stateBackend":"postgresql"}}']);
  let last = '';
  const deadline = Date.now() + 120_000;
  for (;;) {
    // Components first: the old one goes only after status moved, so a row read after them is never older.
    const components = (await k(['get', 'components.dapr.io', '-o', 'name'])).trim().split('\n').join(' ');
    const row = (await k(['get', 'taskapis', '-o', 'wide', '--no-headers'])).trim();
    const line = `${row}   [${components}]`;
    if (line !== last) console.log(line);
    last = line;
    if (row.includes('postgresql') && !components.includes('tasks-state-redis')) break;
    if (Date.now() > deadline) throw new Error('the swap did not finish within 120 s');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  console.log(`\n${await k(['get', 'taskapis'])}`);
  console.log(
    await k([
      'get',
      'events',
      '--field-selector',
      'involvedObject.kind=TaskApi',
      '--sort-by=.metadata.resourceVersion',
      '-o',
      'custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message',
    ]),
  );

  step('The task service pods are simulated by kwok here; a later step runs them for real with daprd.');
  step('Use the cluster from another terminal (kubectl matching the cluster version is at the path below):');
  console.log(`export KUBECONFIG=${kubeconfig}`);
  console.log(`alias kubectl=${kubectlBinary()}`);
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
