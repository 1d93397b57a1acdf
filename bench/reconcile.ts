/**
 * bench/reconcile: N TaskApis on the real test bed.
 *
 *   baseline  a bare client creates the N TaskApis and server-side-applies the
 *             very objects the builders render (same concurrency), then waits
 *             until every task Deployment is available;
 *   operator  the operator process does the same from N created TaskApis, until
 *             every TaskApi reports Ready.
 * Both in one run, one after the other, each on a test bed of its own started
 * fresh for it: on one shared test bed the side run second inherits the first
 * one's leftovers (the same bare-client run repeated there took 98.4 s after
 * 87.4 s), which would be charged to whichever side went second. Prints the
 * ratio (goal <= 1.3), the writes one no-op resync of all N makes (goal 0), and
 * the operator's RSS (goal <= 64 MiB + 20 KiB per TaskApi).
 *
 *   npm run bench:reconcile            # N=1000
 *   BENCH_N=200 npm run bench:reconcile
 *   BENCH_OPERATOR_NODE_ARGS='--max-old-space-size=64' npm run bench:reconcile
 *     adds those Node flags to the manifest's, to try one before it ships.
 */
import { randomBytes } from 'node:crypto';
import { decideSwap } from '../src/controller/migration.ts';
import { buildTokenSecret, type TokenSecret } from '../src/controller/resources/swap.ts';
import { readFileSync } from 'node:fs';
import { processCpuMs } from './cpu.ts';
import { pino } from 'pino';
import { join } from 'node:path';
import type { TaskApi } from '../src/api/resource.ts';
import { parseSpec } from '../src/api/taskapi.ts';
import { desiredChildren } from '../src/controller/desired.ts';
import { Informer } from '../src/kube/informers.ts';
import { CHILD_KINDS, TASKAPI_KIND } from '../src/controller/kinds.ts';
import type { KindInfo } from '../src/kube/kinds.ts';
import type { KubeClient } from '../src/kube/client.ts';
import { loadConnection } from '../src/kube/kubeconfig.ts';
import { DEFAULT_BUILD_SETTINGS } from '../src/controller/resources/deployment.ts';
import type { RawObject } from '../src/kube/objects.ts';
import { operatorClient } from '../src/controller/taskapi-client.ts';
import { kubectlOk } from '../testbed/harness/kubectl.ts';
import { compileSources, startOperator } from '../testbed/harness/operator.ts';
import { waitUntil, type ManagedProcess } from '../testbed/harness/process.ts';
import { startTestbed, type Testbed } from '../testbed/harness/testbed.ts';

const N = Number(process.env['BENCH_N'] ?? 1000);
const CONCURRENCY = 8;
const spec = {
  image: 'registry.example/taskapi:1',
  redis: { host: 'redis:6379', passwordSecretRef: { name: 'taskapi-redis', key: 'password' } },
};

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** CPU seconds a process has used (user + system), from /proc. */
const cpuSeconds = (pid: number | undefined): number => processCpuMs(pid) / 1000;

/** Runs `work` over `items` with at most `limit` in flight. */
async function pool<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await work(items[next++] as T);
    }),
  );
}

const names = Array.from({ length: N }, (_, index) => `bench-${String(index).padStart(4, '0')}`);
const logger = pino({ level: 'warn' });

/** One fresh test bed, with the CRD installed and a namespace holding the Secret the TaskApis name. */
interface Bed {
  testbed: Testbed;
  client: KubeClient;
  namespace: string;
  /** CPU seconds used so far by kube-apiserver, and by the whole control plane. */
  cpu(): { apiserver: number; controlPlane: number };
  createTaskApi(name: string): Promise<TaskApi>;
}

/** What one side cost: wall time, and the CPU the control plane spent on it. */
interface Side {
  ms: number;
  apiserverSeconds: number;
  controlPlaneSeconds: number;
}

async function onFreshTestbed<T>(namespace: string, work: (bed: Bed) => Promise<T>): Promise<T> {
  const testbed = await startTestbed();
  try {
    const { kubeconfig, processes } = testbed.controlPlane;
    const k = (args: string[]) => kubectlOk(kubeconfig, args);
    await k(['apply', '--server-side', '-f', 'crds/taskapi.dev_taskapis.yaml']);
    await k(['wait', '--for=condition=Established', 'crd/taskapis.taskapi.dev', '--timeout=30s']);
    await k(['create', 'namespace', namespace]);
    await k(['create', 'secret', 'generic', 'taskapi-redis', '-n', namespace, '--from-literal=password=bench']);
    const client = operatorClient(await loadConnection({ KUBECONFIG: kubeconfig }));
    const apiserver = processes.find((child) => child.name === 'kube-apiserver');
    return await work({
      testbed,
      client,
      namespace,
      cpu: () => ({
        apiserver: cpuSeconds(apiserver?.pid),
        controlPlane: processes.reduce((sum, child) => sum + cpuSeconds(child.pid), 0),
      }),
      async createTaskApi(name) {
        const manifest = { apiVersion: 'taskapi.dev/v1alpha1', kind: 'TaskApi', metadata: { name, namespace }, spec };
        return (await client.apply(manifest)) as unknown as TaskApi;
      },
    });
  } finally {
    await testbed.stop();
  }
}

/** Times `run` until `done`, with the control plane CPU it took. */
async function measure(bed: Bed, run: () => Promise<void>): Promise<Side> {
  const before = bed.cpu();
  const start = performance.now();
  await run();
  const ms = performance.now() - start;
  const after = bed.cpu();
  return {
    ms,
    apiserverSeconds: after.apiserver - before.apiserver,
    controlPlaneSeconds: after.controlPlane - before.controlPlane,
  };
}

/**
 * Counts objects of a kind in the bed's namespace that pass `isReady`, through a watch:
 * the bench learns the moment the last one is ready without polling lists,
 * which would load the API server more the longer a side runs.
 */
async function readyCounter(bed: Bed, info: KindInfo, isReady: (object: RawObject) => boolean) {
  const informer = new Informer(
    bed.client,
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
      const readyNow = () => informer.list(bed.namespace).filter((object) => object.ready).length;
      await waitUntil(() => Promise.resolve(done(readyNow())), {
        what: `every ${info.kind} in ${bed.namespace} to be ready`,
        timeoutMs: 1_800_000,
        intervalMs: 100,
        watch: watched ? [watched] : [],
      });
      await informer.stop();
    },
  };
}

compileSources();

// Baseline: a bare client doing the same writes.
const baseline = await onFreshTestbed('baseline', async (bed) => {
  let writes = 0;
  bed.client.onWrite.push(() => {
    writes++;
  });
  const deployments = await readyCounter(
    bed,
    CHILD_KINDS.find((info) => info.kind === 'Deployment') as KindInfo,
    (object) => (object['status'] as { availableReplicas?: number } | undefined)?.availableReplicas === 1,
  );
  const side = await measure(bed, async () => {
    await pool(names, CONCURRENCY, async (name) => {
      const created = await bed.createTaskApi(name);
      const taskApi: TaskApi = { ...created, spec: parseSpec(spec) };
      const children = desiredChildren(taskApi, decideSwap(taskApi, true).placement, DEFAULT_BUILD_SETTINGS);
      // What the operator makes besides: the Secrets with the tokens its pods and their sidecars use.
      for (const which of ['dapr-app-token', 'dapr-api-token', 'swap-control'] satisfies TokenSecret[]) {
        await bed.client.create(buildTokenSecret(taskApi, which, randomBytes(32).toString('hex')));
      }
      await Promise.all(children.map((child) => bed.client.apply(child)));
    });
    await deployments.until((ready) => ready === N);
  });
  console.log(`baseline (bare client, ${N} TaskApis): ${seconds(side.ms)}`);
  return { ...side, writes };
});

// The operator.
await onFreshTestbed('operated', async (bed) => {
  const operator = await startOperator({
    kubeconfig: bed.testbed.controlPlane.kubeconfig,
    logDir: join(bed.testbed.dir, 'operator'),
    env: {
      OPERATOR_CONCURRENCY: String(CONCURRENCY),
      OPERATOR_RESYNC_SECONDS: '60',
      LOG_LEVEL: 'warn',
    },
    extraNodeArgs: process.env['BENCH_OPERATOR_NODE_ARGS']?.split(' ').filter(Boolean) ?? [],
  });
  try {
    const taskApis = await readyCounter(bed, TASKAPI_KIND, (object) =>
      Boolean(
        (object['status'] as TaskApi['status'])?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
      ),
    );
    const side = await measure(bed, async () => {
      await pool(names, CONCURRENCY, async (name) => {
        await bed.createTaskApi(name);
      });
      await taskApis.until((ready) => ready === N, operator.process);
    });
    const operatorCpuSeconds = cpuSeconds(operator.process.pid);
    const reconcilesToReady = await operator.counter('controller_runtime_reconcile_total');
    const writesToReady = await operator.counter('taskapi_operator_api_writes_total');
    console.log(`operator (${N} TaskApis to Ready):   ${seconds(side.ms)}`);

    // One no-op resync of all N: wait until N more reconciles happened with nothing changed.
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    const writesBefore = await operator.counter('taskapi_operator_api_writes_total');
    const reconcilesBefore = await operator.counter('controller_runtime_reconcile_total');
    await waitUntil(
      async () => (await operator.counter('controller_runtime_reconcile_total')) >= reconcilesBefore + N,
      { what: 'a full resync', timeoutMs: 300_000, intervalMs: 1_000 },
    );
    const resyncWrites = (await operator.counter('taskapi_operator_api_writes_total')) - writesBefore;
    const procStatus = readFileSync(`/proc/${String(operator.process.pid)}/status`, 'utf8');
    const statusKiB = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(procStatus)?.[1]);
    const rssKiB = statusKiB('VmRSS');
    const rssBudgetKiB = 64 * 1024 + 20 * N;
    // Live JavaScript data vs what the process holds: tells a leak or a big cache from an unreturned peak.
    const heapUsedMiB = (await operator.counter('nodejs_heap_size_used_bytes')) / 2 ** 20;
    const heapTotalMiB = (await operator.counter('nodejs_heap_size_total_bytes')) / 2 ** 20;

    console.log('\nbench/reconcile (each side on a fresh test bed of its own)');
    console.log(`  TaskApis                          ${N}`);
    console.log(`  operator / bare client time       ${(side.ms / baseline.ms).toFixed(2)}  (goal <= 1.3)`);
    console.log(`  writes in one no-op resync        ${resyncWrites}  (goal 0)`);
    console.log(
      `  operator RSS                      ${(rssKiB / 1024).toFixed(1)} MiB of ${(rssBudgetKiB / 1024).toFixed(1)} MiB budget: ${(rssKiB / rssBudgetKiB).toFixed(2)} (goal <= 1)`,
    );
    console.log(
      `    of which anonymous / file-backed  ${(statusKiB('RssAnon') / 1024).toFixed(1)} / ${(statusKiB('RssFile') / 1024).toFixed(1)} MiB (file-backed: pages of the node binary and its libraries)`,
    );
    console.log(`    peak while it worked            ${(statusKiB('VmHWM') / 1024).toFixed(1)} MiB`);
    console.log(
      `  reconciles / writes per TaskApi   ${(reconcilesToReady / N).toFixed(1)} / ${(writesToReady / N).toFixed(1)}  (the bare client: ${((baseline.writes - N) / N).toFixed(1)} writes)`,
    );
    console.log(
      `  kube-apiserver CPU                ${side.apiserverSeconds.toFixed(1)} s vs ${baseline.apiserverSeconds.toFixed(1)} s (bare client); operator CPU ${operatorCpuSeconds.toFixed(1)} s`,
    );
    console.log(
      `  whole control plane CPU           ${side.controlPlaneSeconds.toFixed(1)} s vs ${baseline.controlPlaneSeconds.toFixed(1)} s (etcd, apiserver, controller-manager, scheduler, kwok)`,
    );
    console.log(
      `  operator V8 heap                  ${heapUsedMiB.toFixed(1)} MiB used of ${heapTotalMiB.toFixed(1)} MiB allocated`,
    );
  } finally {
    await operator.stop();
  }
});
