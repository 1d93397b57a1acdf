/**
 * The TaskApi resource as the operator process sees it: its identity, its
 * enumerations and its TS types. Values here need no schema library, so the
 * operator never loads zod at run time (the API server has already defaulted
 * and validated every TaskApi against the CRD generated from ./taskapi.ts).
 */
import type { SecretKeyRef, TaskApiSpec, TaskApiStatus } from './taskapi.ts';

export const GROUP = 'taskapi.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'TaskApi';
export const PLURAL = 'taskapis';

/** The state stores a TaskApi can run on; the names are also Dapr component type suffixes. */
export const STATE_BACKENDS = ['redis', 'postgresql'] as const;
export type StateBackend = (typeof STATE_BACKENDS)[number];

export const CONDITION_TYPES = ['Ready', 'Progressing', 'Degraded'] as const;
export type ConditionType = (typeof CONDITION_TYPES)[number];

/**
 * The phases of a swap of state stores, in order (docs/swap.md), as
 * status.swap.phase shows them; Blocked: preflight refused to start it.
 */
export const SWAP_PHASES = [
  'Blocked',
  'TargetAdded',
  'DualWrite',
  'Backfill',
  'Verify',
  'Flip',
  'Flipped',
  'Finish',
  'Completed',
] as const;
export type SwapPhase = (typeof SWAP_PHASES)[number];

export interface ObjectMeta {
  name: string;
  namespace: string;
  uid: string;
  generation?: number;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  deletionTimestamp?: string;
  creationTimestamp?: string;
}

/** A TaskApi as read from the API server: spec defaulted and validated there. */
export interface TaskApi {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: ObjectMeta;
  spec: TaskApiSpec;
  status?: TaskApiStatus;
}

/**
 * Secret keys the pods need to run on `backends`: each state store's credentials,
 * the pub/sub Redis password, the API token and the settings store's password. One list for preflight and RBAC.
 */
export function secretRefsFor(spec: TaskApiSpec, backends: readonly StateBackend[]): SecretKeyRef[] {
  const state = backends.map((backend) =>
    backend === 'redis' ? spec.redis?.passwordSecretRef : spec.postgresql?.connectionStringSecretRef,
  );
  const pubsub = (spec.pubsub.redis ?? spec.redis)?.passwordSecretRef;
  const settings = spec.settings?.store.passwordSecretRef;
  return [...state, pubsub, spec.apiTokenSecretRef, settings].filter((ref) => ref !== undefined);
}
