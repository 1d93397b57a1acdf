/**
 * What the informers keep of each object: only what reconcile reads. A live
 * Deployment with its server defaults and managedFields is tens of kilobytes in
 * memory; the operator keeps a few hundred bytes of it, so a thousand TaskApis
 * fit in the memory budget.
 *
 * For a child that is a hash of our field manager's managedFields entry: the
 * set of fields taskapi-operator applied and when it last changed one. Server-
 * side apply hands a field to whoever changes its value (an update takes it,
 * a forced apply takes it, an unforced one conflicts), so the values behind
 * that set can change only when the set changes or when we apply again. The
 * hash therefore moves whenever one of our fields does, without reading (or
 * sorting and hashing) the values on every watch event; fields others add
 * (defaults, other controllers) never enter it.
 */
import { KIND as OWNER_KIND, type TaskApi } from '../api/resource.ts';
import { kindOf } from './kinds.ts';
import { FIELD_MANAGER } from './names.ts';
import { shortHash } from './resources/hash.ts';
import type { DeploymentState } from './status.ts';

/** An object as the API server sends it. */
export interface RawObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    generation?: number;
    resourceVersion?: string;
    deletionTimestamp?: string;
    ownerReferences?: { kind: string; name: string; controller?: boolean }[];
    managedFields?: {
      manager?: string;
      operation?: string;
      subresource?: string;
      time?: string;
      fieldsV1?: FieldSet;
    }[];
    [field: string]: unknown;
  };
  [field: string]: unknown;
}

/** A managedFields field set (fieldsV1): `f:<field>`, `k:<list key>`, `v:<set value>`, `i:<index>`, `.` */
export interface FieldSet {
  [path: string]: FieldSet;
}

export interface Snapshot {
  metadata: { namespace: string; name: string; resourceVersion: string };
}

export interface ChildSnapshot extends Snapshot {
  apiVersion: string;
  kind: string;
  /** Name of the TaskApi that controls this object (owner reference), if any. */
  owner: string | undefined;
  /**
   * Hash of taskapi-operator's managedFields entry and the object's uid: it
   * changes whenever one of the fields we applied does. reconcile compares the
   * fields themselves once, then remembers this hash (see reconcile.ts).
   */
  appliedHash: string;
  /** For Deployments: what status needs to judge the rollout. */
  rollout?: DeploymentState;
}

export type TaskApiSnapshot = TaskApi & Snapshot;

const isRecord = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

const isLeaf = (fields: FieldSet): boolean => Object.keys(fields).every((path) => path === '.');

function matchesKey(item: unknown, key: Record<string, unknown>): boolean {
  return isRecord(item) && Object.entries(key).every(([field, value]) => item[field] === value);
}

/**
 * The part of `value` a field set names. A leaf (`{}` or only `.`) takes the
 * value whole: a scalar, an atomic list or map, or a list item owned entirely.
 */
export function project(value: unknown, fields: FieldSet): unknown {
  if (isLeaf(fields)) return value;
  if (Array.isArray(value)) {
    const picked: unknown[] = [];
    for (const [index, item] of value.entries()) {
      for (const [path, sub] of Object.entries(fields)) {
        const kind = path.slice(0, 2);
        const selector = path.slice(2);
        const hit =
          (kind === 'k:' && matchesKey(item, JSON.parse(selector) as Record<string, unknown>)) ||
          (kind === 'v:' && JSON.stringify(item) === selector) ||
          (kind === 'i:' && Number(selector) === index);
        if (hit) {
          const part = project(item, sub);
          // A keyed item is known by its key fields even where the set does not list them.
          picked.push(kind === 'k:' && isRecord(part) ? { ...(JSON.parse(selector) as object), ...part } : part);
          break;
        }
      }
    }
    return picked;
  }
  if (!isRecord(value)) return value;
  const picked: Record<string, unknown> = {};
  for (const [path, sub] of Object.entries(fields)) {
    if (!path.startsWith('f:')) continue;
    const field = path.slice(2);
    if (field in value) picked[field] = project(value[field], sub);
  }
  return picked;
}

function ownerOf(raw: RawObject): string | undefined {
  return raw.metadata?.ownerReferences?.find((ref) => ref.controller === true && ref.kind === OWNER_KIND)?.name;
}

function identity(raw: RawObject): Snapshot['metadata'] {
  const { namespace = '', name = '', resourceVersion = '' } = raw.metadata ?? {};
  return { namespace, name, resourceVersion };
}

/** taskapi-operator's own entry in `raw`'s managedFields: what it applied (not a subresource's). */
const ourEntry = (raw: RawObject) =>
  raw.metadata?.managedFields?.find(
    (item) => item.manager === FIELD_MANAGER && item.operation === 'Apply' && !item.subresource,
  );

/** The fields taskapi-operator applied to `raw`, with their live values, plus the object's identity. */
export function appliedFields(raw: RawObject): Record<string, unknown> {
  const entry = ourEntry(raw);
  const applied = (entry?.fieldsV1 ? project(raw, entry.fieldsV1) : {}) as Record<string, unknown>;
  const { namespace, name } = identity(raw);
  // apiVersion, kind, name and namespace identify the object; they are never listed as managed fields.
  return {
    ...applied,
    apiVersion: raw.apiVersion ?? '',
    kind: raw.kind ?? '',
    metadata: { ...(applied['metadata'] as object | undefined), name, namespace },
  };
}

/** See ChildSnapshot.appliedHash. The server writes fieldsV1 in a stable order, so no sorting is needed. */
function appliedHash(raw: RawObject): string {
  const entry = ourEntry(raw);
  return entry
    ? shortHash(`${raw.metadata?.uid ?? ''} ${entry.time ?? ''} ${JSON.stringify(entry.fieldsV1 ?? {})}`)
    : '';
}

/** The key of the TaskApi that owns `child` (`namespace/name`), as the owner index groups children. */
export const ownerKey = (child: ChildSnapshot): string | undefined =>
  child.owner === undefined ? undefined : `${child.metadata.namespace}/${child.owner}`;

/** A child as reconcile needs it: identity, owner, the hash of our applied fields, and for Deployments the rollout. */
export function childSnapshot(raw: RawObject): ChildSnapshot {
  // The kind's own strings, shared by every snapshot, rather than each event's parsed copies.
  const { apiVersion, kind } = kindOf({ apiVersion: raw.apiVersion ?? '', kind: raw.kind ?? '' });
  const snapshot: ChildSnapshot = {
    apiVersion,
    kind,
    metadata: identity(raw),
    owner: ownerOf(raw),
    appliedHash: appliedHash(raw),
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
