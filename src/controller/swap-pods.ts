/**
 * The task pods of one TaskApi as the swap driver (swap.ts) reaches them: a
 * fresh list from the API server (never the cache: a pod the cache has not
 * seen yet would miss a plan), HTTP to each pod's app port with the control
 * token, and the plan ConfigMap applied before any pod is told a new plan.
 */
import {
  SWAP_JOB_ROUTE,
  SWAP_PROBE_ROUTE,
  SWAP_ROUTE,
  type SwapJobStatus,
  type SwapPlan,
  type SwapReport,
} from '../api/contract.ts';
import type { TaskApi } from '../api/resource.ts';
import type { KubeClient } from '../kube/client.ts';
import { http } from '../kube/node-http.ts';
import { buildSwapPlanConfigMap } from './resources/swap.ts';
import type { SwapPods } from './swap.ts';
import { listTaskPods } from './task-pods.ts';

/** A pod that does not answer in this long counts as not confirming (the step says which). */
const CALL_TIMEOUT_MS = 5_000;

export function clusterSwapPods(kube: KubeClient, taskApi: TaskApi, token: string): SwapPods {
  const byUrl = new Map<string, string>();
  const call = <T>(pod: string, method: string, path: string, body?: unknown): Promise<T> =>
    controlCall<T>(pod, byUrl.get(pod) ?? pod, method, path, token, body);
  return {
    async list() {
      // Running with an address: the pods that may be serving. Terminating ones still serve until they stop.
      const running = (await listTaskPods(kube, taskApi)).filter(
        (pod) => pod.status?.phase === 'Running' && pod.status.podIP,
      );
      const urls = running.map((pod) => {
        const url = `http://${pod.status?.podIP ?? ''}:${taskApi.spec.appPort}`;
        byUrl.set(url, pod.metadata.name);
        return url;
      });
      return urls;
    },
    async publish(plan) {
      await kube.apply(buildSwapPlanConfigMap(taskApi, plan));
    },
    report: (pod) => call<SwapReport>(pod, 'GET', SWAP_ROUTE),
    push: (pod, plan: SwapPlan) => call<SwapReport>(pod, 'PUT', SWAP_ROUTE, plan),
    startJob: (pod, job) => call<SwapJobStatus>(pod, 'POST', SWAP_JOB_ROUTE, job),
    probe: (pod, component) =>
      call(pod, 'POST', SWAP_PROBE_ROUTE, { component }).then(
        () => undefined,
        (error: unknown) => (error instanceof Error ? error.message : String(error)),
      ),
  };
}

/** One call to a pod; a stale plan (409 on PUT) still answers the pod's report. */
function controlCall<T>(
  url: string,
  podName: string,
  method: string,
  path: string,
  token: string,
  body?: unknown,
): Promise<T> {
  const text = body === undefined ? undefined : JSON.stringify(body);
  return new Promise<T>((resolve, reject) => {
    const request = http.request(
      `${url}${path}`,
      {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(text === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }),
        },
        timeout: CALL_TIMEOUT_MS,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => {
          const answer = Buffer.concat(chunks).toString('utf8');
          const status = response.statusCode ?? 0;
          if (status >= 400 && !(method === 'PUT' && status === 409)) {
            reject(new Error(`pod ${podName}: ${method} ${path} answered ${status}: ${answer.slice(0, 200)}`));
            return;
          }
          try {
            resolve(JSON.parse(answer) as T);
          } catch {
            reject(new Error(`pod ${podName}: ${method} ${path} answered no JSON`));
          }
        });
      },
    );
    request.on('timeout', () =>
      request.destroy(new Error(`pod ${podName} did not answer in ${CALL_TIMEOUT_MS / 1000}s`)),
    );
    request.on('error', (error) => {
      reject(new Error(`pod ${podName} unreachable: ${error.message}`));
    });
    request.end(text);
  });
}
