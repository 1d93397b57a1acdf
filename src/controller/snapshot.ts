/**
 * What the informers keep of each object: only what reconcile reads. A live
 * Deployment with its server defaults and managedFields is tens of kilobytes in
 * memory; the operator keeps a few hundred bytes of it, so a thousand TaskApis
 * fit in the memory budget. For a child that is a hash of taskapi-operator's
 * managedFields entry (src/kube/managed-fields.ts), which moves whenever one of
 * the fields we applied does.
 */
import { KIND as OWNER_KIND, type TaskApi } from '../api/resource.ts';
import { appliedFieldsHash } from '../kube/managed-fields.ts';
import { identity, type RawObject, type Snapshot } from '../kube/objects.ts';
import { KINDS } from './kinds.ts';
import { FIELD_MANAGER } from './names.ts';
import type { DeploymentState } from './status.ts';

export interface ChildSnapshot extends Snapshot {
  apiVersion: string;
  kind: string;
  /** Name of the TaskApi that controls this object (owner reference), if any. */
  owner: string | undefined;
  /**
   * Hash of taskapi-operator's managedFields entry and the object's uid: it
   * changes whenever one of the fields we applied does. reconcile compares the
   * fields themselves once, then remembers this hash (see verified.ts).
   */
  appliedHash: string;
  /** For Deployments: what status needs to judge the rollout. */
  rollout?: DeploymentState;
}

export type TaskApiSnapshot = TaskApi & Snapshot;

function ownerOf(raw: RawObject): string | undefined {
  return raw.metadata?.ownerReferences?.find((ref) => ref.controller === true && ref.kind === OWNER_KIND)?.name;
}

/** The key of the TaskApi that owns `child` (`namespace/name`), as the owner index groups children. */
export const ownerKey = (child: ChildSnapshot): string | undefined =>
  child.owner === undefined ? undefined : `${child.metadata.namespace}/${child.owner}`;

/** A child as reconcile needs it: identity, owner, the hash of our applied fields, and for Deployments the rollout. */
export function childSnapshot(raw: RawObject): ChildSnapshot {
  // The kind's own strings, shared by every snapshot, rather than each event's parsed copies.
  const { apiVersion, kind } = KINDS.of({ apiVersion: raw.apiVersion ?? '', kind: raw.kind ?? '' });
  const snapshot: ChildSnapshot = {
    apiVersion,
    kind,
    metadata: identity(raw),
    owner: ownerOf(raw),
    appliedHash: appliedFieldsHash(raw, FIELD_MANAGER),
  };
  if (raw.kind === 'Deployment') {
    const spec = raw['spec'] as { replicas?: number } | undefined;
    const status = raw['status'] as DeploymentState['status'];
    snapshot.rollout = {
      metadata: { generation: raw.metadata?.generation ?? 0 },
      spec: { replicas: spec?.replicas ?? 1 },
      status: {
        observedGeneration: status?.observedGeneration ?? 0,
        replicas: status?.replicas ?? 0,
        updatedReplicas: status?.updatedReplicas ?? 0,
        readyReplicas: status?.readyReplicas ?? 0,
        availableReplicas: status?.availableReplicas ?? 0,
      },
    };
  }
  return snapshot;
}

/** A TaskApi without what reconcile never reads (managedFields, annotations such as kubectl's last-applied copy). */
export function taskApiSnapshot(raw: RawObject): TaskApiSnapshot {
  const { uid = '', generation, deletionTimestamp } = raw.metadata ?? {};
  return {
    apiVersion: raw.apiVersion,
    kind: raw.kind,
    metadata: {
      ...identity(raw),
      uid,
      ...(generation !== undefined ? { generation } : {}),
      ...(deletionTimestamp ? { deletionTimestamp } : {}),
    },
    spec: raw['spec'],
    ...(raw['status'] ? { status: raw['status'] } : {}),
  } as TaskApiSnapshot;
}
