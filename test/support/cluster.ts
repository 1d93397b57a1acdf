/**
 * Small helpers for tests on the cluster with a real node: kubectl as a user
 * runs it, a script run with the image's Node inside a pod, and a port-forward
 * that lives as long as the test needs it.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { inject } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import {
  installBackends,
  installOperatorWithKustomize,
  installSample,
  repoRoot,
} from '../../testbed/harness/install.ts';
import {
  kubectl,
  kubectlOk,
  portForward as startPortForward,
  type PortForward,
} from '../../testbed/harness/kubectl.ts';

export type { PortForward };

/** The real node's test bed (test/testbed/node). */
export const cluster = (): ReturnType<typeof inject<'cluster'>> => inject('cluster');
/** Any cluster the whole chain runs on (test/e2e): the real node here, kind elsewhere. */
export const chain = (): ReturnType<typeof inject<'chain'>> => inject('chain');

export const k = (args: string[], input?: string): Promise<string> => kubectlOk(chain().kubeconfig, args, input);
export const kTry = (args: string[], input?: string) => kubectl(chain().kubeconfig, args, input);

export async function apply(manifests: object[]): Promise<void> {
  await k(['apply', '-f', '-'], manifests.map((manifest) => stringify(manifest)).join('---\n'));
}

/**
 * The whole chain as a user installs it: the dev backends, the operator from
 * config/default, and the sample TaskApi in `namespace`, which enforces the
 * restricted Pod Security Standard (task pods and their daprd pass it); waits
 * until the sample is Ready.
 */
export async function installChainWithSample(namespace: string): Promise<void> {
  const { kubeconfig, dir, backendImages } = chain();
  await installBackends(kubeconfig, dir, backendImages);
  await installOperatorWithKustomize(kubeconfig);
  await createNamespace(namespace);
  await k(['label', 'namespace', namespace, 'pod-security.kubernetes.io/enforce=restricted']);
  await installSample(kubeconfig, namespace);
  await k(['wait', '--for=condition=Ready', 'taskapi/tasks', '-n', namespace, '--timeout=180s']);
}

/** The sample TaskApi (config/samples) under another name: one replica, no notification service. */
export function sampleTaskApi(name: string, namespace: string): object {
  const sample = parse(readFileSync(join(repoRoot, 'config', 'samples', 'taskapi.yaml'), 'utf8')) as {
    spec: Record<string, unknown>;
  };
  const spec: Record<string, unknown> = { ...sample.spec, replicas: 1 };
  delete spec['notifications'];
  return { apiVersion: 'taskapi.dev/v1alpha1', kind: 'TaskApi', metadata: { name, namespace }, spec };
}

/** A Deployment of `replicas` pods labelled `app: <name>`, with the given pod spec. */
export function deployment(namespace: string, name: string, replicas: number, podSpec: object): object {
  const labels = { app: name };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace },
    spec: { replicas, selector: { matchLabels: labels }, template: { metadata: { labels }, spec: podSpec } },
  };
}

export async function createNamespace(name: string): Promise<void> {
  await k(['create', 'namespace', name]);
}

/** Runs `node -e script` in a container of a running pod; returns what it printed. */
export async function nodeIn(namespace: string, pod: string, script: string, container?: string): Promise<string> {
  return k(['exec', '-n', namespace, pod, ...(container ? ['-c', container] : []), '--', 'node', '-e', script]);
}

/** Fields of one pod, by a kubectl JSONPath template. */
export const podFields = (namespace: string, pod: string, jsonpath: string): Promise<string> =>
  k(['get', 'pod', pod, '-n', namespace, '-o', `jsonpath=${jsonpath}`]);

/** Names of the pods matching `selector`, oldest first. */
export async function podNames(namespace: string, selector: string): Promise<string[]> {
  const out = await k([
    'get',
    'pods',
    '-n',
    namespace,
    '-l',
    selector,
    '--sort-by=.metadata.creationTimestamp',
    '-o',
    'jsonpath={range .items[*]}{.metadata.name}{"\\n"}{end}',
  ]);
  return out.split('\n').filter(Boolean);
}

/** `kubectl port-forward <target> :<port>` on the host; resolves once it listens. */
export const portForward = (namespace: string, target: string, port: number): Promise<PortForward> =>
  startPortForward(chain().kubeconfig, namespace, target, port);

const run = promisify(execFile);

/** Container processes (containerd tasks, sandboxes included) running for pods of a namespace, optionally of pods named `podPrefix`…. */
export async function runningContainersOf(namespace: string, podPrefix = ''): Promise<string[]> {
  const { stdout: containers } = await ctr([
    'containers',
    'list',
    `labels."io.kubernetes.pod.namespace"==${namespace}`,
  ]);
  const { stdout: tasks } = await ctr(['tasks', 'list']);
  const running = new Set(
    tasks
      .split('\n')
      .slice(1)
      .filter((line) => /\sRUNNING\s*$/.test(line))
      .map((line) => line.split(/\s+/)[0]),
  );
  const ids: string[] = [];
  for (const id of containers
    .split('\n')
    .slice(1)
    .map((line) => line.split(/\s+/)[0] ?? '')
    .filter(Boolean)) {
    if (!running.has(id)) continue;
    if (podPrefix) {
      const { stdout: info } = await ctr(['containers', 'info', id]);
      const labels = (JSON.parse(info) as { Labels?: Record<string, string> }).Labels ?? {};
      if (!(labels['io.kubernetes.pod.name'] ?? '').startsWith(podPrefix)) continue;
    }
    ids.push(id);
  }
  return ids;
}

/** Ids of the containers named `container` of the pods of `namespace` whose name starts with `podPrefix`. */
export async function containerIds(namespace: string, podPrefix: string, container: string): Promise<string[]> {
  const { stdout } = await ctr([
    'containers',
    'list',
    '--quiet',
    `labels."io.kubernetes.pod.namespace"==${namespace},labels."io.kubernetes.container.name"==${container}`,
  ]);
  const ids: string[] = [];
  for (const id of stdout.split('\n').filter(Boolean)) {
    const { stdout: info } = await ctr(['containers', 'info', id]);
    const labels = (JSON.parse(info) as { Labels?: Record<string, string> }).Labels ?? {};
    if ((labels['io.kubernetes.pod.name'] ?? '').startsWith(podPrefix)) ids.push(id);
  }
  return ids;
}

/**
 * SIGKILLs the containers `ids` that run, through the node's containerd (a
 * crash: no SIGTERM, no grace); the kubelet then restarts each in its pod.
 * Returns how many it killed (exited incarnations stay listed, and are skipped).
 */
export async function sigkill(ids: string[]): Promise<number> {
  const killed = await Promise.all(
    ids.map((id) =>
      ctr(['tasks', 'kill', '--signal', 'SIGKILL', id]).then(
        () => true,
        () => false,
      ),
    ),
  );
  return killed.filter(Boolean).length;
}

/** SIGKILLs the running container `container` of each pod of `namespace` whose name starts with `podPrefix`. */
export async function killContainers(namespace: string, podPrefix: string, container: string): Promise<number> {
  return sigkill(await containerIds(namespace, podPrefix, container));
}

function ctr(args: string[]): Promise<{ stdout: string }> {
  const [command = 'ctr', ...base] = chain().ctr;
  return run(command, [...base, ...args]);
}
