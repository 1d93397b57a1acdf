/**
 * Why a task pod's Dapr sidecar keeps restarting, for the TaskApi's status.
 * daprd exits when a Component it was given fails to initialise (none of ours
 * sets ignoreErrors: a sidecar that ignored one would never load it again), so
 * a Redis host that does not answer, or a configuration store without keyspace
 * notifications, shows in Kubernetes only as a container restarting. The
 * operator reads the tail of the daprd container's previous log and takes from
 * it the name of the Component that failed, if it is one of the TaskApi's. Only
 * that name (with its type and the spec field it comes from) reaches the
 * status: the log's error text can hold hosts and parts of a connection string,
 * and is never copied.
 */
import type { StateBackend, TaskApi } from '../api/resource.ts';
import type { KubeClient } from '../kube/client.ts';
import { names } from './names.ts';
import { listTaskPods } from './task-pods.ts';

/** A Component the operator renders for a TaskApi, with what a person edits to fix it. */
export interface RenderedComponent {
  name: string;
  type: string;
  field: string;
}

/** The sidecar of one pod, exiting and restarting. */
export interface SidecarFailure {
  pod: string;
  exitCode: number | undefined;
  /** The Component its last run failed to initialise, when the log names one of ours. */
  component: RenderedComponent | undefined;
}

/** Pods looked into per pass: enough to name the cause; a Deployment's pods share their Components. */
const PODS_LOOKED_INTO = 3;
/** Lines of the previous daprd log read: its last lines are the failure and the exit. */
const LOG_TAIL_LINES = 40;

export function renderedComponents(taskApi: TaskApi): RenderedComponent[] {
  const { spec } = taskApi;
  const state = (backend: StateBackend, type: string): RenderedComponent => ({
    name: names.stateComponent(taskApi, backend),
    type,
    field: `spec.${backend}`,
  });
  return [
    state('redis', 'state.redis'),
    state('postgresql', 'state.postgresql'),
    {
      name: names.pubsubComponent(taskApi),
      type: 'pubsub.redis',
      field: spec.pubsub.redis ? 'spec.pubsub.redis' : 'spec.redis',
    },
    { name: names.secretStoreComponent(taskApi), type: 'secretstores.kubernetes', field: 'the namespace' },
    { name: names.overdueSweepComponent(taskApi), type: 'bindings.cron', field: 'spec.overdueSweep' },
    { name: names.settingsComponent(taskApi), type: 'configuration.redis', field: 'spec.settings.store' },
  ];
}

/**
 * The Component a daprd log says failed to initialise, if it is one of
 * `components`: the last `Failed to init component <name> (…)` or
 * `process component <name> error` line wins (a log may hold an earlier
 * failure that a retry got past). Text and JSON log formats alike.
 */
export function failedComponentInLog(log: string, components: RenderedComponent[]): RenderedComponent | undefined {
  const byName = new Map(components.map((component) => [component.name, component]));
  let found: RenderedComponent | undefined;
  for (const match of log.matchAll(/(?:Failed to init component|process component) ([a-z0-9][a-z0-9.-]*)/g)) {
    found = byName.get(match[1] ?? '') ?? found;
  }
  return found;
}

/** The task pods whose daprd is not ready and has exited at least once, with what its last run failed on. */
export async function sidecarFailures(kube: KubeClient, taskApi: TaskApi): Promise<SidecarFailure[]> {
  const { namespace } = taskApi.metadata;
  const failing = (await listTaskPods(kube, taskApi)).flatMap((pod) => {
    const daprd = pod.status?.containerStatuses?.find((container) => container.name === 'daprd');
    if (!daprd || daprd.ready || daprd.restartCount === 0 || !daprd.lastState?.terminated) return [];
    return [{ pod: pod.metadata.name, exitCode: daprd.lastState.terminated.exitCode }];
  });
  const components = renderedComponents(taskApi);
  return Promise.all(
    failing.slice(0, PODS_LOOKED_INTO).map(async (failure) => {
      const log = await kube
        .text(`read the previous log of daprd in pod ${failure.pod}`, podLogPath(namespace, failure.pod), {
          container: 'daprd',
          previous: true,
          tailLines: LOG_TAIL_LINES,
        })
        // A log gone with its container (or not readable) still leaves the restarts to report.
        .catch(() => '');
      return { ...failure, component: failedComponentInLog(log, components) };
    }),
  );
}

const podLogPath = (namespace: string, pod: string): string =>
  `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}/log`;

/**
 * The status message for failing sidecars: the first one named, with how to
 * read the rest. No restart count: the message (and so the status and its
 * Warning Event) stays the same while the sidecar keeps failing the same way.
 */
export function sidecarFailureMessage(failures: SidecarFailure[]): string {
  const [first] = failures;
  if (!first) return '';
  const others = failures.length > 1 ? ` (and ${failures.length - 1} more pod(s))` : '';
  const logs = `kubectl logs ${first.pod} -c daprd --previous says why`;
  if (first.component) {
    const { name, type, field } = first.component;
    return `the Dapr sidecar of pod ${first.pod}${others} cannot initialise Component ${name} (${type}, from ${field}) and restarts; ${logs}`;
  }
  const code = first.exitCode === undefined ? '' : ` with exit code ${first.exitCode}`;
  return `the Dapr sidecar of pod ${first.pod}${others} exits${code} and restarts; ${logs}`;
}
