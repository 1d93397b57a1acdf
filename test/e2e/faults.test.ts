/**
 * Faults on the whole chain, a table: each scenario crashes one part (the
 * operator mid-reconcile and mid-swap, kube-apiserver, etcd, containerd, a
 * daprd, a task container, Redis, PostgreSQL) or races two writers, under a
 * steady client load reaching the task pods through a NodePort Service, as a
 * client outside the cluster does (no port-forward, which needs the
 * apiserver). Each ends with the same check: every acknowledged write there
 * with its last content, every acknowledged delete gone, the TaskApi Ready
 * again, the service answering. The table (scenario, requests, failed, lost)
 * is printed at the end.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crashAndRestart } from '../../testbed/harness/faults.ts';
import {
  BACKENDS_NAMESPACE,
  OPERATOR_NAMESPACE,
  uninstallOperatorWithKustomize,
} from '../../testbed/harness/install.ts';
import { stateBackendPatch } from '../../testbed/harness/kubectl.ts';
import { waitUntil } from '../../testbed/harness/process.ts';
import type { Task } from '../../src/service/schemas/task.ts';
import { jsonClient, type JsonClient } from '../support/http.ts';
import { emptyModel, lostOrWrong, runLoad, seed, type LoadModel } from '../support/swap-load.ts';
import {
  apply,
  chain,
  containerIds,
  installChainWithSample,
  k,
  kTry,
  killContainers,
  podFields,
  podNames,
  sampleTaskApi,
  sigkill,
} from '../support/cluster.ts';

const namespace = 'e2e-faults';
const taskPods = 'app.kubernetes.io/instance=tasks,app.kubernetes.io/component=task-service';
/** Clients writing throughout, each on tasks of its own. */
const WORKERS = 3;
/** Load before the fault and after recovery, so each scenario sees steady traffic on both sides. */
const STEADY_MS = 1_000;

let baseUrl = '';
let api: JsonClient;
const model: LoadModel = emptyModel();

interface Row {
  scenario: string;
  requests: number;
  failed: number;
  lost: number;
  seconds: number;
  detail: string;
}
const rows: Row[] = [];

beforeAll(async () => {
  if (!chain().faultSocket) {
    throw new Error('the fault table needs a cluster this test bed started (ChainInfo.faultSocket)');
  }
  await installChainWithSample(namespace);
  // A client outside the cluster: the node's address and a NodePort, served by kube-proxy's rules on the node.
  await apply([
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'tasks-nodeport', namespace },
      spec: {
        type: 'NodePort',
        selector: { 'app.kubernetes.io/instance': 'tasks', 'app.kubernetes.io/component': 'task-service' },
        ports: [{ name: 'http', port: 80, targetPort: 'http' }],
      },
    },
  ]);
  const nodePort = await k([
    'get',
    'service',
    'tasks-nodeport',
    '-n',
    namespace,
    '-o',
    'jsonpath={.spec.ports[0].nodePort}',
  ]);
  const [pod = ''] = await podNames(namespace, taskPods);
  const nodeName = await podFields(namespace, pod, '{.spec.nodeName}');
  const nodeIp = await k([
    'get',
    'node',
    nodeName,
    '-o',
    'jsonpath={.status.addresses[?(@.type=="InternalIP")].address}',
  ]);
  baseUrl = `http://${nodeIp}:${nodePort}`;
  api = jsonClient(baseUrl);
  await waitUntil(async () => (await api.request('GET', '/tasks?limit=1')).status === 200, {
    what: 'the task service through the NodePort',
    timeoutMs: 30_000,
  });
  await seed([api], model, 300, 6);
});

afterAll(async () => {
  const width = Math.max(...rows.map((row) => row.scenario.length), 'scenario'.length);
  const line = (cells: (string | number)[]) =>
    `${String(cells[0]).padEnd(width)}  ${cells
      .slice(1, 5)
      .map((cell) => String(cell).padStart(8))
      .join('  ')}  ${cells[5] ?? ''}`;
  console.log(
    [
      `fault table (${WORKERS} clients throughout, through a NodePort):`,
      line(['scenario', 'requests', 'failed', 'lost', 'seconds', 'what happened']),
      ...rows.map((row) =>
        line([row.scenario, row.requests, row.failed, row.lost, row.seconds.toFixed(1), row.detail]),
      ),
    ].join('\n'),
  );
  await kTry(['delete', 'namespace', namespace, '--wait=true', '--timeout=120s']);
  await uninstallOperatorWithKustomize(chain().kubeconfig);
});

/**
 * Runs `fault` (which injects its fault and waits for what it broke to be
 * back, returning what happened) under the client load, then checks that
 * nothing acknowledged was lost, the TaskApi is Ready and the service answers.
 */
async function underLoad(scenario: string, fault: () => Promise<string>, options: { failures?: 'none' } = {}) {
  const before = { requests: model.requests, failures: model.failures.length, wrongReads: model.wrongReads.length };
  const started = performance.now();
  const { promise: stop, resolve: endLoad } = Promise.withResolvers<undefined>();
  const load = runLoad([api], model, WORKERS, stop);
  let detail: string;
  try {
    await sleep(STEADY_MS);
    detail = await fault();
    await sleep(STEADY_MS);
  } finally {
    endLoad(undefined);
    await load;
  }
  await k(['wait', '--for=condition=Ready', 'taskapi/tasks', '-n', namespace, '--timeout=180s']);
  // Answering again (a client whose kept-alive connection went with a replaced pod opens another).
  await waitUntil(async () => (await api.request('GET', '/tasks?limit=1')).status === 200, {
    what: 'the task service to answer',
    timeoutMs: 30_000,
  });
  const { problems } = await lostOrWrong(api, model);
  const failures = model.failures.slice(before.failures);
  const wrongReads = model.wrongReads.slice(before.wrongReads);
  rows.push({
    scenario,
    requests: model.requests - before.requests,
    failed: failures.length,
    lost: problems.length + wrongReads.length,
    seconds: (performance.now() - started) / 1000,
    detail,
  });
  if (failures.length > 0) console.log(`${scenario}: ${failures.length} failed requests:\n${summarize(failures)}`);
  expect(problems).toEqual([]);
  expect(wrongReads).toEqual([]);
  if (options.failures === 'none') expect(failures).toEqual([]);
}

describe('faults on the whole chain under a steady client load', () => {
  it('two clients updating one task with the same ETag: one wins each round, the other gets 409', async () => {
    await underLoad(
      'two writers, stale ETags',
      async () => {
        const created = await api.request<Task>('POST', '/tasks', { title: 'contested' });
        expect(created.status).toBe(201);
        const id = created.body.id;
        let last = { task: created.body, etag: created.headers.get('etag') ?? '' };
        // Two clients of their own, each holding the ETag both read.
        const [first, second] = [jsonClient(baseUrl), jsonClient(baseUrl)];
        const rounds = 20;
        let conflicts = 0;
        for (let round = 0; round < rounds; round++) {
          const write = (client: JsonClient, status: string) =>
            client.request<Task>('PUT', `/tasks/${id}/status`, { status }, { 'if-match': last.etag });
          const answers = await Promise.all([
            write(first, round % 2 ? 'completed' : 'in_progress'),
            write(second, 'pending'),
          ]);
          expect(answers.map((answer) => answer.status).sort()).toEqual([200, 409]);
          conflicts += answers.filter((answer) => answer.status === 409).length;
          const winner = answers.find((answer) => answer.status === 200);
          if (winner) last = { task: winner.body, etag: winner.headers.get('etag') ?? '' };
        }
        // The winner's write is what the task holds: the final check reads it with the rest.
        model.tasks.set(id, last);
        model.requests += 1 + rounds * 2;
        return `${rounds} rounds: ${rounds} won, ${conflicts} refused with 409`;
      },
      { failures: 'none' },
    );
  });

  it('the operator SIGKILLed mid-reconcile: an edit and a new TaskApi, both carried out after the restart', async () => {
    await underLoad(
      'operator SIGKILLed mid-reconcile',
      async () => {
        // The containers are looked up first, so the kill follows the edits by one call to containerd. A new
        // TaskApi takes a dozen writes to render: the kill lands in the middle of them.
        const operators = await containerIds(OPERATOR_NAMESPACE, 'taskapi-operator-', 'operator');
        await k(['patch', 'taskapi', 'tasks', '-n', namespace, '--type=merge', '-p', '{"spec":{"replicas":3}}']);
        await apply([sampleTaskApi('tasks-extra', namespace)]);
        const killed = await sigkill(operators);
        const atKill = await Promise.all([generations('tasks'), childrenOf('tasks-extra')]);
        expect(killed).toBeGreaterThan(0);
        // Back: the edit observed and rolled out (3 pods ready), the new TaskApi Ready with every child.
        await waitUntil(
          async () => {
            const now = await generations('tasks');
            const ready = await k([
              'get',
              'deployment',
              'tasks',
              '-n',
              namespace,
              '-o',
              'jsonpath={.status.readyReplicas}',
            ]);
            return now.observed === now.generation && ready === '3';
          },
          { what: 'the restarted operator to scale the task service to 3', timeoutMs: 120_000 },
        );
        await k(['wait', '--for=condition=Ready', 'taskapi/tasks-extra', '-n', namespace, '--timeout=120s']);
        const made = await childrenOf('tasks-extra');
        return (
          `${killed} operator containers killed with tasks' generation ${atKill[0].generation} observed ` +
          `${atKill[0].observed || 'not yet'} and ${atKill[1]} of tasks-extra's children made; ` +
          `after: 3/3, tasks-extra Ready with ${made}`
        );
      },
      { failures: 'none' },
    );
  });

  it('kube-apiserver SIGKILLed and restarted', async () => {
    await underLoad('kube-apiserver SIGKILLed', () => restartAndWait('kube-apiserver'), { failures: 'none' });
  });

  it('etcd SIGKILLed and restarted', async () => {
    await underLoad('etcd SIGKILLed', () => restartAndWait('etcd'), { failures: 'none' });
  });

  it("containerd SIGKILLed and restarted on the node: the pods' containers run on", async () => {
    await underLoad(
      'containerd SIGKILLed',
      async () => {
        const before = await podStates();
        const detail = await restartAndWait('containerd');
        await waitUntil(
          async () =>
            (await k(['get', 'node', '-o', 'jsonpath={.items[*].status.conditions[?(@.type=="Ready")].status}']))
              .split(' ')
              .every((s) => s === 'True'),
          { what: 'the nodes Ready after containerd restarted', timeoutMs: 60_000 },
        );
        expect(await podStates()).toEqual(before);
        return `${detail}; no container restarted`;
      },
      { failures: 'none' },
    );
  });

  it('a daprd container SIGKILLed', async () => {
    await underLoad('daprd container SIGKILLed', () => killInTaskPod('daprd'));
  });

  it('the task container SIGKILLed', async () => {
    await underLoad('task container SIGKILLed', () => killInTaskPod('task-service'));
  });

  it('the Redis process SIGKILLed (the state store)', async () => {
    await underLoad('Redis SIGKILLed', () => killBackend('redis'));
  });

  it('the operator SIGKILLed mid-swap to PostgreSQL', async () => {
    await underLoad('operator SIGKILLed mid-swap', async () => {
      const swap = () => k(['get', 'taskapi', 'tasks', '-n', namespace, '-o', 'jsonpath={.status.swap.phase}']);
      await k(stateBackendPatch('tasks', namespace, 'postgresql'));
      let phase = '';
      await waitUntil(
        async () => ['Backfill', 'Verify', 'Flip', 'Flipped', 'Completed'].includes((phase = await swap())),
        {
          what: 'the swap to begin its backfill',
          timeoutMs: 60_000,
          intervalMs: 50,
        },
      );
      const killed = await killContainers(OPERATOR_NAMESPACE, 'taskapi-operator-', 'operator');
      expect(phase).not.toBe('Completed');
      await waitUntil(
        async () =>
          (await k([
            'get',
            'taskapi',
            'tasks',
            '-n',
            namespace,
            '-o',
            'jsonpath={.status.stateBackend} {.status.swap.phase}',
          ])) === 'postgresql Completed',
        { what: 'the restarted operator to complete the swap', timeoutMs: 180_000 },
      );
      await k(['rollout', 'status', 'deployment/tasks', '-n', namespace, '--timeout=180s']);
      return `${killed} operator containers killed in ${phase}; Completed on PostgreSQL, pods rolled`;
    });
  });

  it('the PostgreSQL process SIGKILLed (the state store now)', async () => {
    await underLoad('PostgreSQL SIGKILLed', () => killBackend('postgresql'));
  });
});

/** Failures by what they answered (method, status, error code), with a count and one example each. */
function summarize(failures: string[]): string {
  const kinds = new Map<string, { count: number; example: string }>();
  for (const failure of failures) {
    const kind = failure
      .replace(/\/tasks\/[0-9a-f-]{36}/, '/tasks/:id')
      .replace(/^(\S+ \S+ \d+).*?("code":"[^"]+")?.*$/, '$1 $2');
    const known = kinds.get(kind);
    if (known) known.count++;
    else kinds.set(kind, { count: 1, example: failure.slice(0, 240) });
  }
  return [...kinds].map(([kind, { count, example }]) => `  ${count} x ${kind}  e.g. ${example}`).join('\n');
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function generations(name: string): Promise<{ generation: string; observed: string }> {
  const [generation = '', observed = ''] = (
    await k([
      'get',
      'taskapi',
      name,
      '-n',
      namespace,
      '-o',
      'jsonpath={.metadata.generation} {.status.observedGeneration}',
    ])
  ).split(' ');
  return { generation, observed };
}

/** How many objects the operator made for TaskApi `name` (labelled with its instance). */
async function childrenOf(name: string): Promise<number> {
  const listed = await k([
    'get',
    'deployments,services,serviceaccounts,roles,rolebindings,configmaps,secrets,components.dapr.io,subscriptions.dapr.io',
    '-n',
    namespace,
    '-l',
    `app.kubernetes.io/instance=${name}`,
    '-o',
    'name',
  ]);
  return listed.split('\n').filter(Boolean).length;
}

/** Crashes a program of the cluster and waits until kube-apiserver answers /readyz (every check, etcd's too). */
async function restartAndWait(name: string): Promise<string> {
  const socket = chain().faultSocket;
  if (!socket) throw new Error('no fault socket');
  const started = performance.now();
  await crashAndRestart(socket, name);
  await waitUntil(async () => (await kTry(['get', '--raw', '/readyz'])).stdout.trim() === 'ok', {
    what: `kube-apiserver ready after ${name} restarted`,
    timeoutMs: 120_000,
    intervalMs: 200,
  });
  return `restarted; apiserver ready ${((performance.now() - started) / 1000).toFixed(1)} s after the kill`;
}

/** Every pod's containers and their restart counts in the namespaces the chain runs in. */
async function podStates(): Promise<string> {
  const all = await Promise.all(
    [namespace, OPERATOR_NAMESPACE, BACKENDS_NAMESPACE].map((ns) =>
      k([
        'get',
        'pods',
        '-n',
        ns,
        '-o',
        'jsonpath={range .items[*]}{.metadata.name} {.status.containerStatuses[*].restartCount}{"\\n"}{end}',
      ]),
    ),
  );
  return all.join('');
}

/** SIGKILLs `container` in the oldest task pod; waits for the kubelet to restart it and the pod to be Ready. */
async function killInTaskPod(container: string): Promise<string> {
  const [pod = ''] = await podNames(namespace, taskPods);
  return killAndAwaitRestart(namespace, pod, container);
}

async function killBackend(name: 'redis' | 'postgresql'): Promise<string> {
  const [pod = ''] = await podNames(BACKENDS_NAMESPACE, `app=${name}`);
  return killAndAwaitRestart(BACKENDS_NAMESPACE, pod, name);
}

async function killAndAwaitRestart(ns: string, pod: string, container: string): Promise<string> {
  const restarts = async () =>
    Number(await podFields(ns, pod, `{.status.containerStatuses[?(@.name=="${container}")].restartCount}`));
  const before = await restarts();
  const started = performance.now();
  expect(await killContainers(ns, pod, container)).toBe(1);
  await waitUntil(
    async () =>
      (await restarts()) > before &&
      (await podFields(ns, pod, '{.status.conditions[?(@.type=="Ready")].status}')) === 'True',
    { what: `${container} of ${pod} restarted and the pod Ready`, timeoutMs: 120_000, intervalMs: 200 },
  );
  return `${container} of ${pod} restarted, pod Ready ${((performance.now() - started) / 1000).toFixed(1)} s after the kill`;
}
