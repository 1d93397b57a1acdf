/**
 * The whole desired state of one TaskApi: every child manifest, pure.
 * Which backend the pods run on, and which state Components exist, are decided
 * by the reconciler (they depend on the swap's progress) and passed in.
 */
import type { SwapPlan } from '../api/contract.ts';
import type { StateBackend, TaskApi } from '../api/resource.ts';
import { RENDERED_HASH_ANNOTATION } from './names.ts';
import {
  buildOverdueSweepComponent,
  buildPubsubComponent,
  buildSecretStoreComponent,
  buildSettingsComponent,
  buildStateComponent,
} from './resources/components.ts';
import { buildNotificationDeployment, buildTaskDeployment, type BuildSettings } from './resources/deployment.ts';
import { contentHash } from '../kube/hash.ts';
import { buildSecretReaderRole, buildSecretReaderRoleBinding, buildServiceAccount } from './resources/rbac.ts';
import { buildNotificationService, buildTaskService } from './resources/service.ts';
import { buildSubscription } from './resources/subscription.ts';
import { buildSwapPlanConfigMap } from './resources/swap.ts';

export interface Placement {
  /** Backend whose state Component the pods' env names (during a swap, the store it started from). */
  podBackend: StateBackend;
  /** The layout generation of the tasks in it. */
  podGeneration: string;
  /** Backends whose state Components exist (both during a swap). */
  stateBackends: readonly StateBackend[];
  /** The plan pods start from (the swap-plan ConfigMap). */
  plan: SwapPlan;
}

/** A rendered child: plain JSON, as sent to the API server. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: { kind: string; name: string; uid: string; controller?: boolean }[];
  };
}

/**
 * Every child, each annotated with the hash of its own rendering. Without a
 * placement (no backend can run yet) the state Components and the task
 * Deployment are left out.
 */
export function desiredChildren(
  taskApi: TaskApi,
  placement: Placement | undefined,
  settings: BuildSettings,
): Manifest[] {
  const pubsub = buildPubsubComponent(taskApi);
  const secretStore = buildSecretStoreComponent(taskApi);
  const stateComponents = (placement?.stateBackends ?? []).map((backend) => buildStateComponent(taskApi, backend));
  const overdueSweep = buildOverdueSweepComponent(taskApi);
  const settingsStore = buildSettingsComponent(taskApi);
  let taskDeployment;
  if (placement) {
    // Pods roll when any Component they run with changes (Dapr would otherwise
    // hot-reload it under them at an uncontrolled moment, or, for a new one, not load it).
    const componentsHash = contentHash(
      [buildStateComponent(taskApi, placement.podBackend), pubsub, secretStore, overdueSweep, settingsStore].filter(
        (item) => item !== undefined,
      ),
    );
    taskDeployment = buildTaskDeployment(
      taskApi,
      placement.podBackend,
      componentsHash,
      settings,
      placement.podGeneration,
    );
  }
  const children = [
    buildServiceAccount(taskApi),
    buildSecretReaderRole(taskApi),
    buildSecretReaderRoleBinding(taskApi),
    secretStore,
    ...stateComponents,
    pubsub,
    overdueSweep,
    settingsStore,
    buildSubscription(taskApi),
    placement && buildSwapPlanConfigMap(taskApi, placement.plan),
    taskDeployment,
    buildTaskService(taskApi),
    buildNotificationDeployment(taskApi, settings),
    buildNotificationService(taskApi),
  ];
  return children.filter((child) => child !== undefined).map((child) => withRenderedHash(child as Manifest));
}

function withRenderedHash(child: Manifest): Manifest {
  const { metadata } = child;
  return {
    ...child,
    metadata: { ...metadata, annotations: { ...metadata.annotations, [RENDERED_HASH_ANNOTATION]: contentHash(child) } },
  };
}
