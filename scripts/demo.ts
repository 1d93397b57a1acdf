/**
 * The local demo, the project's main job (`npm run demo`): a cluster with a
 * real node and Dapr built here, the operator installed in it from its image
 * (`kubectl apply -k config/default`), the dev backends and the sample; then
 * tasks created, one completed and heard of by the notification service, and
 * the state store switched to PostgreSQL with one field edit. Stays up until
 * Ctrl-C with a port-forward to the task service (`--exit` stops after the
 * tour). Without root it falls back to the kwok tour (scripts/demo-kwok.ts).
 */
import { userInfo } from 'node:os';
import { chainInfo, realClusterInfo, startRealCluster } from '../testbed/harness/cluster.ts';
import {
  installBackends,
  installOperatorWithKustomize,
  installSample,
  OPERATOR_NAMESPACE,
} from '../testbed/harness/install.ts';
import { kubectlOk, portForward } from '../testbed/harness/kubectl.ts';
import { kubectlBinary } from '../testbed/harness/prerequisites.ts';
import { waitUntil } from '../testbed/harness/process.ts';
import { kwokTour } from './demo-kwok.ts';
import { DemoLifetime, eventTable, step, swapToPostgresql } from './demo-steps.ts';

const lifetime = new DemoLifetime(process.argv.includes('--exit'));
const started = performance.now();
const since = (): string => `${((performance.now() - started) / 1000).toFixed(1)}s`;

if (userInfo().uid !== 0) {
  step(
    'Not running as root, and a real node needs root (network, PID and mount namespaces, a veth, cgroups). ' +
      'Showing the kwok tour instead: the operator and a swap, with kwok pretending to run the pods (no task service runs).',
  );
  await kwokTour(lifetime);
} else {
  await realChainTour();
}
await lifetime.afterTour();

async function realChainTour(): Promise<void> {
  step(
    'Starting a cluster with a real node: etcd, kube-apiserver, controller-manager, scheduler, kwok; containerd, ' +
      "kubelet and kube-proxy in the node's own namespaces; CoreDNS; Dapr's control plane from Dapr's Helm chart. " +
      'Images are built here with buildah when their inputs changed.',
  );
  const cluster = await startRealCluster();
  lifetime.stoppers.push(() => cluster.stop());
  const { kubeconfig } = cluster;
  const k = (args: string[]) => kubectlOk(kubeconfig, args);
  try {
    const steps = Object.entries(cluster.startupSeconds).map(([part, seconds]) => `${part} ${seconds.toFixed(1)}s`);
    console.log(`up after ${since()} (${steps.join(', ')})`);
    console.log(await k(['get', 'nodes', '-o', 'wide']));

    step('kubectl apply -k config/backends   (dev Redis and PostgreSQL, images made here from Debian packages)');
    await installBackends(kubeconfig, cluster.dir, chainInfo(cluster).backendImages);
    console.log(await k(['get', 'pods', '-n', 'taskapi-backends']));

    step('kubectl apply --server-side -k config/default   (CRD, RBAC, the operator from the image of the Dockerfile)');
    await installOperatorWithKustomize(kubeconfig);
    console.log(await k(['get', 'pods', '-n', OPERATOR_NAMESPACE]));

    step('kubectl apply -k config/samples   (the sample TaskApi and its dev Secrets)');
    const applied = performance.now();
    await installSample(kubeconfig, 'default');
    step('kubectl wait --for=condition=Ready taskapi/tasks');
    await k(['wait', '--for=condition=Ready', 'taskapi/tasks', '--timeout=180s']);
    console.log(
      `Ready ${((performance.now() - applied) / 1000).toFixed(1)}s after the sample was applied (${since()} since the demo started)`,
    );
    step('kubectl get taskapis');
    console.log(await k(['get', 'taskapis']));
    step('kubectl get pods   (2/2: the task service and the daprd sidecar the injector added)');
    console.log(await k(['get', 'pods']));

    step('kubectl port-forward service/tasks   (kept up while the demo runs)');
    const tasks = await portForward(kubeconfig, 'default', 'service/tasks', 80, { keepAlive: true });
    lifetime.stoppers.push(() => tasks.stop());
    const notifications = await portForward(kubeconfig, 'default', 'service/tasks-notifications', 80);
    lifetime.stoppers.push(() => notifications.stop());
    console.log(`task service at ${tasks.url}`);

    step("Creating three tasks, then completing one with the seeds' ?status=completed");
    const ids: string[] = [];
    for (const title of ['Write the report', 'Review the budget', 'Book the venue']) {
      const task = await call(tasks.url, 'POST', '/tasks', { title });
      ids.push(String(task['id']));
    }
    await call(tasks.url, 'PUT', `/tasks/${ids[0]}/status?status=completed`);

    step('The notification service heard of it through Dapr service invocation (GET /notifications on it)');
    let heard: unknown[] = [];
    await waitUntil(
      async () => {
        heard = ((await (await fetch(`${notifications.url}/notifications`)).json()) as { items: unknown[] }).items;
        return heard.length > 0;
      },
      { what: 'the notification service to hear of the completed task', timeoutMs: 30_000 },
    );
    console.log(JSON.stringify(heard, null, 2));
    console.log(
      (await k(['logs', 'deployment/tasks-notifications', '-c', 'notification-service']))
        .split('\n')
        .filter((line) => line.includes('notification recorded'))
        .join('\n'),
    );

    step("A task due in 5 seconds: its due date is a Dapr job on the cluster's scheduler");
    const due = await call(tasks.url, 'POST', '/tasks', {
      title: 'Send the invitations',
      due_at: new Date(Date.now() + 5_000).toISOString(),
    });
    let reminded: unknown[] = [];
    await waitUntil(
      async () => {
        const { items } = (await (await fetch(`${notifications.url}/notifications`)).json()) as {
          items: { reason?: string; task: { id: string } }[];
        };
        reminded = items.filter((item) => item.reason === 'due' && item.task.id === due['id']);
        return reminded.length > 0;
      },
      { what: 'the due-date reminder to fire', timeoutMs: 60_000 },
    );
    console.log(`the job fired at its due date: task.due was published, and the notification service told:`);
    console.log(JSON.stringify(reminded, null, 2));

    step('GET /tasks');
    const before = await listTasks(tasks.url);

    await swapToPostgresql(k, 'default');
    console.log(`\n${await k(['get', 'taskapis'])}`);
    console.log(await eventTable(kubeconfig, 'default'));
    await k(['rollout', 'status', 'deployment/tasks', '--timeout=180s']);

    step('GET /tasks again, now served from PostgreSQL');
    await waitUntil(async () => (await fetch(`${tasks.url}/readyz`).catch(() => undefined))?.ok === true, {
      what: 'the task service to answer after the swap',
      timeoutMs: 60_000,
    });
    const after = await listTasks(tasks.url);
    const lost = before.filter((id) => !after.includes(id));
    if (lost.length > 0) {
      // The swap copies every task before the flip: a task missing here is a bug, and the demo says so loudly.
      throw new Error(
        `${lost.length} of the ${before.length} tasks created on Redis are missing after the swap: ${lost.join(', ')}`,
      );
    }
    console.log(`all ${before.length} tasks created on Redis are listed above, now served from PostgreSQL`);

    const info = realClusterInfo(cluster);
    step('Use the cluster and the task service from another terminal:');
    console.log(`export KUBECONFIG=${info.kubeconfig}`);
    console.log(`export TASKS_URL=${tasks.url}`);
    const token = await sampleToken(k);
    if (token) console.log(`export TASKS_TOKEN=${token}`);
    console.log(`alias kubectl=${kubectlBinary()}   # the kubectl matching this cluster (v1.36)`);
    console.log('curl -s $TASKS_URL/tasks');
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    console.error(cluster.logs(30));
    await lifetime.shutdown(1);
  }
}

/** One request to the task service, printed as a user reads it. */
async function call(base: string, method: string, path: string, body?: object): Promise<Record<string, unknown>> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  console.log(`${method} ${path}${body ? ` ${JSON.stringify(body)}` : ''} -> ${response.status} ${text}`);
  if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}`);
  return JSON.parse(text) as Record<string, unknown>;
}

async function listTasks(base: string): Promise<string[]> {
  const page = (await (await fetch(`${base}/tasks?limit=100`)).json()) as {
    items: { id: string; title: string; status: string }[];
  };
  for (const task of page.items) console.log(`  ${task.id}  ${task.status.padEnd(11)}  ${task.title}`);
  console.log(`${page.items.length} task(s)`);
  return page.items.map((task) => task.id);
}

/** The sample's API token, when it protects writes with one (spec.apiTokenSecretRef). */
async function sampleToken(k: (args: string[]) => Promise<string>): Promise<string | undefined> {
  const ref = (
    await k(['get', 'taskapi', 'tasks', '-o', 'jsonpath={.spec.apiTokenSecretRef.name} {.spec.apiTokenSecretRef.key}'])
  ).trim();
  const [name, key] = ref.split(' ');
  if (!name || !key) return undefined;
  const encoded = await k(['get', 'secret', name, '-o', `jsonpath={.data.${key}}`]);
  return Buffer.from(encoded, 'base64').toString('utf8');
}
