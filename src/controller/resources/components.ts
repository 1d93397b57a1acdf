/**
 * Dapr Components (dapr.io/v1alpha1): the state store, pub/sub, secret store and
 * the overdue sweep's cron binding.
 * Each is scoped to the TaskApi's app-id, so several TaskApis share a namespace
 * safely, and credentials are only `secretKeyRef`s resolved through the
 * TaskApi's own secret store.
 */
import { OVERDUE_SWEEP_ROUTE } from '../../api/contract.ts';
import type { StateBackend, TaskApi } from '../../api/resource.ts';
import type { RedisSettings, SecretKeyRef } from '../../api/taskapi.ts';
import { names, ownedMetadata, type ChildRole, type OwnedMetadata } from '../names.ts';

export interface ComponentMetadataItem {
  name: string;
  value?: string;
  secretKeyRef?: SecretKeyRef;
}

export interface DaprComponent {
  apiVersion: 'dapr.io/v1alpha1';
  kind: 'Component';
  metadata: OwnedMetadata;
  spec: { type: string; version: string; metadata: ComponentMetadataItem[] };
  scopes: string[];
  auth?: { secretStore: string };
}

function component(
  taskApi: TaskApi,
  name: string,
  role: ChildRole,
  type: string,
  metadata: ComponentMetadataItem[],
): DaprComponent {
  const usesSecrets = metadata.some((item) => item.secretKeyRef !== undefined);
  return {
    apiVersion: 'dapr.io/v1alpha1',
    kind: 'Component',
    metadata: ownedMetadata(taskApi, name, role),
    spec: { type, version: 'v1', metadata },
    scopes: [names.app(taskApi)],
    ...(usesSecrets ? { auth: { secretStore: names.secretStoreComponent(taskApi) } } : {}),
  };
}

function redisMetadata(redis: RedisSettings): ComponentMetadataItem[] {
  return [
    { name: 'redisHost', value: redis.host },
    ...(redis.passwordSecretRef ? [{ name: 'redisPassword', secretKeyRef: redis.passwordSecretRef }] : []),
    { name: 'enableTLS', value: String(redis.enableTLS) },
  ];
}

/**
 * Keys `<namespace>.<app-id>||<key>` instead of Dapr's default `<app-id>||<key>`:
 * TaskApis of one name in two namespaces, on one Redis or one PostgreSQL
 * table, would otherwise read and write each other's tasks.
 */
const NAMESPACED_KEYS: ComponentMetadataItem = { name: 'keyPrefix', value: 'namespace' };

/**
 * The state store for `backend`, named after it: a swap adds the new backend's
 * Component beside the old one instead of editing the one running pods use.
 * Returns undefined when the spec has no settings for that backend.
 */
export function buildStateComponent(taskApi: TaskApi, backend: StateBackend): DaprComponent | undefined {
  const name = names.stateComponent(taskApi, backend);
  const { redis, postgresql } = taskApi.spec;
  // Not ignoreErrors: Dapr never loads again a Component whose init failed and was ignored, so a pod
  // whose sidecar lost an init race (two sidecars creating PostgreSQL's metadata table at once, as a
  // swap's new Component reaches every sidecar together) would never have its store. Without it, that
  // sidecar stops and restarts, and loads it then.
  if (backend === 'redis') {
    return redis && component(taskApi, name, 'state-store', 'state.redis', [...redisMetadata(redis), NAMESPACED_KEYS]);
  }
  if (!postgresql) return undefined;
  return component(taskApi, name, 'state-store', 'state.postgresql', [
    { name: 'connectionString', secretKeyRef: postgresql.connectionStringSecretRef },
    ...(postgresql.tableName ? [{ name: 'tableName', value: postgresql.tableName }] : []),
    NAMESPACED_KEYS,
  ]);
}

/** Redis pub/sub for task events; spec.pubsub.redis, else spec.redis (the CRD requires one of them). */
export function buildPubsubComponent(taskApi: TaskApi): DaprComponent | undefined {
  const redis = taskApi.spec.pubsub.redis ?? taskApi.spec.redis;
  return redis && component(taskApi, names.pubsubComponent(taskApi), 'pubsub', 'pubsub.redis', redisMetadata(redis));
}

/** The Kubernetes secret store the other Components and the service read Secrets through. */
export function buildSecretStoreComponent(taskApi: TaskApi): DaprComponent {
  return component(taskApi, names.secretStoreComponent(taskApi), 'secret-store', 'secretstores.kubernetes', []);
}

/**
 * The overdue sweep (spec.overdueSweep): a cron input binding that posts to the
 * task service's OVERDUE_SWEEP_ROUTE on its schedule. `direction: input` so
 * daprd does not probe the route with OPTIONS first. None without the field.
 */
export function buildOverdueSweepComponent(taskApi: TaskApi): DaprComponent | undefined {
  const sweep = taskApi.spec.overdueSweep;
  if (!sweep) return undefined;
  return component(taskApi, names.overdueSweepComponent(taskApi), 'overdue-sweep', 'bindings.cron', [
    { name: 'schedule', value: sweep.schedule },
    { name: 'direction', value: 'input' },
    { name: 'route', value: OVERDUE_SWEEP_ROUTE },
  ]);
}

/** The live settings' store (spec.settings): a configuration.redis Component. None without the field. */
export function buildSettingsComponent(taskApi: TaskApi): DaprComponent | undefined {
  const store = taskApi.spec.settings?.store;
  if (!store) return undefined;
  return component(
    taskApi,
    names.settingsComponent(taskApi),
    'settings-store',
    'configuration.redis',
    redisMetadata(store),
  );
}
