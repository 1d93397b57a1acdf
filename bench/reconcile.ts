/**
 * bench/reconcile: N TaskApis on the real test bed.
 *
 *   baseline  a bare client creates the N TaskApis and server-side-applies the
 *             very objects the builders render (same concurrency), then waits
 *             until every task Deployment is available;
 *   operator  the operator process does the same from N created TaskApis, until
 *             every TaskApi reports Ready.
 * Both in one run, on one test bed; prints the ratio (goal <= 1.3), the writes
 * one no-op resync of all N makes (goal 0), and the operator's RSS (goal <=
 * 64 MiB + 20 KiB per TaskApi).
 *
 *   npm run bench:reconcile            # N=1000
 *   BENCH_N=200 npm run bench:reconcile
 *   BENCH_OPERATOR_NODE_ARGS='--max-old-space-size=64' npm run bench:reconcile
 *     adds those Node flags to the manifest's, to try one before it ships.
 */
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { join } from 'node:path';
import type { TaskApi } from '../src/api/resource.ts';
import { parseSpec } from '../src/api/taskapi.ts';
import { desiredChildren, type Manifest } from '../src/controller/desired.ts';
import { Informer } from '../src/controller/informers.ts';
import { CHILD_KINDS, TASKAPI_KIND, type KindInfo } from '../src/controller/kinds.ts';
import { KubeClient } from '../src/controller/kube.ts';
import { loadConnection } from '../src/controller/kubeconfig.ts';
import { DEFAULT_BUILD_SETTINGS } from '../src/controller/resources/deployment.ts';
import type { RawObject } from '../src/controller/snapshot.ts';
import { kubectlOk } from '../testbed/harness/kubectl.ts';
import { compileSources, startOperator } from '../testbed/harness/operator.ts';
import { waitUntil, type ManagedProcess } from '../testbed/harness/process.ts';
import { startTestbed } from '../testbed/harness/testbed.ts';

const N = Number(process.env['BENCH_N'] ?? 1000);
const CONCURRENCY = 8;
const spec = {
  image: 'registry.example/taskapi:1',
  redis: { host: 'redis:6379', passwordSecretRef: { name: 'taskapi-redis', key: 'password' } },
};

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** CPU seconds a process has used (user + system), from /proc. */
function cpuSeconds(pid: number | undefined): number {
  const fields =
    readFileSync(`/proc/${String(pid)}/stat`, 'utf8')
      .split(') ')[1]
      ?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Runs `work` over `items` with at most `limit` in flight. */
async function pool<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await work(items[next++] as T);
    }),
  );
}

compileSources();
const testbed = await startTestbed();
const { kubeconfig } = testbed.controlPlane;
const k = (args: string[], input?: string) => kubectlOk(kubeconfig, args, input);
const apiserver = testbed.controlPlane.processes.find((child) => child.name === 'kube-apiserver');
/** CPU seconds of every control plane process (etcd, apiserver, controller-manager, scheduler, kwok). */
const controlPlaneCpu = (): number =>
  testbed.controlPlane.processes.reduce((sum, child) => sum + cpuSeconds(child.pid), 0);
const client = new KubeClient(await loadConnection({ KUBECONFIG: kubeconfig }));
const logger = pino({ level: 'warn' });

/**
 * Counts objects of a kind in one namespace that pass `isReady`, through a watch:
 * the bench learns the moment the last one is ready without polling lists,
 * which would load the API server more the longer a phase runs.
 */
async function readyCounter(info: KindInfo, namespace: string, isReady: (object: RawObject) => boolean) {
  const informer = new Informer(
    client,
    info,
    (object) => ({
      metadata: {
        namespace: object.metadata?.namespace ?? '',
        name: object.metadata?.name ?? '',
        resourceVersion: object.metadata?.resourceVersion ?? '',
      },
      ready: isReady(object),
    }),
    logger,
  );
  await informer.start();
  return {
    async until(done: (ready: number) => boolean, watched?: ManagedProcess): Promise<void> {
      const readyNow = () => informer.list(namespace).filter((object) => object.ready).length;
      await waitUntil(() => Promise.resolve(done(readyNow())), {
        what: `every ${info.kind} in ${namespace} to be ready`,
        timeoutMs: 1_800_000,
        intervalMs: 100,
        watch: watched ? [watched] : [],
      });
      await informer.stop();
    },
  };
}

try {
  await k(['apply', '--server-side', '-f', 'crds/taskapi.dev_taskapis.yaml']);
  await k(['wait', '--for=condition=Established', 'crd/taskapis.taskapi.dev', '--timeout=30s']);
  const names = Array.from({ length: N }, (_, index) => `bench-${String(index).padStart(4, '0')}`);

  async function prepareNamespace(namespace: string): Promise<void> {
    await k(['create', 'namespace', namespace]);
    await k(['create', 'secret', 'generic', 'taskapi-redis', '-n', namespace, '--from-literal=password=bench']);
  }
  const createTaskApi = async (namespace: string, name: string): Promise<TaskApi> => {
    const manifest: Manifest = { apiVersion: 'taskapi.dev/v1alpha1', kind: 'TaskApi', metadata: { name, namespace } };
    return (await client.apply({ ...manifest, spec } as Manifest)) as unknown as TaskApi;
  };

  // Baseline: a bare client doing the same writes.
  await prepareNamespace('baseline');
  let baselineWrites = 0;
  client.onWrite.push(() => {
    baselineWrites++;
  });
  const deployments = await readyCounter(
    CHILD_KINDS.find((info) => info.kind === 'Deployment') as KindInfo,
    'baseline',
    (object) => (object['status'] as { availableReplicas?: number } | undefined)?.availableReplicas === 1,
  );
  const baselineApiserverCpu = cpuSeconds(apiserver?.pid);
  const baselineControlPlaneCpu = controlPlaneCpu();
  const baselineStart = performance.now();
  await pool(names, CONCURRENCY, async (name) => {
    const created = await createTaskApi('baseline', name);
    const taskApi: TaskApi = { ...created, spec: parseSpec(spec) };
    const children = desiredChildren(
      taskApi,
      { podBackend: 'redis', stateBackends: ['redis'] },
      DEFAULT_BUILD_SETTINGS,
    );
    await Promise.all(children.map((child) => client.apply(child)));
  });
  await deployments.until((ready) => ready === N);
  const baselineMs = performance.now() - baselineStart;
  const baselineApiserverSeconds = cpuSeconds(apiserver?.pid) - baselineApiserverCpu;
  const baselineControlPlaneSeconds = controlPlaneCpu() - baselineControlPlaneCpu;
  client.onWrite.length = 0;
  console.log(`baseline (bare client, ${N} TaskApis): ${seconds(baselineMs)}`);
  await k(['delete', 'namespace', 'baseline', '--wait=true', '--timeout=600s']);

  // The operator.
  const operator = await startOperator({
    kubeconfig,
    logDir: join(testbed.dir, 'operator'),
    env: {
      OPERATOR_CONCURRENCY: String(CONCURRENCY),
      OPERATOR_RESYNC_SECONDS: '60',
      LOG_LEVEL: 'warn',
    },
    extraNodeArgs: process.env['BENCH_OPERATOR_NODE_ARGS']?.split(' ').filter(Boolean) ?? [],
  });
  await prepareNamespace('operated');
  const taskApis = await readyCounter(TASKAPI_KIND, 'operated', (object) =>
    Boolean(
      (object['status'] as TaskApi['status'])?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
    ),
  );
  const operatorApiserverCpu = cpuSeconds(apiserver?.pid);
  const operatorControlPlaneCpu = controlPlaneCpu();
  const operatorStart = performance.now();
  await pool(names, CONCURRENCY, async (name) => {
    await createTaskApi('operated', name);
  });
  await taskApis.until((ready) => ready === N, operator.process);
  const operatorMs = performance.now() - operatorStart;
  const operatorApiserverSeconds = cpuSeconds(apiserver?.pid) - operatorApiserverCpu;
  const operatorControlPlaneSeconds = controlPlaneCpu() - operatorControlPlaneCpu;
  const operatorCpuSeconds = cpuSeconds(operator.process.pid);
  const reconcilesToReady = await operator.counter('controller_runtime_reconcile_total');
  const writesToReady = await operator.counter('taskapi_operator_api_writes_total');
  console.log(`operator (${N} TaskApis to Ready):   ${seconds(operatorMs)}`);

  // One no-op resync of all N: wait until N more reconciles happened with nothing changed.
  await new Promise((resolve) => setTimeout(resolve, 5_000));
  const writesBefore = await operator.counter('taskapi_operator_api_writes_total');
  const reconcilesBefore = await operator.counter('controller_runtime_reconcile_total');
  await waitUntil(async () => (await operator.counter('controller_runtime_reconcile_total')) >= reconcilesBefore + N, {
    what: 'a full resync',
    timeoutMs: 300_000,
    intervalMs: 1_000,
  });
  const resyncWrites = (await operator.counter('taskapi_operator_api_writes_total')) - writesBefore;
  const procStatus = readFileSync(`/proc/${String(operator.process.pid)}/status`, 'utf8');
  const statusKiB = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(procStatus)?.[1]);
  const rssKiB = statusKiB('VmRSS');
  const rssBudgetKiB = 64 * 1024 + 20 * N;
  // Live JavaScript data vs what the process holds: tells a leak or a big cache from an unreturned peak.
  const heapUsedMiB = (await operator.counter('nodejs_heap_size_used_bytes')) / 2 ** 20;
  const heapTotalMiB = (await operator.counter('nodejs_heap_size_total_bytes')) / 2 ** 20;

  console.log('\nbench/reconcile');
  console.log(`  TaskApis                          ${N}`);
  console.log(`  operator / bare client time       ${(operatorMs / baselineMs).toFixed(2)}  (goal <= 1.3)`);
  console.log(`  writes in one no-op resync        ${resyncWrites}  (goal 0)`);
  console.log(
    `  operator RSS                      ${(rssKiB / 1024).toFixed(1)} MiB of ${(rssBudgetKiB / 1024).toFixed(1)} MiB budget: ${(rssKiB / rssBudgetKiB).toFixed(2)} (goal <= 1)`,
  );
  console.log(
    `    of which anonymous / file-backed  ${(statusKiB('RssAnon') / 1024).toFixed(1)} / ${(statusKiB('RssFile') / 1024).toFixed(1)} MiB (file-backed: pages of the node binary and its libraries)`,
  );
  console.log(`    peak while it worked            ${(statusKiB('VmHWM') / 1024).toFixed(1)} MiB`);
  console.log(
    `  reconciles / writes per TaskApi   ${(reconcilesToReady / N).toFixed(1)} / ${(writesToReady / N).toFixed(1)}  (the bare client: ${((baselineWrites - N) / N).toFixed(1)} writes)`,
  );
  console.log(
    `  kube-apiserver CPU                ${operatorApiserverSeconds.toFixed(1)} s vs ${baselineApiserverSeconds.toFixed(1)} s (bare client); operator CPU ${operatorCpuSeconds.toFixed(1)} s`,
  );
  console.log(
    `  whole control plane CPU           ${operatorControlPlaneSeconds.toFixed(1)} s vs ${baselineControlPlaneSeconds.toFixed(1)} s (etcd, apiserver, controller-manager, scheduler, kwok)`,
  );
  console.log(
    `  operator V8 heap                  ${heapUsedMiB.toFixed(1)} MiB used of ${heapTotalMiB.toFixed(1)} MiB allocated`,
  );
  await operator.stop();
} finally {
  await testbed.stop();
}
