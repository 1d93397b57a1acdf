/**
 * The TaskApi side of the generic client (src/kube/client.ts): the operator's
 * client, a TaskApi's status through its status subresource, Events on a
 * TaskApi, and the key names of a Secret a TaskApi references (never values).
 */
import { randomBytes } from 'node:crypto';
import { KIND, type TaskApi } from '../api/resource.ts';
import type { TaskApiStatus } from '../api/taskapi.ts';
import { KubeClient, rfc3339 } from '../kube/client.ts';
import { EVENT_KIND, SECRET_KIND } from '../kube/kinds.ts';
import type { Connection } from '../kube/kubeconfig.ts';
import { KINDS, TASKAPI_KIND } from './kinds.ts';
import { FIELD_MANAGER } from './names.ts';

/** client-go's form: `<program>/<version> (<os>/<arch>)`. */
export const USER_AGENT = `${FIELD_MANAGER}/0.1.0 (${process.platform}/${process.arch}) node/${process.versions.node}`;

export const operatorClient = (connection: Connection): KubeClient =>
  new KubeClient(connection, { fieldManager: FIELD_MANAGER, kinds: KINDS, userAgent: USER_AGENT });

/** Writes the whole status (server-side apply, so omitted fields go away). */
export async function applyTaskApiStatus(kube: KubeClient, taskApi: TaskApi, status: TaskApiStatus): Promise<void> {
  const { name, namespace } = taskApi.metadata;
  await kube.applyStatus({ apiVersion: TASKAPI_KIND.apiVersion, kind: KIND, metadata: { name, namespace } }, status);
}

/** The key names of a Secret, or undefined when it does not exist. Values are never returned. */
export async function secretKeys(kube: KubeClient, namespace: string, name: string): Promise<string[] | undefined> {
  const secret = await kube.get<{ data?: Record<string, string> }>({
    apiVersion: SECRET_KIND.apiVersion,
    kind: SECRET_KIND.kind,
    metadata: { namespace, name },
  });
  return secret && Object.keys(secret.data ?? {});
}

/** Records an Event on a TaskApi, from the operator. */
export async function recordTaskApiEvent(
  kube: KubeClient,
  taskApi: TaskApi,
  type: 'Normal' | 'Warning',
  reason: string,
  message: string,
): Promise<void> {
  const { name, namespace, uid } = taskApi.metadata;
  const now = rfc3339(new Date());
  await kube.create({
    apiVersion: EVENT_KIND.apiVersion,
    kind: EVENT_KIND.kind,
    metadata: { name: `${name}.${randomBytes(8).toString('hex')}`, namespace },
    involvedObject: { apiVersion: TASKAPI_KIND.apiVersion, kind: KIND, name, namespace, uid },
    type,
    reason,
    message,
    source: { component: FIELD_MANAGER },
    firstTimestamp: now,
    lastTimestamp: now,
    count: 1,
  });
}
