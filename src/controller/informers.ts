/**
 * Informers: a local cache of TaskApis and of every kind the operator owns,
 * kept current by list + watch, each event mapped to the owning TaskApi's key.
 *
 * client-node's ListWatch restarts itself after a watch timeout or a 410, but
 * stops for good on any other error; `Informer` restarts it with backoff.
 */
import { KubernetesObjectApi, ListWatch, Watch, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { API_VERSION, KIND } from '../api/resource.ts';
import { toKubeApiError } from './kube.ts';
import { MANAGED_BY, MANAGED_BY_LABEL } from './names.ts';

export interface KindInfo {
  apiVersion: string;
  kind: string;
  /** URL path of the collection across namespaces. */
  path: string;
}

/** Every kind a TaskApi owns; the operator watches and prunes exactly these. */
export const CHILD_KINDS: readonly KindInfo[] = [
  { apiVersion: 'apps/v1', kind: 'Deployment', path: '/apis/apps/v1/deployments' },
  { apiVersion: 'v1', kind: 'Service', path: '/api/v1/services' },
  { apiVersion: 'v1', kind: 'ServiceAccount', path: '/api/v1/serviceaccounts' },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', path: '/apis/rbac.authorization.k8s.io/v1/roles' },
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    path: '/apis/rbac.authorization.k8s.io/v1/rolebindings',
  },
  { apiVersion: 'dapr.io/v1alpha1', kind: 'Component', path: '/apis/dapr.io/v1alpha1/components' },
  { apiVersion: 'dapr.io/v2alpha1', kind: 'Subscription', path: '/apis/dapr.io/v2alpha1/subscriptions' },
];

export const TASKAPI_KIND: KindInfo = {
  apiVersion: API_VERSION,
  kind: KIND,
  path: '/apis/taskapi.dev/v1alpha1/taskapis',
};

export const MANAGED_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;

const RESTART_DELAY_MS = { base: 500, max: 30_000 };

export class Informer {
  readonly info: KindInfo;
  private readonly inner: ListWatch<KubernetesObject>;
  private readonly logger: Logger;
  private restartDelayMs = RESTART_DELAY_MS.base;
  private restartTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(config: KubeConfig, info: KindInfo, logger: Logger, labelSelector?: string) {
    this.info = info;
    this.logger = logger.child({ kind: info.kind });
    const objects = KubernetesObjectApi.makeApiClient(config);
    const list = () =>
      objects.list(info.apiVersion, info.kind, undefined, undefined, undefined, undefined, undefined, labelSelector);
    this.inner = new ListWatch(info.path, new Watch(config), list, false, labelSelector);
    this.inner.on('connect', () => {
      this.restartDelayMs = RESTART_DELAY_MS.base;
    });
    this.inner.on('error', (error: unknown) => {
      if (this.stopped) return;
      const err = toKubeApiError(`list/watch ${info.kind}`, error);
      this.logger.warn({ err, retryInMs: this.restartDelayMs }, 'watch failed; restarting');
      this.restartTimer = setTimeout(() => void this.startWithRetry(), this.restartDelayMs);
      this.restartDelayMs = Math.min(this.restartDelayMs * 2, RESTART_DELAY_MS.max);
    });
  }

  /** Calls `handler` with every added, changed or deleted object. */
  onEvent(handler: (object: KubernetesObject) => void): void {
    this.inner.on('add', handler);
    this.inner.on('update', handler);
    this.inner.on('delete', handler);
  }

  /**
   * Resolves once the first list is in the cache. ListWatch.start() also returns
   * when that list failed (it reports the error instead); a list that succeeded
   * leaves a resource version behind.
   */
  async start(): Promise<void> {
    await this.inner.start();
    while (!this.stopped && this.inner.latestResourceVersion() === '') {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  private async startWithRetry(): Promise<void> {
    try {
      await this.inner.start();
    } catch (error) {
      // The error handler above already scheduled the next try.
      this.logger.debug({ err: error }, 'watch restart failed');
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    await this.inner.stop();
  }

  get(namespace: string, name: string): KubernetesObject | undefined {
    return this.inner.get(name, namespace);
  }

  list(namespace?: string): readonly KubernetesObject[] {
    return this.inner.list(namespace);
  }
}

/** The key of the TaskApi that controls `object`, if any. */
export function ownerKey(object: KubernetesObject): string | undefined {
  const owner = object.metadata?.ownerReferences?.find((ref) => ref.controller && ref.kind === KIND);
  const namespace = object.metadata?.namespace;
  return owner && namespace ? `${namespace}/${owner.name}` : undefined;
}
