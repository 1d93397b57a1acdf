/**
 * The task pods of one TaskApi, listed fresh from the API server (never a
 * cache: a pod the cache has not seen yet would be missed), with the fields
 * the swap driver and the sidecar-failure look read.
 */
import type { TaskApi } from '../api/resource.ts';
import type { KubeClient } from '../kube/client.ts';
import { selectorLabels } from './names.ts';

export interface TaskPod {
  metadata: { name: string };
  status?: {
    phase?: string;
    podIP?: string;
    containerStatuses?: {
      name: string;
      ready: boolean;
      restartCount: number;
      lastState?: { terminated?: { exitCode?: number } };
    }[];
  };
}

export async function listTaskPods(kube: KubeClient, taskApi: TaskApi): Promise<TaskPod[]> {
  const selector = Object.entries(selectorLabels(taskApi, 'task-service'))
    .map(([key, value]) => `${key}=${value}`)
    .join(',');
  const pods = (await kube.list('list task pods', `/api/v1/namespaces/${taskApi.metadata.namespace}/pods`, {
    labelSelector: selector,
  })) as unknown as { items: TaskPod[] };
  return pods.items;
}
