/**
 * The TaskApi side of the generic client (src/kube/client.ts): the operator's
 * client, a TaskApi's status through its status subresource, Events on a
 * TaskApi, and the key names of a Secret a TaskApi references (never values).
 */
import { randomBytes } from 'node:crypto';
import { KIND, type TaskApi } from '../api/resource.ts';
import type { TaskApiStatus } from '../api/taskapi.ts';
import { isConflict, KubeClient, rfc3339 } from '../kube/client.ts';
import { canonicalJson } from '../kube/hash.ts';
import { EVENT_KIND, SECRET_KIND } from '../kube/kinds.ts';
import type { Connection } from '../kube/kubeconfig.ts';
import { KINDS, TASKAPI_KIND } from './kinds.ts';
import { FIELD_MANAGER } from './names.ts';

/** client-go's form: `<program>/<version> (<os>/<arch>)`. */
export const USER_AGENT = `${FIELD_MANAGER}/0.1.0 (${process.platform}/${process.arch}) node/${process.versions.node}`;

export const operatorClient = (connection: Connection): KubeClient =>
  new KubeClient(connection, { fieldManager: FIELD_MANAGER, kinds: KINDS, userAgent: USER_AGENT });

/**
 * Writes the whole status (server-side apply, so omitted fields go away)
 * computed from `read`, only where `read`'s status still stands. A status is
 * computed from the one before it (a swap's phase, the store that holds the
 * truth), so it goes onto `read`'s resourceVersion; after an edit of the spec
 * or metadata alone it goes again onto the stored version, and after another
 * status write (the cache `read` came from was behind) it throws StaleStatus,
 * writing nothing.
 */
export async function applyStatusOnto(kube: KubeClient, read: TaskApi, status: TaskApiStatus): Promise<void> {
  const { name, namespace, uid } = read.metadata;
  const ref = { apiVersion: TASKAPI_KIND.apiVersion, kind: KIND, metadata: { name, namespace } };
  const before = canonicalJson(read.status ?? {});
  let onto = read.metadata.resourceVersion;
  for (let attempt = 1; ; attempt += 1) {
    try {
      await kube.applyStatus(ref, status, onto);
      return;
    } catch (error) {
      if (!isConflict(error) || attempt === STATUS_WRITE_ATTEMPTS) throw error;
      const stored = await readTaskApi(kube, namespace, name);
      if (!stored || stored.metadata.uid !== uid) throw error;
      if (canonicalJson(stored.status ?? {}) !== before) throw new StaleStatus(`${namespace}/${name}`);
      onto = stored.metadata.resourceVersion;
    }
  }
}

/** Tries of one status write whose TaskApi's spec or metadata keeps changing under it. */
const STATUS_WRITE_ATTEMPTS = 3;

/** The status was read older than the stored one (from a cache behind the last write): nothing was written. */
export class StaleStatus extends Error {
  constructor(key: string) {
    super(`the status of TaskApi ${key} changed since it was read`);
    this.name = 'StaleStatus';
  }
}

/** The TaskApi as stored now (a quorum read, not the cache); undefined when it is gone. */
export async function readTaskApi(kube: KubeClient, namespace: string, name: string): Promise<TaskApi | undefined> {
  return kube.get<TaskApi>({ apiVersion: TASKAPI_KIND.apiVersion, kind: KIND, metadata: { name, namespace } });
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
