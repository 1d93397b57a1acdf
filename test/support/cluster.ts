/**
 * Small helpers for tests on the cluster with a real node: kubectl as a user
 * runs it, a script run with the image's Node inside a pod, and a port-forward
 * that lives as long as the test needs it.
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { inject } from 'vitest';
import { stringify } from 'yaml';
import { kubectl, kubectlOk } from '../../testbed/harness/kubectl.ts';
import { goBinary, kubectlBinary } from '../../testbed/harness/prerequisites.ts';
import { waitUntil } from '../../testbed/harness/process.ts';

export const cluster = (): ReturnType<typeof inject<'cluster'>> => inject('cluster');

export const k = (args: string[], input?: string): Promise<string> => kubectlOk(cluster().kubeconfig, args, input);
export const kTry = (args: string[], input?: string) => kubectl(cluster().kubeconfig, args, input);

export async function apply(manifests: object[]): Promise<void> {
  await k(['apply', '-f', '-'], manifests.map((manifest) => stringify(manifest)).join('---\n'));
}

export async function createNamespace(name: string): Promise<void> {
  await k(['create', 'namespace', name]);
}

/** Runs `node -e script` in a container of a running pod; returns what it printed. */
export async function nodeIn(namespace: string, pod: string, script: string, container?: string): Promise<string> {
  return k(['exec', '-n', namespace, pod, ...(container ? ['-c', container] : []), '--', 'node', '-e', script]);
}

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

export interface PortForward {
  url: string;
  stop(): Promise<void>;
}

/** `kubectl port-forward <target> :<port>` on the host; resolves once it listens. */
export async function portForward(namespace: string, target: string, port: number): Promise<PortForward> {
  const child = spawn(
    kubectlBinary(),
    ['--kubeconfig', cluster().kubeconfig, 'port-forward', '-n', namespace, '--address=127.0.0.1', target, `:${port}`],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  let localPort = 0;
  await waitUntil(
    () => {
      localPort = Number(/Forwarding from 127\.0\.0\.1:(\d+)/.exec(output)?.[1] ?? 0);
      return Promise.resolve(localPort > 0 || child.exitCode !== null);
    },
    { what: `kubectl port-forward ${target}`, timeoutMs: 30_000 },
  );
  if (child.exitCode !== null) throw new Error(`kubectl port-forward ${target} exited: ${output}`);
  return {
    url: `http://127.0.0.1:${localPort}`,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

const run = promisify(execFile);

/** Container processes (containerd tasks, sandboxes included) running for pods of a namespace, optionally of pods named `podPrefix`…. */
export async function runningContainersOf(namespace: string, podPrefix = ''): Promise<string[]> {
  const ctr = (args: string[]) =>
    run(goBinary('containerd', 'ctr'), ['--address', cluster().containerdSocket, '--namespace', 'k8s.io', ...args]);
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
