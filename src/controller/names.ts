/**
 * Deterministic names and labels of everything a TaskApi owns; one place, so
 * builders, pruning and tests agree.
 */
import { API_VERSION, KIND, type StateBackend, type TaskApi } from '../api/resource.ts';

export const FIELD_MANAGER = 'taskapi-operator';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = FIELD_MANAGER;
/** The label selector of every child's informer. */
export const MANAGED_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;
export const INSTANCE_LABEL = 'app.kubernetes.io/instance';
export const COMPONENT_LABEL = 'app.kubernetes.io/component';
/** Hash of what the operator last rendered for a child; a mismatch means the child must be applied. */
export const RENDERED_HASH_ANNOTATION = 'taskapi.dev/rendered-hash';
/** Hash of the Components a pod runs with; part of the pod template, so a change rolls the pods. */
export const COMPONENTS_HASH_ANNOTATION = 'taskapi.dev/components-hash';

export type ChildRole =
  | 'task-service'
  | 'notification-service'
  | 'state-store'
  | 'pubsub'
  | 'secret-store'
  | 'overdue-sweep'
  | 'settings-store'
  | 'subscription'
  | 'service-account'
  | 'swap-plan'
  | 'swap-control'
  | 'dapr-app-token'
  | 'dapr-api-token';

export const names = {
  /** The task service's Deployment, Service, ServiceAccount and Dapr app-id. */
  app: (taskApi: TaskApi): string => taskApi.metadata.name,
  /** The events' topic: spec.pubsub.topic, else one of this TaskApi's own (a shared Redis mixes no two TaskApis' events). */
  topic: (taskApi: TaskApi): string =>
    taskApi.spec.pubsub.topic ?? `${taskApi.metadata.namespace}.${taskApi.metadata.name}`,
  stateComponent: (taskApi: TaskApi, backend: StateBackend): string => `${taskApi.metadata.name}-state-${backend}`,
  pubsubComponent: (taskApi: TaskApi): string => `${taskApi.metadata.name}-pubsub`,
  secretStoreComponent: (taskApi: TaskApi): string => `${taskApi.metadata.name}-secrets`,
  overdueSweepComponent: (taskApi: TaskApi): string => `${taskApi.metadata.name}-overdue-sweep`,
  settingsComponent: (taskApi: TaskApi): string => `${taskApi.metadata.name}-settings`,
  subscription: (taskApi: TaskApi): string => `${taskApi.metadata.name}-task-events`,
  secretReaderRole: (taskApi: TaskApi): string => `${taskApi.metadata.name}-secret-reader`,
  /** The ConfigMap holding the swap plan task pods start from. */
  swapPlan: (taskApi: TaskApi): string => `${taskApi.metadata.name}-swap-plan`,
  /** The Secret holding the token the operator presents to task pods to drive a swap. */
  swapControl: (taskApi: TaskApi): string => `${taskApi.metadata.name}-swap-control`,
  /** The Secret with Dapr's app token: daprd presents it to the app, so the app can tell the sidecar's calls. */
  daprAppToken: (taskApi: TaskApi): string => `${taskApi.metadata.name}-dapr-app-token`,
  /** The Secret with Dapr's API token: the app presents it to daprd, so no other pod can drive the sidecar. */
  daprApiToken: (taskApi: TaskApi): string => `${taskApi.metadata.name}-dapr-api-token`,
};

/** Labels on every child: selectable as managed by us, and by instance and role. */
export function labelsFor(taskApi: TaskApi, role: ChildRole): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'taskapi',
    [INSTANCE_LABEL]: taskApi.metadata.name,
    [COMPONENT_LABEL]: role,
    [MANAGED_BY_LABEL]: MANAGED_BY,
  };
}

/** The immutable subset used as a Deployment selector and by its Service. */
export function selectorLabels(taskApi: TaskApi, role: ChildRole): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'taskapi',
    [INSTANCE_LABEL]: taskApi.metadata.name,
    [COMPONENT_LABEL]: role,
  };
}

export interface OwnedMetadata {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  ownerReferences: {
    apiVersion: string;
    kind: string;
    name: string;
    uid: string;
    controller: boolean;
    blockOwnerDeletion: boolean;
  }[];
}

/** Metadata of a child: its name, the TaskApi's namespace, labels and the controller owner reference (for GC). */
export function ownedMetadata(taskApi: TaskApi, name: string, role: ChildRole): OwnedMetadata {
  return {
    name,
    namespace: taskApi.metadata.namespace,
    labels: labelsFor(taskApi, role),
    ownerReferences: [
      {
        apiVersion: API_VERSION,
        kind: KIND,
        name: taskApi.metadata.name,
        uid: taskApi.metadata.uid,
        controller: true,
        blockOwnerDeletion: true,
      },
    ],
  };
}
